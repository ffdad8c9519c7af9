/**
 * The embedded default ContainerManager: everything runs as local processes under one detached
 * supervisor per cluster (see supervisor.ts). Needs nothing but Node.js (and Python for Python models).
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isLoopbackHost } from "../../../runtime/shared/loopback.js";
import { packageRoot, pythonRuntimeDir, runtimeEntry } from "../../../runtime/shared/package-root.js";
import type {
  ClusterAddresses,
  ClusterOptions,
  ClusterStatus,
  ContainerManager,
  DeployedReplicas,
  LogLine,
  LogSource,
  LogStreamOptions,
  LogTail,
  ModelDeployment,
  StatusOptions,
} from "../container-manager.js";
import { streamLogFiles } from "./log-follow.js";
import { processUsage, procAvailable } from "./proc-usage.js";
import { httpProblem } from "../../http-fetch.js";
import { readLogTail } from "../../log-tail.js";
import { lastLogMessage } from "../../log-lines.js";
import {
  addressesFor,
  clipperHome,
  clusterPaths,
  ensureClusterDirs,
  ensureToken,
  listLogFiles,
  logCandidates,
  logFileOf,
  readJsonFile,
  readToken,
  writeFileAtomic,
  writeRpcKey,
  type ClusterPaths,
} from "./cluster-home.js";
import { rpcAuthOf } from "../cluster-spec.js";
import { ControlClient, ControlUnavailableError } from "./control-client.js";
import { checkClusterPorts, ClusterAlreadyRunningError, ClusterNotRunningError, ManagerError, StartupError } from "../errors.js";
import { describeExit } from "./managed-process.js";
import { assertPortsFree, findFreePortRun, findFreePorts, frontendRpcPorts } from "./ports.js";
import { acquireStartLock } from "./start-lock.js";
import { commandLine, pidAlive, signalGroup, stopLeftovers, waitForExit } from "./processes.js";
import { checkReplicas, selectLogs, systemClock, waitUntil, type Clock } from "../common/index.js";
import {
  ChildrenFileSchema,
  ClusterNameSchema,
  ClusterOptionsSchema,
  DEFAULT_STOP_GRACE_MS,
  DeploymentsFileSchema,
  describeIssues,
  SupervisorConfigSchema,
  SupervisorRecordSchema,
  type ComponentCommands,
  type DeploymentsResponse,
  type LogsResponse,
  type StatusResponse,
  type StoppedResponse,
  type SupervisorConfig,
  type SupervisorRecord,
} from "./schemas.js";
import type { z } from "zod";
import { isDirectory, isFile } from "../../../runtime/shared/path-kind.js";
import { findPython, type PythonInterpreter } from "../../python/interpreter.js";
import { checkPickledPython } from "../../python/pickled-header.js";

export interface LocalManagerOptions {
  /** Cluster name (default "default"); several clusters can run side by side on other ports. */
  cluster?: string;
  /** Where clusters keep their files (default $CLIPPER_HOME, else ~/.clipper). */
  home?: string;
  /**
   * Python interpreter for Python models that name none; unset, the rule of src/python/interpreter.ts
   * (the cluster's `start --python`, else $CLIPPER_PYTHON, else the first of python3 on PATH and /usr/bin/python3 that imports numpy).
   */
  python?: string;
  /** How long a stopping child gets after SIGTERM before SIGKILL (default 30 000 ms: a replica drains, common/stop-grace.ts). */
  stopGraceMs?: number;
  /**
   * FOR TESTS AND DEVELOPMENT ONLY: replaces the program run for the management daemon, the
   * query frontend, or Python / Node replicas. The usual flags and environment are still passed.
   */
  componentCommands?: ComponentCommands;
  /** What start's readiness loop waits on (tests drive it with a scripted clock). */
  clock?: Clock;
}

type Probe =
  | { state: "running"; record: SupervisorRecord; client: ControlClient }
  | { state: "unresponsive"; record: SupervisorRecord }
  | { state: "stale"; record?: SupervisorRecord }
  | { state: "none" };

const COMPONENT_TITLES: Record<string, string> = {
  supervisor: "the supervisor",
  management: "the management daemon",
  frontend: "the query frontend",
};

export class LocalContainerManager implements ContainerManager {
  readonly kind = "local" as const;
  readonly capabilities = { runsImages: false, pullsFromRegistry: false, defaultReadyTimeoutMs: 60_000, reportsPods: false };
  readonly cluster: string;
  readonly home: string;
  readonly paths: ClusterPaths;
  private readonly python: string | undefined;
  private readonly stopGraceMs: number;
  private readonly componentCommands: ComponentCommands | undefined;
  private readonly clock: Clock;

  constructor(options: LocalManagerOptions = {}) {
    const cluster = options.cluster ?? "default";
    const valid = ClusterNameSchema.safeParse(cluster);
    if (!valid.success) throw new ManagerError(describeIssues(valid.error), "INVALID_ARGUMENT");
    this.cluster = cluster;
    this.home = resolve(options.home ?? clipperHome());
    this.paths = clusterPaths(this.home, cluster);
    this.python = options.python;
    this.stopGraceMs = options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
    this.componentCommands = options.componentCommands;
    this.clock = options.clock ?? systemClock;
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  async startClipper(options: ClusterOptions): Promise<ClusterAddresses> {
    if (options.cluster !== this.cluster) {
      throw new ManagerError(
        `cluster name mismatch: this manager is for cluster ${this.cluster}, the options name ${options.cluster}`,
        "INVALID_ARGUMENT",
      );
    }
    const release = acquireStartLock(this.paths.dir, this.cluster);
    try {
      return await this.start(options);
    } finally {
      release();
    }
  }

  private async start(options: ClusterOptions): Promise<ClusterAddresses> {
    const probe = await this.probe();
    if (probe.state === "running") throw new ClusterAlreadyRunningError(this.cluster, probe.record.pid);
    if (probe.state === "unresponsive") {
      throw new ClusterAlreadyRunningError(this.cluster, probe.record.pid, ", not answering its control API");
    }
    if (probe.state === "stale") await this.clearStale();

    const resolved = await this.resolvePorts(options);
    const checked = ClusterOptionsSchema.safeParse(resolved);
    if (!checked.success) throw new ManagerError(`invalid cluster options: ${describeIssues(checked.error)}`, "INVALID_ARGUMENT");
    await assertPortsFree(resolved.host, [
      { port: resolved.queryPort, flag: "--query-port" },
      { port: resolved.managementPort, flag: "--management-port" },
      ...frontendRpcPorts(resolved).map((port, i) => ({ port, flag: i === 0 ? "--rpc-port" : `--rpc-port (+${i}, frontend worker ${i})` })),
    ]);
    const entry = supervisorEntry();
    if (!this.componentCommands?.management) requireBuilt(runtimeEntry("management/main.js"), "the management daemon");
    if (!this.componentCommands?.frontend) requireBuilt(runtimeEntry("frontend/main.js"), "the query frontend");

    // Checked now rather than at the first deploy, and made absolute: the supervisor runs in the cluster's directory.
    const python = this.python && !this.componentCommands?.python ? (await findPython({ python: this.python })).path : this.python;

    ensureClusterDirs(this.paths);
    const token = isLoopbackHost(resolved.host) ? undefined : ensureToken(this.paths);
    if (rpcAuthOf(resolved) === "plain") writeRpcKey(this.paths);
    else rmSync(this.paths.rpcKeyFile, { force: true });
    const config: SupervisorConfig = {
      cluster: this.cluster,
      clusterDir: this.paths.dir,
      options: resolved,
      ...(token ? { tokenFile: this.paths.tokenFile } : {}),
      ...(python ? { python } : {}),
      stopGraceMs: this.stopGraceMs,
      ...(this.componentCommands ? { componentCommands: this.componentCommands } : {}),
    };
    writeFileAtomic(this.paths.configFile, `${JSON.stringify(config, null, 2)}\n`);

    const supervisorLog = logFileOf(this.paths, "supervisor");
    const fd = openSync(supervisorLog, "a", 0o600);
    let exited: string | undefined;
    const child = (() => {
      try {
        return spawn(process.execPath, [entry, "--config", this.paths.configFile], {
          cwd: this.paths.dir,
          env: process.env,
          stdio: ["ignore", fd, fd],
          detached: true,
        });
      } finally {
        closeSync(fd);
      }
    })();
    child.once("error", (err) => (exited = `could not be started (${err.message})`));
    child.once("exit", (code, signal) => (exited = signal ? `was killed by ${signal}` : `exited with code ${code}`));
    child.unref();
    const pid = child.pid;

    const addresses = addressesFor(resolved);
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const checks = {
      management: { url: `${addresses.managementUrl}/admin/ping`, ok: false, problem: "no answer yet" },
      frontend: { url: `${addresses.queryUrl}/health`, ok: false, problem: "no answer yet" },
    };
    let record: SupervisorRecord | undefined;
    const answered = async (left: number): Promise<ClusterAddresses | undefined> => {
      if (exited !== undefined) {
        await this.abortStart(pid, undefined);
        throw new StartupError(`the supervisor ${exited} before the cluster came up; see its log: ${supervisorLog}`, "supervisor", supervisorLog);
      }
      if (!record) {
        const found = readRecord(this.paths);
        if (found && found.pid === pid) record = found;
      }
      if (!record) return undefined;
      const timeout = Math.max(200, Math.min(2000, left));
      await Promise.all(
        Object.values(checks).map(async (check) => {
          if (check.ok) return;
          const problem = await httpProblem(check.url, headers, timeout, check === checks.management ? "PONG" : undefined);
          check.ok = problem === undefined;
          if (problem) check.problem = problem;
        }),
      );
      return checks.management.ok && checks.frontend.ok ? { ...addresses, ...(token ? { token } : {}) } : undefined;
    };
    return waitUntil({
      deadline: this.clock.now() + resolved.startupTimeoutMs,
      clock: this.clock,
      intervalMs: 100,
      attempt: answered,
      onTimeout: async () => {
        const failing = !record ? "supervisor" : !checks.management.ok ? "management" : "frontend";
        const error = await this.startupFailure(failing, record, failing === "supervisor" ? undefined : checks[failing], resolved.startupTimeoutMs);
        await this.abortStart(pid, record);
        return error;
      },
    });
  }

  /** Why a start timed out, from the failing component's last exit and the last line of its log. */
  private async startupFailure(
    failing: "supervisor" | "management" | "frontend",
    record: SupervisorRecord | undefined,
    check: { url: string; problem: string } | undefined,
    timeoutMs: number,
  ): Promise<StartupError> {
    const logFile = logFileOf(this.paths, failing);
    if (!check || !record) {
      return new StartupError(`${COMPONENT_TITLES[failing]} did not report its control port within ${timeoutMs} ms; see its log: ${logFile}`, failing, logFile);
    }
    let detail = check.problem;
    try {
      const status = await new ControlClient(record).call<StatusResponse>("GET", "/status", undefined, 3000);
      const component = status.components.find((c) => c.component === failing);
      if (component?.lastExit) {
        detail += `; it ${describeExit(component.lastExit)}`;
        if (component.restarts) detail += `, restarted ${component.restarts} times`;
      }
    } catch {
      // the explanation stays shorter
    }
    const last = lastLogMessage(readLogTail(logFile, 50));
    if (last) detail += `; last log line: ${last}`;
    return new StartupError(
      `${COMPONENT_TITLES[failing]} did not answer GET ${check.url} within ${timeoutMs} ms (${detail}); see its log: ${logFile}`,
      failing,
      logFile,
    );
  }

  async connect(): Promise<ClusterAddresses> {
    const { record } = await this.running();
    return this.addressesOf(record);
  }

  async stopAll(options?: { keepState?: boolean }): Promise<void> {
    const keepState = options?.keepState ?? true;
    const probe = await this.probe();
    switch (probe.state) {
      case "running":
        try {
          await probe.client.call("POST", "/shutdown", { keepState }, this.stopGraceMs * 3 + 30_000);
          if (await waitForExit(probe.record.pid, 10_000)) break;
        } catch (err) {
          if (!(err instanceof ControlUnavailableError)) throw err;
        }
        await this.terminateSupervisor(probe.record.pid);
        break;
      case "unresponsive":
        await this.terminateSupervisor(probe.record.pid);
        break;
      case "stale":
        await this.clearStale();
        break;
      case "none":
        if (keepState || !existsSync(this.paths.dir)) throw new ClusterNotRunningError(this.cluster);
    }
    if (!keepState) rmSync(this.paths.dir, { recursive: true, force: true });
  }

  // ---- models ----------------------------------------------------------------------------------

  async deployModel(deployment: ModelDeployment, replicas: number): Promise<DeployedReplicas> {
    checkReplicas(replicas);
    const predictFile = resolve(deployment.predictFile);
    const modelPath = resolve(deployment.modelPath);
    if (!isFile(predictFile)) throw new ManagerError(`predict file ${predictFile} does not exist`, "INVALID_ARGUMENT");
    if (!isDirectory(modelPath)) throw new ManagerError(`model path ${modelPath} is not a directory`, "INVALID_ARGUMENT");
    if (!deployment.framework) throw new ManagerError("the local manager runs the predict file itself and needs its framework", "INVALID_ARGUMENT");
    if (deployment.framework === "node" && !this.componentCommands?.node) {
      requireBuilt(runtimeEntry("container-node/main.js"), "the Node model runtime");
    }
    if (deployment.framework !== "node" && !this.componentCommands?.python) {
      requireBuilt(join(pythonRuntimeDir(), "clipper_runtime"), "the Python model runtime");
    }
    const { client } = await this.running();
    const interpreter = deployment.framework !== "node" && !this.componentCommands?.python ? await this.pythonFor(deployment) : undefined;
    if (interpreter) checkPickledPython(predictFile, interpreter);
    const python = interpreter?.path ?? (deployment.framework !== "node" ? deployment.python ?? this.python : undefined);
    const body = {
      deployment: {
        name: deployment.name,
        version: deployment.version,
        inputType: deployment.inputType,
        framework: deployment.framework,
        predictFile,
        predictFunction: deployment.predictFunction || "predict",
        modelPath,
        ...(python ? { python } : {}),
        ...(deployment.env && Object.keys(deployment.env).length ? { env: deployment.env } : {}),
        ...(deployment.gpu ? { gpu: deployment.gpu } : {}),
      },
      replicas,
    };
    await client.call("POST", "/deployments", body, this.mutationTimeout());
    return interpreter ? { interpreter } : {};
  }

  /**
   * The interpreter a Python deployment's replicas run, chosen here (in the deploying process, whose
   * PATH and CLIPPER_PYTHON `save-function` saw too) and recorded by its absolute path. The
   * deployment's own --python first, then this manager's, then the cluster's `start --python`.
   */
  private async pythonFor(deployment: ModelDeployment): Promise<PythonInterpreter> {
    if (deployment.python) return findPython({ python: deployment.python });
    if (this.python) return findPython({ python: this.python });
    const started = readJsonFileQuiet(this.paths.configFile, SupervisorConfigSchema)?.python;
    return findPython(started ? { python: started, pythonFrom: "the cluster's --python (clipper start)" } : {});
  }

  async setNumReplicas(name: string, version: string, replicas: number): Promise<void> {
    checkReplicas(replicas);
    const { client } = await this.running();
    await client.call("POST", "/deployments/replicas", { name, version, replicas }, this.mutationTimeout());
  }

  async getNumReplicas(name: string, version: string): Promise<number> {
    const { client } = await this.running();
    const { deployments } = await client.call<DeploymentsResponse>("GET", "/deployments");
    return deployments.find((d) => d.deployment.name === name && d.deployment.version === version)?.replicas ?? 0;
  }

  async stopModels(models: Record<string, string[]>): Promise<void> {
    if (Object.keys(models).length === 0) return;
    const { client } = await this.running();
    await client.call<StoppedResponse>("POST", "/models/stop", { models }, this.mutationTimeout());
  }

  async deleteModels(models: Record<string, string[]>): Promise<void> {
    if (Object.keys(models).length === 0) return;
    const { client } = await this.running();
    await client.call<StoppedResponse>("POST", "/models/delete", { models }, this.mutationTimeout());
  }

  async stopAllModelContainers(): Promise<void> {
    const { client } = await this.running();
    await client.call<StoppedResponse>("POST", "/models/stop-all", {}, this.mutationTimeout());
  }

  // ---- inspection ------------------------------------------------------------------------------

  async status(options: StatusOptions = {}): Promise<ClusterStatus> {
    const { record, client } = await this.running();
    const status = await client.call<StatusResponse>("GET", "/status");
    const pids = [...status.components, ...status.replicas].flatMap((p) => (p.pid === undefined ? [] : [p.pid]));
    const usage = options.usage ? await processUsage(pids) : undefined;
    const usageOf = (pid: number | undefined) => (usage && pid !== undefined && usage.has(pid) ? { usage: usage.get(pid)! } : {});
    return {
      addresses: this.addressesOf(record),
      components: status.components.map((c) => ({
        component: c.component,
        state: c.state,
        ...(c.pid !== undefined ? { pid: c.pid } : {}),
        restarts: c.restarts,
        ...usageOf(c.pid),
      })),
      replicas: status.replicas.map((r) => ({
        name: r.name,
        version: r.version,
        replica: r.replica,
        state: r.state,
        ...(r.pid !== undefined ? { pid: r.pid } : {}),
        restarts: r.restarts,
        ...usageOf(r.pid),
      })),
      ...(options.usage && !procAvailable() ? { usageNote: "uptime, CPU and memory come from /proc, which this system does not have" } : {}),
    };
  }

  /** The supervisor's full report (adds readiness, last exits, log paths and desired replicas). */
  async statusDetails(): Promise<StatusResponse> {
    const { client } = await this.running();
    return client.call<StatusResponse>("GET", "/status");
  }

  /** Log files of the cluster; readable from disk even when the cluster is not running. */
  async readLogs(component: string | undefined, tail: number): Promise<LogTail[]> {
    return (await this.logs(component)).map((source) => ({ ...source, lines: source.path ? readLogTail(source.path, tail) : [] }));
  }

  async streamLogs(component: string | undefined, options: LogStreamOptions, onLine: (line: LogLine) => void): Promise<void> {
    return streamLogFiles(() => this.logs(component), () => listLogFiles(this.paths), options, onLine);
  }

  async logs(component?: string): Promise<LogSource[]> {
    const probe = await this.probe();
    if (probe.state === "running") {
      const query = component ? `?component=${encodeURIComponent(component)}` : "";
      return (await probe.client.call<LogsResponse>("GET", `/logs${query}`)).logs;
    }
    if (!existsSync(this.paths.dir)) throw new ClusterNotRunningError(this.cluster);
    const recorded = readJsonFileQuiet(this.paths.deploymentsFile, DeploymentsFileSchema)?.deployments ?? [];
    const candidates = logCandidates(this.paths, recorded.map((d) => d.deployment));
    return selectLogs(candidates, component).map(({ component: c, path }) => ({ component: c, ...(path ? { path } : {}) }));
  }

  // ---- internals -------------------------------------------------------------------------------

  private mutationTimeout(): number {
    return this.stopGraceMs * 2 + 30_000;
  }

  private addressesOf(record: SupervisorRecord): ClusterAddresses {
    const token = record.tokenFile ? readToken(record.tokenFile) : undefined;
    return { ...record.addresses, ...(token ? { token } : {}) };
  }

  private async running(): Promise<{ record: SupervisorRecord; client: ControlClient }> {
    const probe = await this.probe();
    if (probe.state !== "running") throw new ClusterNotRunningError(this.cluster);
    return probe;
  }

  /** What runs for this cluster: a live supervisor, a stuck one, leftovers of a dead one, or nothing. */
  private async probe(): Promise<Probe> {
    let record: SupervisorRecord | undefined;
    try {
      record = readRecord(this.paths);
    } catch {
      return { state: "stale" };
    }
    if (!record) return existsSync(this.paths.childrenFile) ? { state: "stale" } : { state: "none" };
    if (!pidAlive(record.pid)) return { state: "stale", record };
    const client = new ControlClient(record);
    try {
      await client.call("GET", "/ping", undefined, 3000);
      return { state: "running", record, client };
    } catch {
      return commandLine(record.pid)?.includes("supervisor-main") ? { state: "unresponsive", record } : { state: "stale", record };
    }
  }

  /** Stops what a dead supervisor left running and forgets it. */
  private async clearStale(): Promise<void> {
    const children = readJsonFileQuiet(this.paths.childrenFile, ChildrenFileSchema);
    if (children) await stopLeftovers(children, this.stopGraceMs);
    rmSync(this.paths.supervisorFile, { force: true });
    rmSync(this.paths.childrenFile, { force: true });
  }

  /** Stops a supervisor that will not answer: SIGTERM (it stops its children), then SIGKILL. */
  private async terminateSupervisor(pid: number): Promise<void> {
    if (pidAlive(pid)) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // gone meanwhile
      }
      if (!(await waitForExit(pid, this.stopGraceMs * 3 + 5_000))) {
        signalGroup(pid, "SIGKILL");
        await waitForExit(pid, 2_000);
      }
    }
    await this.clearStale();
  }

  /** Undoes a start that failed, keeping the cluster directory (its logs explain the failure). */
  private async abortStart(pid: number | undefined, record: SupervisorRecord | undefined): Promise<void> {
    if (record) {
      try {
        await new ControlClient(record).call("POST", "/shutdown", { keepState: true }, this.stopGraceMs * 3 + 30_000);
        if (await waitForExit(record.pid, 10_000)) {
          await this.clearStale();
          return;
        }
      } catch {
        // fall through to signals
      }
    }
    if (pid !== undefined) await this.terminateSupervisor(pid);
    else await this.clearStale();
  }

  private async resolvePorts(options: ClusterOptions): Promise<ClusterOptions> {
    checkClusterPorts(options);
    // Several workers need a run of free RPC ports (worker i on rpcPort + i), found after the others.
    const runOfRpcPorts = options.rpcPort === 0 && (options.frontendWorkers ?? 1) > 1;
    const wanted = [options.queryPort, options.managementPort, runOfRpcPorts ? 1 : options.rpcPort].filter((p) => p === 0).length;
    const free = wanted === 0 ? [] : await findFreePorts(options.host, wanted);
    const next = () => free.shift()!;
    const queryPort = options.queryPort || next();
    const managementPort = options.managementPort || next();
    const rpcPort = runOfRpcPorts
      ? await findFreePortRun(options.host, options.frontendWorkers ?? 1, [queryPort, managementPort])
      : options.rpcPort || next();
    return { ...options, queryPort, managementPort, rpcPort };
  }
}

function readRecord(paths: ClusterPaths): SupervisorRecord | undefined {
  return readJsonFile(paths.supervisorFile, SupervisorRecordSchema);
}

/** A cluster file, or undefined when it is missing or damaged (leftover handling must not fail on it). */
function readJsonFileQuiet<T extends z.ZodType>(path: string, schema: T): z.infer<T> | undefined {
  try {
    return readJsonFile(path, schema);
  } catch {
    return undefined;
  }
}

function requireBuilt(path: string, what: string): void {
  if (!existsSync(path)) throw new ManagerError(`${what} is not built (missing ${path}); run \`npm run build\``, "NOT_BUILT");
}

/** The compiled supervisor entry point, next to this module when running from dist/. */
function supervisorEntry(): string {
  const sibling = fileURLToPath(new URL("./supervisor-main.js", import.meta.url));
  if (existsSync(sibling)) return sibling;
  const built = join(packageRoot(), "dist", "src", "managers", "local", "supervisor-main.js");
  requireBuilt(built, "the cluster supervisor");
  return built;
}
