/**
 * Errors of the container managers (local, Docker, Kubernetes). Each is a ClipperError (so the CLI prints it as
 * one line with the right exit code) and carries a finer `reason` and a one-line message meant to
 * be shown to a user as it is.
 */
import { ClipperError, type ErrorCode } from "../errors.js";
import { MAX_FRONTEND_WORKERS } from "../../runtime/shared/frontend-defaults.js";

export type ManagerErrorCode =
  | "INVALID_ARGUMENT"
  | "CLUSTER_NOT_RUNNING"
  | "CLUSTER_ALREADY_RUNNING"
  | "PORT_IN_USE"
  | "STARTUP_FAILED"
  | "NOT_BUILT"
  | "NOT_FOUND"
  | "CONFLICT"
  | "CONTROL_API";

/** How each manager reason maps onto the library's error codes (and so the CLI's exit codes). */
const CLIPPER_CODES: Record<ManagerErrorCode, ErrorCode> = {
  INVALID_ARGUMENT: "USAGE",
  CLUSTER_NOT_RUNNING: "NO_CLUSTER",
  CLUSTER_ALREADY_RUNNING: "MANAGER",
  PORT_IN_USE: "USAGE",
  STARTUP_FAILED: "MANAGER",
  NOT_BUILT: "MANAGER",
  NOT_FOUND: "MANAGER",
  CONFLICT: "MANAGER",
  CONTROL_API: "MANAGER",
};

export class ManagerError extends ClipperError {
  override readonly name: string = "ManagerError";
  constructor(
    message: string,
    readonly reason: ManagerErrorCode = "CONTROL_API",
    hint?: string,
  ) {
    super(CLIPPER_CODES[reason], message, hint);
  }
}

/** No supervisor answers for the cluster. */
export class ClusterNotRunningError extends ManagerError {
  override readonly name = "ClusterNotRunningError";
  constructor(readonly cluster: string) {
    super(`no running cluster named ${cluster} (start one with \`clipper start\`)`, "CLUSTER_NOT_RUNNING");
  }
}

export class ClusterAlreadyRunningError extends ManagerError {
  override readonly name = "ClusterAlreadyRunningError";
  constructor(
    readonly cluster: string,
    readonly pid: number,
    detail = "",
  ) {
    super(
      `a cluster named ${cluster} is already running (supervisor pid ${pid}${detail}); ` +
        "stop it with `clipper stop` or choose another cluster name",
      "CLUSTER_ALREADY_RUNNING",
    );
  }
}

export class PortInUseError extends ManagerError {
  override readonly name = "PortInUseError";
  constructor(
    readonly port: number,
    readonly flag: string,
    reason = "is already in use",
  ) {
    super(`port ${port} ${reason} (choose another with ${flag})`, "PORT_IN_USE");
  }
}

/** A component did not come up in time, or the supervisor died while starting. */
export class StartupError extends ManagerError {
  override readonly name = "StartupError";
  constructor(
    message: string,
    readonly component: string,
    readonly logFile: string,
  ) {
    super(message, "STARTUP_FAILED");
  }
}

/** The three cluster ports: whole numbers in 0..65535 (0: any free port), any fixed ones distinct. */
export function checkClusterPorts(options: { queryPort: number; managementPort: number; rpcPort: number; frontendWorkers?: number }): void {
  for (const [key, value] of [
    ["queryPort", options.queryPort],
    ["managementPort", options.managementPort],
    ["rpcPort", options.rpcPort],
  ] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 65535) {
      throw new ManagerError(`${key} must be an integer from 0 to 65535 (got ${value})`, "INVALID_ARGUMENT");
    }
  }
  const workers = checkFrontendWorkers(options);
  // Worker i listens on rpcPort + i: the whole range must fit and miss the other two ports.
  const rpcPorts = options.rpcPort === 0 ? [] : Array.from({ length: workers }, (_, i) => options.rpcPort + i);
  if (rpcPorts.some((p) => p > 65535)) {
    throw new ManagerError(`rpcPort ${options.rpcPort} leaves no room for ${workers} frontend workers (worker i listens on rpcPort + i)`, "INVALID_ARGUMENT");
  }
  const fixed = [options.queryPort, options.managementPort, ...rpcPorts].filter((p) => p !== 0);
  if (new Set(fixed).size !== fixed.length) {
    throw new ManagerError(
      workers > 1
        ? `the query and management ports must differ from each other and from the RPC ports ${rpcPorts[0]}-${rpcPorts.at(-1)} (one per frontend worker)`
        : "the query, management and RPC ports must differ",
      "INVALID_ARGUMENT",
    );
  }
}

/** The frontend worker count (absent: 1), refused unless a whole number from 1 to MAX_FRONTEND_WORKERS. */
export function checkFrontendWorkers(options: { frontendWorkers?: number }): number {
  const workers = options.frontendWorkers ?? 1;
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_FRONTEND_WORKERS) {
    throw new ManagerError(`frontendWorkers must be an integer from 1 to ${MAX_FRONTEND_WORKERS} (got ${workers})`, "INVALID_ARGUMENT");
  }
  return workers;
}
