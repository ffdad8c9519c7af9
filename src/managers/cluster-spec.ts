/**
 * What every container manager that runs containers (Docker, Kubernetes) writes the same way: the
 * label keys (Clipper's, plus ours under the same prefix), the ports and paths inside the runtime
 * image, the management daemon's and the query frontend's command lines, and a model replica's
 * CLIPPER_* environment. Pure data and functions; no SDK is imported here.
 */
import { defaultQueryAuth } from "../../runtime/shared/api-keys.js";
import { parseAllowedHosts } from "../../runtime/shared/host-check.js";
import type { ClusterOptions } from "./container-manager.js";
import { ManagerError } from "./errors.js";
import { MAX_FRONTEND_WORKERS } from "../../runtime/shared/frontend-defaults.js";
import { DEFAULT_RPC_AUTH, RPC_SECRET_ENV, versionSecret, type RpcAuthMode, type RpcPrincipal } from "../../runtime/shared/rpc-auth.js";

/** Clipper's label keys (clipper_admin's container_manager.py), plus ours under the same prefix. */
export const LABEL = {
  /** `<cluster>`, on everything a manager creates. */
  cluster: "ai.clipper.container.label",
  /** The role: management | query_frontend | autoscaler | model | model_deployment. */
  role: "ai.clipper.name",
  /** `<name>_<version>` on model replicas (`_` cannot occur in either, so it splits unambiguously). */
  modelContainer: "ai.clipper.model_container.label",
  modelName: "ai.clipper.model.name",
  modelVersion: "ai.clipper.model.version",
  replica: "ai.clipper.model.replica",
  /** JSON of the stored deployment (a Docker label; a Kubernetes annotation, since it is no label value). */
  deployment: "ai.clipper.deployment",
  /** Published ports as configured at start (0: Docker chose one; inspect tells which). Clipper's keys. */
  queryPort: "ai.clipper.query_frontend.query.port",
  managementPort: "ai.clipper.management.port",
  /** The host address the ports are published on. */
  host: "ai.clipper.host",
  /** Path of the management token inside the frontends, when the cluster has one. */
  tokenFile: "ai.clipper.token.file",
  /**
   * On the query frontend: how many worker processes it runs (`--frontend-workers`), so replicas
   * created later are told every worker's RPC port; absent on clusters started before workers (1).
   */
  frontendWorkers: "ai.clipper.query_frontend.workers",
  /** On the query frontend: `plain` or `none` (see rpc-auth.ts); absent on clusters started before RPC auth (none). */
  rpcAuth: "ai.clipper.rpc.auth",
  /** Kubernetes: the registry model images go to by default (an annotation on the management Deployment). */
  registry: "ai.clipper.registry",
} as const;

export type Role = "management" | "query_frontend" | "autoscaler" | "model" | "model_deployment";

/** Ports the runtimes listen on inside their containers (Clipper's defaults). */
export const INTERNAL_PORTS = { query: 1337, management: 1338, rpc: 7000 } as const;

/** Where the management daemon keeps its state inside its container (a volume). */
export const STATE_DIR = "/state";

/** Where the management token is placed in the management and frontend containers. */
export const TOKEN_DIR = "/etc/clipper";
export const TOKEN_FILE = `${TOKEN_DIR}/token`;
/** Where the cluster's RPC key is placed in the frontend containers (never in a replica's or the management daemon's). */
export const RPC_KEY_DIR = "/etc/clipper-rpc";
export const RPC_KEY_FILE = `${RPC_KEY_DIR}/key`;

/** The file a model runtime writes once it has registered with a frontend (Clipper's). */
export const READY_FILE = "/model_is_ready.check";

export function clusterLabels(cluster: string, role?: Role): Record<string, string> {
  return { [LABEL.cluster]: cluster, ...(role ? { [LABEL.role]: role } : {}) };
}

export function modelContainerLabel(name: string, version: string): string {
  return `${name}_${version}`;
}

/** The management daemon's command line inside the runtime image (its working directory). */
export function managementCommand(input: { token: boolean; maxBodyBytes: number; maxConnections?: number; allowedHosts: string[] }): string[] {
  return [
    "node", "dist/runtime/management/main.js",
    "--host", "0.0.0.0",
    "--port", String(INTERNAL_PORTS.management),
    "--state-dir", STATE_DIR,
    ...(input.token ? ["--token-file", TOKEN_FILE] : []),
    "--max-body-bytes", String(input.maxBodyBytes),
    ...maxConnectionsFlags(input.maxConnections),
    ...allowedHostsFlags(input.allowedHosts),
  ];
}

/** The RPC port of each frontend worker: rpcPort, rpcPort + 1, ... (runtime/frontend/workers.ts). */
export function frontendRpcPorts(options: { rpcPort: number; frontendWorkers?: number }): number[] {
  return Array.from({ length: options.frontendWorkers ?? 1 }, (_, i) => options.rpcPort + i);
}

/** The frontend workers' RPC ports inside a frontend container or pod (worker i on 7000 + i). */
export function internalRpcPorts(frontendWorkers: number | undefined): number[] {
  return frontendRpcPorts({ rpcPort: INTERNAL_PORTS.rpc, ...(frontendWorkers === undefined ? {} : { frontendWorkers }) });
}

/**
 * The worker count a frontend container or pod was started with, from the label or annotation
 * that records it (LABEL.frontendWorkers): 1 when absent (a cluster from before workers); a value
 * that is not a count from 1 to MAX_FRONTEND_WORKERS (edited by hand) is refused rather than guessed.
 */
export function recordedFrontendWorkers(value: string | undefined, where: string): number {
  if (value === undefined) return 1;
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_FRONTEND_WORKERS) {
    throw new ManagerError(`${where} says ${LABEL.frontendWorkers}=${JSON.stringify(value)}, not a worker count from 1 to ${MAX_FRONTEND_WORKERS}; ` +
      "stop the cluster and start it again", "CONTROL_API");
  }
  return n;
}

/** The frontend's `--workers N`; one worker is a single process (no flag, no primary), as before workers. */
export function frontendWorkersFlags(o: Pick<ClusterOptions, "frontendWorkers">): string[] {
  return (o.frontendWorkers ?? 1) > 1 ? ["--workers", String(o.frontendWorkers)] : [];
}

/** The query frontend's command line inside the runtime image. */
export function frontendCommand(input: { managementUrl: string; token: boolean; options: ClusterOptions; allowedHosts: string[] }): string[] {
  const o = input.options;
  return [
    "node", "dist/runtime/frontend/main.js",
    "--host", "0.0.0.0",
    "--port", String(INTERNAL_PORTS.query),
    "--rpc-port", String(INTERNAL_PORTS.rpc),
    ...frontendWorkersFlags(o),
    "--management-url", input.managementUrl,
    ...(input.token ? ["--token-file", TOKEN_FILE] : []),
    ...frontendTuningFlags(o, RPC_KEY_FILE),
    ...allowedHostsFlags(input.allowedHosts),
  ];
}

/** The autoscaler host's command line inside the runtime image (src/autoscaler/host-main.ts). */
export const AUTOSCALER_COMMAND: readonly string[] = ["node", "dist/src/autoscaler/host-main.js"];

/**
 * The autoscaler host's environment (src/autoscaler/host.ts HOST_ENV): where it reads the cluster
 * (the daemon's in-cluster address), the token file when the cluster has a token, and the manager.
 */
export function autoscalerEnv(input: {
  cluster: string; managementUrl: string; token: boolean; manager: { kind: "docker" } | { kind: "kubernetes"; namespace: string };
}): Record<string, string> {
  return {
    CLIPPER_CLUSTER: input.cluster,
    CLIPPER_MANAGER: input.manager.kind,
    CLIPPER_ADMIN_URL: input.managementUrl,
    ...(input.token ? { CLIPPER_ADMIN_TOKEN_FILE: TOKEN_FILE } : {}),
    ...(input.manager.kind === "kubernetes" ? { CLIPPER_NAMESPACE: input.manager.namespace } : {}),
  };
}

/**
 * The names the daemon and the frontends must admit in `Host` (runtime/shared/host-check.ts): the
 * user's `allowedHosts` plus the names the manager itself reaches them by. `*` stays alone.
 */
export function allowedHostsOf(options: ClusterOptions, managerNames: readonly string[] = []): string[] {
  const user = options.allowedHosts ?? [];
  try {
    parseAllowedHosts(user);
  } catch (err) {
    // Refused here rather than by a daemon that would exit at start inside a container.
    throw new ManagerError(`allowedHosts: ${err instanceof Error ? err.message : String(err)}`, "INVALID_ARGUMENT");
  }
  if (user.includes("*")) return ["*"];
  return [...new Set([...managerNames, ...user].map((n) => n.toLowerCase()))];
}

/** `--max-connections`, for the daemon and the frontends alike; absent: each process's own default. */
export function maxConnectionsFlags(maxConnections: number | undefined): string[] {
  return maxConnections === undefined ? [] : ["--max-connections", String(maxConnections)];
}

export function allowedHostsFlags(names: readonly string[]): string[] {
  return names.length === 0 ? [] : ["--allowed-hosts", names.join(",")];
}

/** What `--rpc-auth none` gives up, said wherever a cluster is started with it. */
export const RPC_AUTH_NONE_WARNING = "--rpc-auth none: any process that reaches the RPC port can register as any model version " +
  "and answer its queries; use it only for Clipper's own container images, on a network nothing else reaches (docs/security.md)";

/** The cluster's RPC authentication mode (plain unless asked otherwise). */
export function rpcAuthOf(o: Pick<ClusterOptions, "rpcAuth">): RpcAuthMode {
  return o.rpcAuth ?? DEFAULT_RPC_AUTH;
}

/**
 * The query frontend's tuning and RPC flags from the cluster options, the same under every manager;
 * `rpcKeyFile` is where that manager puts the cluster's RPC key for the frontend (used with plain auth).
 */
export function frontendTuningFlags(o: ClusterOptions, rpcKeyFile: string): string[] {
  const auth = rpcAuthOf(o);
  return [
    "--rpc-auth", auth,
    ...(auth === "plain" ? ["--rpc-key-file", rpcKeyFile] : []),
    ...(o.maxRpcFrameBytes === undefined ? [] : ["--max-rpc-frame-bytes", String(o.maxRpcFrameBytes)]),
    "--max-body-bytes", String(o.maxBodyBytes),
    ...maxConnectionsFlags(o.maxConnections),
    "--replica-timeout-ms", String(o.replicaTimeoutMs),
    ...(o.cacheBytes === undefined ? [] : ["--cache-bytes", String(o.cacheBytes)]),
    ...(o.maxBatch === undefined ? [] : ["--max-batch", String(o.maxBatch)]),
    ...(o.maxInFlight === undefined ? [] : ["--max-in-flight", String(o.maxInFlight)]),
    ...(o.batchBudgetMs === undefined ? [] : ["--batch-budget-ms", String(o.batchBudgetMs)]),
    ...(o.oipTimeoutMs === undefined ? [] : ["--oip-timeout-ms", String(o.oipTimeoutMs)]),
    ...(o.admission === false ? ["--no-admission"] : []),
    // Always explicit: inside a container the frontend listens on 0.0.0.0 whatever the cluster's host.
    "--query-auth", o.queryAuth ?? defaultQueryAuth(o.host),
  ];
}

/**
 * A replica's credential, as its environment carries it: the version's secret derived from the
 * cluster's RPC key, or nothing when the cluster admits any peer (no key).
 */
export function rpcSecretEnv(rpcKey: string | undefined, who: RpcPrincipal): Record<string, string> {
  return rpcKey === undefined ? {} : { [RPC_SECRET_ENV]: versionSecret(rpcKey, who) };
}

/** A model replica's environment: the deployment's own, then what the runtime must get right. */
export function modelRuntimeEnv(input: {
  cluster: string;
  name: string;
  version: string;
  inputType: string;
  env?: Record<string, string>;
  /** Where the frontends' RPC port is (CLIPPER_IP). */
  frontendHost: string;
  /** Every frontend worker's RPC port (CLIPPER_PORT, a list); default: Clipper's one port. */
  rpcPorts?: readonly number[];
  replica?: number;
}): Record<string, string> {
  return {
    ...input.env,
    CLIPPER_CLUSTER: input.cluster,
    CLIPPER_MODEL_NAME: input.name,
    CLIPPER_MODEL_VERSION: input.version,
    CLIPPER_INPUT_TYPE: input.inputType,
    CLIPPER_IP: input.frontendHost,
    CLIPPER_PORT: (input.rpcPorts ?? [INTERNAL_PORTS.rpc]).join(","),
    ...(input.replica === undefined ? {} : { CLIPPER_REPLICA_ID: String(input.replica) }),
  };
}

/** A host a client on this machine can reach a server bound to `host` on. */
export function connectHost(host: string): string {
  if (host === "0.0.0.0" || host === "::" || host === "[::]" || host === "") return "127.0.0.1";
  return host;
}

/** A host as it is written in a URL (IPv6 addresses in brackets). */
export function urlHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}
