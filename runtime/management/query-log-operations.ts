/**
 * The admin write of the query log setting (our extension; docs/rollouts.md#query-log): a pure
 * function over the state like operations.ts. The setting lives in the cluster state, so it is
 * durable as every write is and reaches every frontend on the watch stream.
 */
import { z } from "zod";
import { own } from "../shared/dict.js";
import { DEFAULT_QUERY_LOG_MAX_MB, MAX_QUERY_LOG_MAX_MB, type QueryLogConfig, SET_QUERY_LOG_PATH } from "../shared/query-log.js";
import type { ClusterState } from "../shared/state.js";
import { badRequest } from "./errors.js";
import { parseBody, spec, type WriteOperation } from "./operations.js";

export const APP_NAME_BODY = spec(z.object({ app_name: z.string() }), `{"app_name" := string}`);

const SET_BODY = spec(
  z.object({
    app_name: z.string(),
    sample: z.number().optional(),
    max_mb: z.number().optional(),
    off: z.boolean().optional(),
  }),
  `{"app_name" := string, "sample" := number in (0, 1], "max_mb" := int (optional, default ${DEFAULT_QUERY_LOG_MAX_MB})} ` +
    `or {"app_name" := string, "off" := true}`,
);

/** The application a query log request names; 400 when there is none of that name. */
export function requireApp(state: ClusterState, appName: string): void {
  if (!own(state.applications, appName)) throw badRequest(`Application '${appName}' does not exist`);
}

export function describeQueryLog(config: QueryLogConfig): string {
  return `sampling ${+(config.sample * 100).toPrecision(6)}% of queries, at most ${config.max_mb} MiB`;
}

export const setQueryLog: WriteOperation = (state, body) => {
  const b = parseBody(body, SET_BODY);
  requireApp(state, b.app_name);
  const current = own(state.query_log, b.app_name);
  if (b.off) {
    const given = (["sample", "max_mb"] as const).filter((k) => b[k] !== undefined);
    if (given.length > 0) throw badRequest(`"off": true takes no settings; drop ${given.join(", ")}`);
    if (!current) return { text: `The query log of '${b.app_name}' is already off` };
    return { changes: [{ field: "query_log", key: b.app_name }], text: `Switched the query log of '${b.app_name}' off; what it recorded is kept` };
  }
  if (b.sample === undefined) throw badRequest(`sample is required (or send "off": true to switch the query log off)`);
  if (!Number.isFinite(b.sample) || b.sample <= 0 || b.sample > 1) {
    throw badRequest(`sample must be a number above 0 and at most 1, got ${b.sample}`);
  }
  const maxMb = b.max_mb ?? current?.max_mb ?? DEFAULT_QUERY_LOG_MAX_MB;
  if (!Number.isInteger(maxMb) || maxMb < 1 || maxMb > MAX_QUERY_LOG_MAX_MB) {
    throw badRequest(`max_mb must be a whole number from 1 to ${MAX_QUERY_LOG_MAX_MB}, got ${maxMb}`);
  }
  const config: QueryLogConfig = { sample: b.sample, max_mb: maxMb };
  const text = `Set the query log of '${b.app_name}': ${describeQueryLog(config)}`;
  if (current && current.sample === config.sample && current.max_mb === config.max_mb) return { text };
  return { changes: [{ field: "query_log", key: b.app_name, value: config }], text };
};

export const QUERY_LOG_WRITE_OPERATIONS: Readonly<Record<string, WriteOperation>> = {
  [SET_QUERY_LOG_PATH]: setQueryLog,
};
