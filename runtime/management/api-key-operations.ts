/**
 * The admin API of query API keys (our extension; docs/security.md): create, list, revoke. Pure
 * functions over the state like operations.ts; the daemon generates each key, stores only its hash,
 * and answers the key once, in the create call's reply (never in the log line).
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import {
  ADD_API_KEY_PATH,
  API_KEY_PREFIX,
  type ApiKeyRecord,
  describeKey,
  GET_API_KEYS_PATH,
  hashApiKey,
  REVOKE_API_KEY_PATH,
} from "../shared/api-keys.js";
import { cloneState } from "../shared/state.js";
import { hasOwn } from "../shared/dict.js";
import { badRequest } from "./errors.js";
import { parseBody, type ReadOperation, type Reply, spec, type WriteOperation, type WriteOutcome } from "./operations.js";

/** A write whose answer is not its log text (the created key must not reach the log). */
export type RepliedWriteOperation = (...args: Parameters<WriteOperation>) => WriteOutcome & { reply?: Reply };

/** Keeps the state (and every snapshot sent to the frontends) bounded. */
export const MAX_API_KEYS = 10_000;
/** Far above any sensible per-key limit; keeps the bucket arithmetic exact. */
const MAX_RATE = 1_000_000;

const BODIES = {
  add: spec(
    z.object({
      app: z.string().min(1).optional(),
      rate: z.number().positive().max(MAX_RATE).optional(),
    }),
    `{"app" := string (optional: the one application the key may query), "rate" := number > 0 (optional: requests per second, at most ${MAX_RATE})}`,
  ),
  revoke: spec(z.object({ id: z.string() }), `{"id" := string}`),
};

export const addApiKey: RepliedWriteOperation = (state, body) => {
  const b = parseBody(body, BODIES.add);
  if (b.app !== undefined && !hasOwn(state.applications, b.app)) {
    throw badRequest(`Application '${b.app}' does not exist: create it first, or omit "app" for a key valid for every application`);
  }
  const keys = state.api_keys ?? [];
  if (keys.length >= MAX_API_KEYS) throw badRequest(`There are already ${MAX_API_KEYS} API keys: revoke unused ones first`);
  let id: string;
  do id = randomBytes(6).toString("hex");
  while (keys.some((k) => k.id === id));
  const key = `${API_KEY_PREFIX}${randomBytes(32).toString("base64url")}`;
  const record: ApiKeyRecord = {
    id,
    sha256: hashApiKey(key),
    ...(b.app === undefined ? {} : { app: b.app }),
    ...(b.rate === undefined ? {} : { rate: b.rate }),
    created_at: new Date().toISOString(),
  };
  const next = cloneState(state);
  next.api_keys = [...keys, record];
  return {
    next,
    text: `Created API key '${id}'${b.app === undefined ? "" : ` for application '${b.app}'`}`,
    reply: { kind: "json", value: { ...describeKey(record), key } },
  };
};

export const revokeApiKey: RepliedWriteOperation = (state, body) => {
  const b = parseBody(body, BODIES.revoke);
  const keys = state.api_keys ?? [];
  if (!keys.some((k) => k.id === b.id)) throw badRequest(`No API key with id '${b.id}' exists`);
  const next = cloneState(state);
  next.api_keys = keys.filter((k) => k.id !== b.id);
  return { next, text: `Revoked API key '${b.id}'` };
};

/** Clipper's read operations take a body; this one needs none (an empty body or `{}`). */
export const getApiKeys: ReadOperation = ({ state }) => ({ kind: "json", value: (state.api_keys ?? []).map(describeKey) });

export const API_KEY_WRITE_OPERATIONS: Readonly<Record<string, RepliedWriteOperation>> = {
  [ADD_API_KEY_PATH]: addApiKey,
  [REVOKE_API_KEY_PATH]: revokeApiKey,
};

export const API_KEY_READ_OPERATIONS: Readonly<Record<string, ReadOperation>> = {
  [GET_API_KEYS_PATH]: getApiKeys,
};
