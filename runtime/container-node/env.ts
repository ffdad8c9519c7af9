/**
 * The Node model container's configuration, read from Clipper's CLIPPER_* environment variables
 * (docs: shared/design/clipper-compat.md, "Container environment"). Parsing never touches the file
 * system: whether the predict module exists is the loader's question.
 */
import { z } from "zod";
import { canonicalInputType, type InputType } from "../shared/input-types.js";
import { nameProblem, prohibitedCharsProblem } from "../shared/names.js";
import { RPC_SECRET_ENV } from "../shared/rpc-auth.js";
import { WarmupSpecError, warmupFromEnv, type WarmupSpec } from "../shared/warmup.js";

export interface PredictSpec {
  /** As given: relative to the model path, or absolute. Undefined: look for predict.{mjs,js,ts}. */
  file: string | undefined;
  exportName: string;
}

/** How the runtime finds its query frontends (CLIPPER_FRONTEND_DISCOVERY). */
export type FrontendDiscovery = "none" | "dns";
export const FRONTEND_DISCOVERY_MODES: readonly FrontendDiscovery[] = ["none", "dns"];

export interface ContainerConfig {
  modelName: string;
  modelVersion: string;
  /** CLIPPER_IP as given (brackets of an IPv6 literal removed); with "dns", hosts joined by ",". */
  ip: string;
  /** The hosts in CLIPPER_IP: exactly one with discovery "none", one or more with "dns". */
  hosts: string[];
  /** The first of `ports` (Clipper's single CLIPPER_PORT). */
  port: number;
  /** CLIPPER_PORT as a comma-separated list: one port per frontend worker (`--frontend-workers`); each gets a connection. */
  ports: number[];
  /** "none": one connection to CLIPPER_IP:CLIPPER_PORT; "dns": one per address the hosts resolve to. */
  frontendDiscovery: FrontendDiscovery;
  /** With "dns": how often the hosts are resolved again (CLIPPER_DISCOVERY_INTERVAL_MS). */
  discoveryIntervalMs: number;
  inputType: InputType;
  modelPath: string;
  predict: PredictSpec;
  readyFile: string;
  heartbeatIntervalMs: number;
  reconnectAfterMs: number;
  /** CLIPPER_DRAIN_TIMEOUT_MS: how long a stopping container waits for each drain acknowledgement; 0: no drain. */
  drainTimeoutMs: number;
  /** CLIPPER_RPC_SECRET: this model version's RPC credential (rpc-auth.ts); undefined: none (NULL mechanism). Never logged. */
  rpcSecret: string | undefined;
  /** CLIPPER_WARMUP_INPUT / CLIPPER_WARMUP_BATCHES (shared/warmup.ts): predicted before connecting; undefined: none. */
  warmup: WarmupSpec | undefined;
}

/** A bad or missing environment variable; main prints the message and exits with code 2. */
export class EnvError extends Error {
  override readonly name = "EnvError";
}

export const DEFAULT_PREDICT_EXPORT = "predict";
/** A frontend that has not acknowledged a drain within this long does not know the message (Clipper's). */
export const DEFAULT_DRAIN_TIMEOUT_MS = 5000;
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Splits CLIPPER_PREDICT "file[:exportName]"; a suffix that is not an identifier stays in the path. */
export function parsePredictSpec(value: string | undefined): PredictSpec {
  const text = value?.trim();
  if (!text) return { file: undefined, exportName: DEFAULT_PREDICT_EXPORT };
  const colon = text.lastIndexOf(":");
  if (colon > 0 && IDENTIFIER.test(text.slice(colon + 1))) {
    return { file: text.slice(0, colon), exportName: text.slice(colon + 1) };
  }
  if (colon === text.length - 1) throw new EnvError(`CLIPPER_PREDICT '${text}' has an empty export name after ':'`);
  if (colon === 0) throw new EnvError(`CLIPPER_PREDICT '${text}' names no file before ':'`);
  return { file: text, exportName: DEFAULT_PREDICT_EXPORT };
}

const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : v.trim()));

function modelIdentifier(kind: string) {
  return z
    .string({ error: (issue) => (issue.input === undefined ? "is required" : "must be a string") })
    .transform((v) => v.trim())
    .superRefine((v, ctx) => {
      const problem = prohibitedCharsProblem(kind, v) ?? nameProblem(kind, v);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    });
}

function integerVar(defaultValue: number, min: number, max: number) {
  return optionalText.transform((v, ctx) => {
    if (v === undefined) return defaultValue;
    const n = /^\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: "custom", message: `must be an integer from ${min} to ${max}, got '${v}'` });
      return z.NEVER;
    }
    return n;
  });
}

const EnvSchema = z.object({
  CLIPPER_MODEL_NAME: modelIdentifier("model name"),
  CLIPPER_MODEL_VERSION: modelIdentifier("model version"),
  // One host, or (with CLIPPER_FRONTEND_DISCOVERY=dns) a comma-separated list of hosts.
  CLIPPER_IP: optionalText.transform((v, ctx) => {
    const hosts = (v ?? "127.0.0.1").split(",").map((h) => h.trim());
    for (const host of hosts) {
      if (host === "" || /[\s/]/.test(host)) {
        ctx.addIssue({ code: "custom", message: `must be a host name or IP address (or, with CLIPPER_FRONTEND_DISCOVERY=dns, a comma-separated list of them), got '${v}'` });
        return z.NEVER;
      }
    }
    return hosts.map((h) => (h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h));
  }),
  CLIPPER_PORT: optionalText.transform((v, ctx) => {
    const ports = parsePortList(v ?? "7000");
    if (typeof ports === "string") {
      ctx.addIssue({ code: "custom", message: ports });
      return z.NEVER;
    }
    return ports;
  }),
  CLIPPER_FRONTEND_DISCOVERY: optionalText.transform((v, ctx) => {
    const mode = (v ?? "none").toLowerCase();
    if (!(FRONTEND_DISCOVERY_MODES as readonly string[]).includes(mode)) {
      ctx.addIssue({ code: "custom", message: `'${v}' is not one of ${FRONTEND_DISCOVERY_MODES.join(", ")}` });
      return z.NEVER;
    }
    return mode as FrontendDiscovery;
  }),
  CLIPPER_DISCOVERY_INTERVAL_MS: integerVar(5000, 100, 2_147_483_647),
  CLIPPER_INPUT_TYPE: optionalText.transform((v, ctx) => {
    const type = canonicalInputType(v ?? "doubles");
    if (!type) {
      ctx.addIssue({
        code: "custom",
        message: `unknown input type '${v}' (expected bytes, integers, floats, doubles or strings, or an alias)`,
      });
      return z.NEVER;
    }
    return type;
  }),
  CLIPPER_MODEL_PATH: optionalText.transform((v) => v ?? "/model"),
  CLIPPER_PREDICT: optionalText,
  CLIPPER_READY_FILE: optionalText.transform((v) => v ?? "/model_is_ready.check"),
  CLIPPER_HEARTBEAT_INTERVAL_MS: integerVar(5000, 1, 2_147_483_647),
  CLIPPER_RECONNECT_AFTER_MS: integerVar(30000, 1, 2_147_483_647),
  CLIPPER_DRAIN_TIMEOUT_MS: integerVar(DEFAULT_DRAIN_TIMEOUT_MS, 0, 600_000),
  [RPC_SECRET_ENV]: optionalText,
});

/** Reads the container configuration; throws EnvError with a one-line message naming each problem. */
export function parseContainerEnv(env: NodeJS.ProcessEnv = process.env): ContainerConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join(".")} ${issue.message}`);
    throw new EnvError(`invalid environment: ${problems.join("; ")}`);
  }
  const e = parsed.data;
  if (e.CLIPPER_FRONTEND_DISCOVERY === "none" && e.CLIPPER_IP.length > 1) {
    throw new EnvError(
      `invalid environment: CLIPPER_IP lists ${e.CLIPPER_IP.length} hosts, but CLIPPER_FRONTEND_DISCOVERY is none; set CLIPPER_FRONTEND_DISCOVERY=dns to connect to each`,
    );
  }
  let predict: PredictSpec;
  try {
    predict = parsePredictSpec(e.CLIPPER_PREDICT);
  } catch (err) {
    throw new EnvError(`invalid environment: ${(err as Error).message}`);
  }
  let warmup: WarmupSpec | undefined;
  try {
    warmup = warmupFromEnv(e.CLIPPER_INPUT_TYPE, env);
  } catch (err) {
    if (!(err instanceof WarmupSpecError)) throw err;
    throw new EnvError(`invalid environment: ${err.message}`);
  }
  return {
    modelName: e.CLIPPER_MODEL_NAME,
    modelVersion: e.CLIPPER_MODEL_VERSION,
    ip: e.CLIPPER_IP.join(","),
    hosts: e.CLIPPER_IP,
    port: e.CLIPPER_PORT[0]!,
    ports: e.CLIPPER_PORT,
    frontendDiscovery: e.CLIPPER_FRONTEND_DISCOVERY,
    discoveryIntervalMs: e.CLIPPER_DISCOVERY_INTERVAL_MS,
    inputType: e.CLIPPER_INPUT_TYPE,
    modelPath: e.CLIPPER_MODEL_PATH,
    predict,
    readyFile: e.CLIPPER_READY_FILE,
    heartbeatIntervalMs: e.CLIPPER_HEARTBEAT_INTERVAL_MS,
    reconnectAfterMs: e.CLIPPER_RECONNECT_AFTER_MS,
    drainTimeoutMs: e.CLIPPER_DRAIN_TIMEOUT_MS,
    rpcSecret: e[RPC_SECRET_ENV],
    warmup,
  };
}

/** A frontend runs at most this many workers (runtime/frontend/workers.ts); a longer list is a mistake. */
export const MAX_FRONTEND_PORTS = 64;

/**
 * CLIPPER_PORT: one port (Clipper's), or a comma-separated list of distinct ports, one per
 * frontend worker. Returns the ports, or a message saying what is wrong.
 */
export function parsePortList(text: string): number[] | string {
  const parts = text.split(",").map((p) => p.trim());
  const ports: number[] = [];
  for (const part of parts) {
    const n = /^\d+$/.test(part) ? Number(part) : NaN;
    if (!Number.isSafeInteger(n) || n < 1 || n > 65535) {
      return `must be a port from 1 to 65535, or a comma-separated list of them (one per frontend worker), got '${text}'`;
    }
    if (ports.includes(n)) return `lists port ${n} twice, got '${text}'`;
    ports.push(n);
  }
  if (ports.length > MAX_FRONTEND_PORTS) return `lists ${ports.length} ports; at most ${MAX_FRONTEND_PORTS}`;
  return ports;
}

/** The ZeroMQ endpoint of a query frontend (IPv6 literals in brackets). */
export function frontendAddress(config: Pick<ContainerConfig, "ip" | "port">): string {
  const host = config.ip.includes(":") ? `[${config.ip}]` : config.ip;
  return `tcp://${host}:${config.port}`;
}
