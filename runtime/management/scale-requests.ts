/**
 * Replica counts asked for through the admin API (POST /admin/set_num_replicas: the dashboard's
 * Scale button, ClipperConnection.requestReplicas). The daemon holds no container manager
 * (docs/autoscaling.md), so it keeps each request until the process that holds one, the autoscaler
 * loop's host, applies it and reports back (src/autoscaler/loop.ts).
 *
 * Race-free by construction: one pending request per version, a newer one replaces it under a new
 * sequence number, and a completion removes a request only if it names that very request (seq,
 * version and count), so a loop that applied an older one, or a loop that restarted and applies one
 * again, never clears a newer one. Applying is idempotent (set the count to N).
 *
 * In memory only, on purpose: a request is an instruction for now, not configuration. Once applied
 * the manager's own records hold the count; one replayed after a daemon restart could undo a later
 * `clipper replicas`. For the same reason a request no loop picks up within the TTL is dropped.
 */
import { z } from "zod";
import { own } from "../shared/dict.js";
import {
  type AutoscaleEventInput, MAX_AUTOSCALE_REPLICAS, type ScaleRequest, ScaleRequestCompletionSchema,
} from "../shared/autoscaling.js";
import type { ClusterState } from "../shared/state.js";
import { badRequest } from "./errors.js";
import { parseBody, spec } from "./operations.js";
import { versionOf, wholeNumber } from "./autoscale-operations.js";

/** How long a request waits for a loop to apply it (the loop runs every second). */
export const SCALE_REQUEST_TTL_MS = 60_000;

const REQUEST = spec(
  z.object({ model_name: z.string(), model_version: z.string().optional(), num_replicas: z.number() }),
  `{"model_name" := string, "model_version" := string (optional: the current version), "num_replicas" := int}`,
);
const COMPLETION = spec(ScaleRequestCompletionSchema,
  `{"seq" := int, "model_name" := string, "model_version" := string, "num_replicas" := int, "from" := int} ` +
    `or {"seq" := int, "model_name" := string, "model_version" := string, "num_replicas" := int, "error" := string}`);

interface Pending {
  request: ScaleRequest;
  acceptedAt: number;
}

export class ScaleRequests {
  /** Keyed by JSON [model, version]: names are user input, never object keys. */
  private readonly pending = new Map<string, Pending>();
  private nextSeq = 1;

  constructor(
    /** Records an event in the daemon's autoscaler log (and its metrics). */
    private readonly record: (event: AutoscaleEventInput) => void,
    private readonly now: () => number = Date.now,
    readonly ttlMs = SCALE_REQUEST_TTL_MS,
  ) {}

  /** Validates a set_num_replicas body against the state and keeps it; a 400 names what is wrong. */
  request(state: ClusterState, body: string): { message: string; request: ScaleRequest } {
    const b = parseBody(body, REQUEST);
    const version = versionOf(state, b.model_name, b.model_version);
    const replicas = wholeNumber("num_replicas", b.num_replicas, 0, MAX_AUTOSCALE_REPLICAS);
    const where = `${b.model_name}:${version}`;
    const autoscaling = own(own(state.autoscaling, b.model_name), version);
    if (autoscaling) {
      // The autoscaler would undo a manual count at its next decision.
      throw badRequest(`${where} is autoscaled (min ${autoscaling.min_replicas}, max ${autoscaling.max_replicas}): ` +
        "change its bounds with clipper autoscale");
    }
    // Stale requests go first, so the map never holds more than one per version that exists.
    this.list(state);
    const at = this.now();
    const request: ScaleRequest = {
      seq: this.nextSeq++, model_name: b.model_name, model_version: version, num_replicas: replicas,
      requested_at: new Date(at).toISOString(),
    };
    this.pending.set(keyOf(b.model_name, version), { request, acceptedAt: at });
    this.record({
      kind: "manual", model_name: b.model_name, model_version: version, to: replicas,
      reason: `requested ${replicas} replica${replicas === 1 ? "" : "s"} through the admin API`,
    });
    return {
      message: `Requested ${replicas} replica${replicas === 1 ? "" : "s"} of ${where}: the cluster's manager applies it within seconds`,
      request,
    };
  }

  /**
   * The requests still to apply, oldest first. Those that expired, or whose version was deleted or
   * became autoscaled since, are dropped here with an event saying why.
   */
  list(state: ClusterState): ScaleRequest[] {
    const now = this.now();
    for (const [key, { request, acceptedAt }] of this.pending) {
      const why = this.staleReason(state, request, now - acceptedAt);
      if (why === undefined) continue;
      this.pending.delete(key);
      this.record({
        kind: "manual", model_name: request.model_name, model_version: request.model_version, to: request.num_replicas,
        reason: `dropped the request for ${request.num_replicas} replica${request.num_replicas === 1 ? "" : "s"}: ${why}`,
      });
    }
    return [...this.pending.values()].map((p) => p.request).sort((a, b) => a.seq - b.seq);
  }

  /** Clears the request a completion names, with its outcome as an event; an older or unknown one changes nothing. */
  complete(body: string): { completed: boolean } {
    const c = parseBody(body, COMPLETION);
    const key = keyOf(c.model_name, c.model_version);
    const pending = this.pending.get(key)?.request;
    if (!pending || pending.seq !== c.seq || pending.num_replicas !== c.num_replicas) return { completed: false };
    this.pending.delete(key);
    const count = `${c.num_replicas} replica${c.num_replicas === 1 ? "" : "s"}`;
    this.record("error" in c
      ? { kind: "manual", model_name: c.model_name, model_version: c.model_version, to: c.num_replicas, reason: `could not apply the request for ${count}: ${c.error}` }
      : { kind: "manual", model_name: c.model_name, model_version: c.model_version, from: c.from, to: c.num_replicas, reason: `applied the request for ${count}` });
    return { completed: true };
  }

  get size(): number {
    return this.pending.size;
  }

  private staleReason(state: ClusterState, request: ScaleRequest, ageMs: number): string | undefined {
    if (!own(own(state.models, request.model_name)?.versions, request.model_version)) return "the version was deleted";
    if (own(own(state.autoscaling, request.model_name), request.model_version)) return "the version is autoscaled now";
    if (ageMs > this.ttlMs) {
      return `no autoscaler loop applied it within ${Math.round(this.ttlMs / 1000)} s (the cluster's manager must host one: docs/autoscaling.md)`;
    }
    return undefined;
  }
}

function keyOf(model: string, version: string): string {
  return JSON.stringify([model, version]);
}
