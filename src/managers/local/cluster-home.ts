/**
 * The on-disk layout of local clusters:
 *
 *   $CLIPPER_HOME (default ~/.clipper)/clusters/<name>/
 *     supervisor.json    pid, control port and token, addresses of the running supervisor
 *     supervisor-config.json  what the manager handed the supervisor
 *     deployments.json   desired replicas per model version (durable, replaced atomically)
 *     children.json      live child processes (to stop leftovers of a supervisor that died)
 *     token              management API token (0600), only when listening beyond loopback
 *     rpc-key            the cluster's RPC key (0600; a new one at every start), read by the
 *                        frontend (--rpc-key-file) and the supervisor, never handed to a replica
 *     logs/<component>.log
 *     state/             the management daemon's --state-dir
 *     ready/<model>-<version>-<replica>  replica readiness files
 */
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import type { z } from "zod";
import type { ClusterAddresses, ClusterOptions, LogSource } from "../container-manager.js";
import type { LogCandidate } from "../common/log-components.js";
import { connectHost, urlHost } from "../cluster-spec.js";
import { ManagerError } from "../errors.js";
import { writeFileAtomic } from "../../../runtime/shared/atomic-file.js";
import { clipperHome } from "../../context.js";
import { generateRpcKey } from "../../../runtime/shared/rpc-auth.js";

export { writeFileAtomic };
import { describeIssues } from "./schemas.js";

export { clipperHome };

export interface ClusterPaths {
  cluster: string;
  dir: string;
  supervisorFile: string;
  configFile: string;
  deploymentsFile: string;
  childrenFile: string;
  tokenFile: string;
  rpcKeyFile: string;
  logsDir: string;
  stateDir: string;
  readyDir: string;
}

export function clusterPaths(home: string, cluster: string): ClusterPaths {
  return clusterPathsAt(join(resolve(home), "clusters", cluster), cluster);
}

/** The layout inside a given cluster directory. */
export function clusterPathsAt(dir: string, cluster: string): ClusterPaths {
  return {
    cluster,
    dir,
    supervisorFile: join(dir, "supervisor.json"),
    configFile: join(dir, "supervisor-config.json"),
    deploymentsFile: join(dir, "deployments.json"),
    childrenFile: join(dir, "children.json"),
    tokenFile: join(dir, "token"),
    rpcKeyFile: join(dir, "rpc-key"),
    logsDir: join(dir, "logs"),
    stateDir: join(dir, "state"),
    readyDir: join(dir, "ready"),
  };
}

/** Creates the cluster directory and its sub-directories, readable by the owner only. */
export function ensureClusterDirs(paths: ClusterPaths): void {
  for (const dir of [paths.dir, paths.logsDir, paths.stateDir, paths.readyDir]) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
}

/** The component name of one model replica, which also names its log and readiness files. */
export function replicaComponent(name: string, version: string, replica: number): string {
  return `${name}-${version}-${replica}`;
}

export function logFileOf(paths: ClusterPaths, component: string): string {
  return join(paths.logsDir, `${component}.log`);
}

export function readyFileOf(paths: ClusterPaths, component: string): string {
  return join(paths.readyDir, component);
}


/** Reads and validates a JSON file; undefined when it does not exist. */
export function readJsonFile<T extends z.ZodType>(path: string, schema: T): z.infer<T> | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ManagerError(`${path} is not valid JSON`, "INVALID_ARGUMENT");
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ManagerError(`${path} is not valid: ${describeIssues(parsed.error)}`, "INVALID_ARGUMENT");
  return parsed.data;
}

/** Reads the management token, creating one (0600) when there is none yet. */
export function ensureToken(paths: ClusterPaths): string {
  if (existsSync(paths.tokenFile)) {
    const existing = readFileSync(paths.tokenFile, "utf8").trim();
    if (existing.length >= 16) {
      chmodSync(paths.tokenFile, 0o600);
      return existing;
    }
  }
  const token = randomBytes(32).toString("hex");
  writeFileAtomic(paths.tokenFile, `${token}\n`, 0o600);
  return token;
}

/**
 * Writes a new RPC key for the cluster (0600). A new key at each start: replicas get their
 * secrets from the supervisor when it starts them, so nothing outlives a cluster's run.
 */
export function writeRpcKey(paths: ClusterPaths): void {
  writeFileAtomic(paths.rpcKeyFile, `${generateRpcKey()}\n`, 0o600);
}

/** The cluster's RPC key; a clear error when the file is missing or empty. */
export function readRpcKey(file: string): string {
  let key: string;
  try {
    key = readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new ManagerError(`cannot read the cluster's RPC key ${file}: ${(err as Error).message}`, "INVALID_ARGUMENT");
  }
  if (!key) throw new ManagerError(`the cluster's RPC key file ${file} is empty`, "INVALID_ARGUMENT");
  return key;
}

export function readToken(file: string): string | undefined {
  try {
    const token = readFileSync(file, "utf8").trim();
    return token || undefined;
  } catch {
    return undefined;
  }
}

export function addressesFor(options: ClusterOptions): Omit<ClusterAddresses, "token"> & { manager: "local" } {
  const host = urlHost(connectHost(options.host));
  const queryUrl = `http://${host}:${options.queryPort}`;
  return {
    cluster: options.cluster,
    manager: "local",
    queryUrl,
    managementUrl: `http://${host}:${options.managementPort}`,
    rpcAddress: `tcp://${host}:${options.rpcPort}`,
    metricsUrl: `${queryUrl}/metrics`,
  };
}

/** All log files of a cluster, as component → path. */
export function listLogFiles(paths: ClusterPaths): LogSource[] {
  let names: string[];
  try {
    names = readdirSync(paths.logsDir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith(".log"))
    .sort()
    .map((n) => ({ component: n.slice(0, -".log".length), path: join(paths.logsDir, n) }));
}

/**
 * The cluster's log files as the shared logs grammar sees them (src/managers/common/log-components.ts):
 * management and frontend by role, a replica's log owned by the deployment whose component names
 * it, a replica log of a forgotten deployment still a model's (by its trailing number), the
 * supervisor's own log "other".
 */
export function logCandidates(
  paths: ClusterPaths,
  deployments: readonly { name: string; version: string }[],
): (LogCandidate & LogSource)[] {
  return listLogFiles(paths).map((source) => {
    const { component } = source;
    if (component === "management" || component === "frontend") return { ...source, role: component };
    const numbered = /-(\d+)$/.exec(component);
    if (!numbered) return { ...source, role: "other" };
    const replica = Number(numbered[1]);
    const owner = deployments.find((d) => replicaComponent(d.name, d.version, replica) === component);
    return { ...source, role: "model", ...(owner ? { model: { name: owner.name, version: owner.version, replica } } : {}) };
  });
}
