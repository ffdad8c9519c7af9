/**
 * Query API keys on the frontend (docs/security.md). With `--query-auth keys`, Clipper's predict and
 * update routes and OIP inference need `Authorization: Bearer KEY` or `X-Clipper-Key: KEY`. The
 * frontend knows only the keys' SHA-256 hashes, from the management daemon's state snapshots, and
 * limits each key to its rate with a token bucket (burst: one second's worth).
 */
import type { IncomingHttpHeaders } from "node:http";
import { type ApiKeyRecord, hashApiKey, type QueryAuthMode } from "../shared/api-keys.js";
import type { ClusterState } from "../shared/state.js";
import { QueryError } from "./query-errors.js";
import { presentedSecret } from "../shared/secrets.js";
import { type Clock, TokenBucket } from "./token-bucket.js";

export const KEY_HEADER = "x-clipper-key";

/** What a request asks to reach: an application by name, or any model through the Open Inference Protocol. */
export type QueryTarget = { app: string } | { oip: true };

export class QueryAuth {
  private byHash = new Map<string, ApiKeyRecord>();
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    readonly mode: QueryAuthMode,
    private readonly clock?: Clock,
  ) {}

  /** Takes in the keys of a new state snapshot; revoked keys stop working at once. */
  onState(state: ClusterState): void {
    const byHash = new Map<string, ApiKeyRecord>();
    const rateById = new Map<string, number | undefined>();
    for (const key of state.api_keys ?? []) {
      byHash.set(key.sha256, key);
      rateById.set(key.id, key.rate);
    }
    this.byHash = byHash;
    // A revoked key's bucket goes; so does one whose rate changed (it restarts full at the new rate).
    for (const [id, bucket] of this.buckets) {
      if (rateById.get(id) !== bucket.rate) this.buckets.delete(id);
    }
  }

  /** Throws the QueryError to answer (401, 403, 429) unless the request may proceed. */
  check(headers: IncomingHttpHeaders, target: QueryTarget): void {
    if (this.mode === "none") return;
    const key = presentedSecret(headers.authorization, headers[KEY_HEADER]);
    if (key === undefined) {
      throw new QueryError(401, "Unauthorized", "this frontend requires an API key: send 'Authorization: Bearer KEY' or 'X-Clipper-Key: KEY' (create one with `clipper api-key create`)",
        { "www-authenticate": 'Bearer realm="clipper-query"' });
    }
    const record = this.byHash.get(hashApiKey(key));
    if (!record) {
      throw new QueryError(401, "Unauthorized", "unknown or revoked API key", { "www-authenticate": 'Bearer realm="clipper-query", error="invalid_token"' });
    }
    if (record.app !== undefined) {
      if (!("app" in target)) throw new QueryError(403, "Forbidden", `API key '${record.id}' is limited to application '${record.app}' and cannot use the Open Inference Protocol`);
      if (target.app !== record.app) throw new QueryError(403, "Forbidden", `API key '${record.id}' is limited to application '${record.app}'`);
    }
    if (record.rate === undefined) return;
    let bucket = this.buckets.get(record.id);
    if (!bucket) {
      bucket = new TokenBucket(record.rate, Math.max(1, record.rate), this.clock);
      this.buckets.set(record.id, bucket);
    }
    const taken = bucket.take();
    if (!taken.ok) {
      throw new QueryError(429, "Too many requests", `API key '${record.id}' is limited to ${record.rate} requests per second`,
        { "retry-after": String(taken.retryAfterSeconds) });
    }
  }
}
