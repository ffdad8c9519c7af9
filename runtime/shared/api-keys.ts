/**
 * Query API keys (docs/security.md): what the cluster state keeps of each key. Only a SHA-256 hash
 * of the key is stored and published to the frontends, so neither the state file nor the watch
 * stream reveals a usable key; the key itself is shown once, when it is created.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { isLoopbackHost } from "./loopback.js";

export const ApiKeyRecordSchema = z.object({
  /** Public handle of the key (list, revoke); not secret. */
  id: z.string().regex(/^[0-9a-f]{8,32}$/),
  /** Hex SHA-256 of the whole key. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** The one application the key may query; absent: every application (and OIP models). */
  app: z.string().optional(),
  /** Requests per second the key may send (token bucket, burst of one second); absent: no limit. */
  rate: z.number().positive().finite().optional(),
  /** ISO 8601. */
  created_at: z.string(),
});
export type ApiKeyRecord = z.infer<typeof ApiKeyRecordSchema>;

/** What get_api_keys shows of a key: never its hash. */
export interface ApiKeyInfo {
  id: string;
  app?: string;
  rate?: number;
  created_at: string;
}

/** What add_api_key answers: the key itself, shown this once. */
export interface CreatedApiKey extends ApiKeyInfo {
  key: string;
}

export function describeKey(record: ApiKeyRecord): ApiKeyInfo {
  return {
    id: record.id,
    ...(record.app === undefined ? {} : { app: record.app }),
    ...(record.rate === undefined ? {} : { rate: record.rate }),
    created_at: record.created_at,
  };
}

/** The cluster state's field: a list, so no key id ever becomes an object key. */
export const ApiKeysSchema = z.array(ApiKeyRecordSchema);

/** How the query API authenticates callers: `none` (anyone who can reach it) or `keys`. */
export const QUERY_AUTH_MODES = ["none", "keys"] as const;
export type QueryAuthMode = (typeof QUERY_AUTH_MODES)[number];

/** Every key starts with this, so a leaked one is recognisable (secret scanners, logs). */
export const API_KEY_PREFIX = "clk_";

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** Admin API paths (our extension). */
export const ADD_API_KEY_PATH = "/admin/add_api_key";
export const GET_API_KEYS_PATH = "/admin/get_api_keys";
export const REVOKE_API_KEY_PATH = "/admin/revoke_api_key";

/**
 * `--query-auth` when not given: off on loopback (only this machine can reach the API), keys as
 * soon as the query API listens beyond it.
 */
export function defaultQueryAuth(host: string): QueryAuthMode {
  return isLoopbackHost(host) ? "none" : "keys";
}
