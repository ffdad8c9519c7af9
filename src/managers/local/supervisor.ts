/**
 * The per-cluster supervisor: a background process that runs the management daemon, the query
 * frontend and the model replicas as children, restarts them when they exit unexpectedly, keeps
 * the desired replicas durable in deployments.json, and answers a small control API on 127.0.0.1.
 *
 * Control API (JSON; every request carries `Authorization: Bearer <controlToken>` from supervisor.json):
 *   GET  /ping                       {ok, cluster, pid}
 *   GET  /status                     StatusResponse
 *   GET  /deployments                {deployments: [{deployment, replicas}]}
 *   POST /deployments                {deployment, replicas}   add or replace a deployment, set its replicas
 *   POST /deployments/replicas       {name, version, replicas} scale a known deployment (404 when unknown)
 *   POST /models/stop                {models: {name: [versions]}} ([] = every version) → {stopped}; deployments stay at 0
 *   POST /models/stop-all            {} → {stopped}; the same for every deployment
 *   POST /models/delete              {models} → {stopped}; stops and forgets the deployments (absent ones: no error)
 *   GET  /logs[?component=C]         {logs: [{component, path}]}
 *   POST /shutdown                   {keepState?} stop everything, then exit (keepState false: delete the cluster dir)
 * Errors answer {error: "<one line>"} with 400 (bad body), 401, 404, 405, 409, 413 or 503.
 */
import { allowedHostsFlags, allowedHostsOf, maxConnectionsFlags, connectHost, frontendTuningFlags, frontendWorkersFlags, rpcAuthOf, rpcSecretEnv } from "../cluster-spec.js";
import { randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname } from "node:path";
import type { z } from "zod";
import type { Logger } from "../../../runtime/shared/logger.js";
import { runtimeEntry, withPythonRuntimePath } from "../../../runtime/shared/package-root.js";
import type { ModelDeployment, RuntimeDeployment } from "../container-manager.js";
import { findPython, PythonInterpreterError } from "../../python/interpreter.js";
import { AdminClient } from "../../admin-client.js";
import { AdminAutoscaleSource } from "../../autoscaler/admin-source.js";
import { AutoscaleLoop } from "../../autoscaler/loop.js";
import {
  addressesFor,
  clusterPathsAt,
  ensureClusterDirs,
  logCandidates,
  logFileOf,
  readJsonFile,
  readRpcKey,
  readToken,
  readyFileOf,
  replicaComponent,
  writeFileAtomic,
  type ClusterPaths,
} from "./cluster-home.js";
import { ManagedProcess, type ProcessSpec } from "./managed-process.js";
import { inheritedEnv } from "./replica-env.js";
import { frontendRpcPorts } from "./ports.js";
import { stopLeftovers } from "./processes.js";
import { chosenVersion, isReason, noDeployment, sameDeployment, selectLogs, stopInOrder, type StopRole } from "../common/index.js";
import {
  ChildrenFileSchema,
  DEFAULT_RESTART_POLICY,
  DeploymentsFileSchema,
  describeIssues,
  SetDeploymentBodySchema,
  SetReplicasBodySchema,
  ShutdownBodySchema,
  StopModelsBodySchema,
  type ChildrenFile,
  type DeploymentEntry,
  type DeploymentsResponse,
  type LogsResponse,
  type ProcessReport,
  type ReplicaReport,
  type RestartPolicy,
  type StatusResponse,
  type StoppedResponse,
  type SupervisorConfigSchema,
  type SupervisorRecord,
} from "./schemas.js";

export type ResolvedSupervisorConfig = z.output<typeof SupervisorConfigSchema>;

const MAX_CONTROL_BODY = 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface DeploymentState {
  deployment: RuntimeDeployment;
  desired: number;
  replicas: Map<number, ManagedProcess>;
}

const keyOf = (name: string, version: string) => `${name}:${version}`;

export interface SupervisorDeps {
  log: Logger;
  /** Environment the management daemon and frontend inherit; replicas get only part of it (replica-env.ts). */
  env?: NodeJS.ProcessEnv;
  /** Called after a shutdown requested over the control API has been answered. */
  exit: (code: number) => void;
}

export class Supervisor {
  readonly paths: ClusterPaths;
  private readonly policy: RestartPolicy;
  private readonly env: NodeJS.ProcessEnv;
  private readonly log: Logger;
  private readonly components = new Map<"management" | "frontend", ManagedProcess>();
  private readonly deployments = new Map<string, DeploymentState>();
  private readonly controlToken = randomBytes(24).toString("hex");
  /** The cluster's RPC key (plain auth), read once at start; replicas get secrets derived from it. */
  private rpcKey: string | undefined;
  private server: Server | undefined;
  private controlPort = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private shutdownPromise: Promise<void> | undefined;
  /** Scales the autoscaled versions (docs/autoscaling.md); the supervisor is this manager's control plane. */
  private autoscaler: AutoscaleLoop | undefined;
  private finalized = false;

  constructor(
    private readonly config: ResolvedSupervisorConfig,
    private readonly deps: SupervisorDeps,
  ) {
    this.paths = clusterPathsAt(config.clusterDir, config.cluster);
    this.policy = { ...DEFAULT_RESTART_POLICY, ...config.restartPolicy };
    this.env = deps.env ?? process.env;
    this.log = deps.log;
  }

  /** Stops leftovers of a previous supervisor, opens the control API, starts every component. */
  async start(): Promise<void> {
    ensureClusterDirs(this.paths);
    if (rpcAuthOf(this.config.options) === "plain") this.rpcKey = readRpcKey(this.paths.rpcKeyFile);
    for (const stale of readdirSync(this.paths.readyDir)) rmSync(readyFileOf(this.paths, stale), { force: true });
    const previous = readJsonFile(this.paths.childrenFile, ChildrenFileSchema);
    if (previous && previous.supervisorPid !== process.pid) {
      const stopped = await stopLeftovers(previous, this.config.stopGraceMs);
      if (stopped.length) this.log.warn({ pids: stopped }, "stopped processes left by a previous supervisor");
    }
    await this.listen();
    const record: SupervisorRecord = {
      pid: process.pid,
      controlPort: this.controlPort,
      controlToken: this.controlToken,
      cluster: this.config.cluster,
      addresses: addressesFor(this.config.options),
      ...(this.config.tokenFile ? { tokenFile: this.config.tokenFile } : {}),
      startedAt: new Date().toISOString(),
    };
    writeFileAtomic(this.paths.supervisorFile, `${JSON.stringify(record, null, 2)}\n`);
    this.log.info({ controlPort: this.controlPort, options: this.config.options }, "supervisor listening");

    this.startComponent("management", this.managementArgv());
    this.startComponent("frontend", this.frontendArgv());

    const saved = readJsonFile(this.paths.deploymentsFile, DeploymentsFileSchema);
    for (const entry of saved?.deployments ?? []) {
      this.deployments.set(keyOf(entry.deployment.name, entry.deployment.version), {
        deployment: entry.deployment,
        desired: 0,
        replicas: new Map(),
      });
    }
    for (const entry of saved?.deployments ?? []) {
      const state = this.deployments.get(keyOf(entry.deployment.name, entry.deployment.version));
      // One deployment that cannot start (its interpreter gone) must not keep the others down.
      if (state) await this.scale(state, entry.replicas).catch((err: unknown) => this.log.error(
        { model: entry.deployment.name, version: entry.deployment.version }, `cannot restore replicas: ${(err as Error).message}`));
    }
    if (saved?.deployments.length) this.log.info({ deployments: saved.deployments.length }, "restored deployments");
    if (this.config.options.autoscaler !== false) this.startAutoscaler();
  }

  /** The autoscaler loop, acting on this supervisor's deployments through the manager's replica calls. */
  private startAutoscaler(): void {
    const token = this.config.tokenFile ? readToken(this.config.tokenFile) : undefined;
    const admin = new AdminClient({ managementUrl: addressesFor(this.config.options).managementUrl, timeoutMs: 5_000, ...(token ? { token } : {}) });
    this.autoscaler = new AutoscaleLoop({
      source: new AdminAutoscaleSource(admin),
      scaler: {
        getNumReplicas: async (name, version) => this.deployments.get(keyOf(name, version))?.desired ?? 0,
        setNumReplicas: (name, version, replicas) => this.setReplicas(name, version, replicas),
      },
      log: (message, fields) => this.log.warn(fields ?? {}, message),
    });
    this.autoscaler.start();
  }

  // ---- commands ------------------------------------------------------------------------------

  private tokenArgs(): string[] {
    return this.config.tokenFile ? ["--token-file", this.config.tokenFile] : [];
  }

  managementArgv(): string[] {
    const o = this.config.options;
    const program = this.config.componentCommands?.management ?? [process.execPath, runtimeEntry("management/main.js")];
    return [
      ...program,
      "--host", o.host,
      "--port", String(o.managementPort),
      "--state-dir", this.paths.stateDir,
      ...this.tokenArgs(),
      "--max-body-bytes", String(o.maxBodyBytes),
      ...maxConnectionsFlags(o.maxConnections),
      ...allowedHostsFlags(allowedHostsOf(o)),
    ];
  }

  frontendArgv(): string[] {
    const o = this.config.options;
    const program = this.config.componentCommands?.frontend ?? [process.execPath, runtimeEntry("frontend/main.js")];
    return [
      ...program,
      "--host", o.host,
      "--port", String(o.queryPort),
      "--rpc-port", String(o.rpcPort),
      ...frontendWorkersFlags(o),
      "--management-url", addressesFor(o).managementUrl,
      ...this.tokenArgs(),
      ...frontendTuningFlags(o, this.paths.rpcKeyFile),
      ...allowedHostsFlags(allowedHostsOf(o)),
    ];
  }

  /**
   * The interpreter of a Python deployment's replicas: the one the deploying process chose and
   * recorded, or (a deployment recorded without one) the same rule, applied here once.
   */
  private async pythonOf(d: ModelDeployment): Promise<string | undefined> {
    if (d.framework === "node" || d.python || this.config.componentCommands?.python) return d.python;
    try {
      return (await findPython({ python: this.config.python, pythonFrom: "the cluster's --python (clipper start)", env: this.env })).path;
    } catch (err) {
      if (err instanceof PythonInterpreterError) throw new HttpError(400, err.message);
      throw err;
    }
  }

  replicaSpec(d: RuntimeDeployment, replica: number, python = d.python): ProcessSpec {
    const component = replicaComponent(d.name, d.version, replica);
    const readyFile = readyFileOf(this.paths, component);
    const commands = this.config.componentCommands;
    // Only what an interpreter needs from the CLI's environment, then the deployment's own --env.
    const env: NodeJS.ProcessEnv = { ...inheritedEnv(this.env), PYTHONUNBUFFERED: "1", ...d.env };
    let argv: string[];
    const gpus = cudaVisibleDevices(d.gpu);
    if (gpus !== undefined) env.CUDA_VISIBLE_DEVICES = gpus;
    if (d.framework !== "node") {
      env.CLIPPER_FRAMEWORK = d.framework;
      if (!commands?.python && !python) throw new Error(`no Python interpreter for ${d.name}:${d.version} (pythonOf chooses one)`);
      argv = commands?.python ?? [python!, "-m", "clipper_runtime"];
      Object.assign(env, withPythonRuntimePath(env));
    } else {
      argv = commands?.node ?? [process.execPath, runtimeEntry("container-node/main.js")];
    }
    Object.assign(env, {
      CLIPPER_CLUSTER: this.config.cluster,
      CLIPPER_MODEL_NAME: d.name,
      CLIPPER_MODEL_VERSION: d.version,
      CLIPPER_INPUT_TYPE: d.inputType,
      CLIPPER_IP: connectHost(this.config.options.host),
      // Every frontend worker's RPC port: the replica connects to each.
      CLIPPER_PORT: frontendRpcPorts(this.config.options).join(","),
      CLIPPER_MODEL_PATH: d.modelPath,
      CLIPPER_PREDICT: `${d.predictFile}:${d.predictFunction}`,
      CLIPPER_READY_FILE: readyFile,
      CLIPPER_REPLICA_ID: String(replica),
      ...rpcSecretEnv(this.rpcKey, d),
    });
    const predictDir = dirname(d.predictFile);
    return {
      component,
      argv,
      env,
      cwd: existsSync(predictDir) ? predictDir : this.paths.dir,
      logFile: logFileOf(this.paths, component),
      readyFile,
    };
  }

  private newProcess(spec: ProcessSpec): ManagedProcess {
    return new ManagedProcess(spec, this.policy, this.log, () => this.writeChildren());
  }

  private startComponent(component: "management" | "frontend", argv: string[]): void {
    const proc = this.newProcess({
      component,
      argv,
      env: { ...this.env, CLIPPER_CLUSTER: this.config.cluster },
      cwd: this.paths.dir,
      logFile: logFileOf(this.paths, component),
    });
    this.components.set(component, proc);
    proc.start();
  }

  private allProcesses(): ManagedProcess[] {
    const replicas = [...this.deployments.values()].flatMap((d) => [...d.replicas.values()]);
    return [...this.components.values(), ...replicas];
  }

  /** Records the live children, so that a later supervisor can stop them should this one die. */
  private writeChildren(): void {
    if (this.finalized) return;
    const record: ChildrenFile = {
      supervisorPid: process.pid,
      children: this.allProcesses().flatMap((p) =>
        p.pid === undefined ? [] : [{ component: p.component, pid: p.pid, argv: p.spec.argv }],
      ),
    };
    try {
      writeFileAtomic(this.paths.childrenFile, `${JSON.stringify(record)}\n`);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, "cannot write children.json");
    }
  }

  private persistDeployments(): void {
    const deployments: DeploymentEntry[] = [...this.deployments.values()].map((s) => ({
      deployment: s.deployment,
      replicas: s.desired,
    }));
    writeFileAtomic(this.paths.deploymentsFile, `${JSON.stringify({ version: 1, deployments }, null, 2)}\n`);
  }

  // ---- operations ----------------------------------------------------------------------------

  /** Runs mutating operations one at a time. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async scale(state: DeploymentState, desired: number): Promise<void> {
    state.desired = desired;
    const python = state.replicas.size < desired ? await this.pythonOf(state.deployment) : undefined;
    for (let i = 0; i < desired; i++) {
      if (state.replicas.has(i)) continue;
      const proc = this.newProcess(this.replicaSpec(state.deployment, i, python));
      state.replicas.set(i, proc);
      proc.start();
    }
    const extra = [...state.replicas.keys()].filter((i) => i >= desired).sort((a, b) => b - a);
    await Promise.all(
      extra.map(async (i) => {
        await state.replicas.get(i)?.stop(this.config.stopGraceMs);
        state.replicas.delete(i);
      }),
    );
    this.writeChildren();
  }

  private async stopReplicas(state: DeploymentState): Promise<void> {
    await Promise.all([...state.replicas.values()].map((p) => p.stop(this.config.stopGraceMs)));
    state.replicas.clear();
    this.writeChildren();
  }

  setDeployment(deployment: RuntimeDeployment, replicas: number): Promise<void> {
    return this.exclusive(async () => {
      this.assertRunning();
      const key = keyOf(deployment.name, deployment.version);
      const prefix = `${deployment.name}-${deployment.version}`;
      for (const [otherKey, other] of this.deployments) {
        if (otherKey !== key && `${other.deployment.name}-${other.deployment.version}` === prefix) {
          throw new HttpError(
            409,
            `model ${deployment.name} version ${deployment.version} would share log and readiness files with ` +
              `model ${other.deployment.name} version ${other.deployment.version}; choose another name or version`,
          );
        }
      }
      let state = this.deployments.get(key);
      if (state && !sameDeployment(state.deployment, deployment)) {
        this.log.info({ model: deployment.name, version: deployment.version }, "deployment changed; replacing replicas");
        await this.stopReplicas(state);
        state.deployment = deployment;
      }
      if (!state) {
        state = { deployment, desired: 0, replicas: new Map() };
        this.deployments.set(key, state);
      }
      state.desired = replicas;
      this.persistDeployments();
      await this.scale(state, replicas);
    });
  }

  setReplicas(name: string, version: string, replicas: number): Promise<void> {
    return this.exclusive(async () => {
      this.assertRunning();
      const state = this.deployments.get(keyOf(name, version));
      if (!state) throw new HttpError(404, noDeployment(name, version, `cluster ${this.config.cluster}`).message);
      state.desired = replicas;
      this.persistDeployments();
      await this.scale(state, replicas);
    });
  }

  /**
   * Stops the replicas of the given versions of each model ([] = all of its versions). The
   * deployments stay with 0 replicas (stop-models), or with `forget` are forgotten (delete-model).
   * The record changes before any replica stops, so a supervisor dying midway never restarts them.
   */
  stopModels(models: Record<string, string[]> | "all", { forget }: { forget: boolean }): Promise<StoppedResponse> {
    return this.exclusive(async () => {
      this.assertRunning();
      const chosen = [...this.deployments.entries()].filter(
        ([, s]) => models === "all" || chosenVersion(models, s.deployment.name, s.deployment.version),
      );
      for (const [key, state] of chosen) {
        if (forget) this.deployments.delete(key);
        else state.desired = 0;
      }
      this.persistDeployments();
      await Promise.all(chosen.map(([, s]) => this.stopReplicas(s)));
      return { stopped: chosen.map(([, s]) => ({ name: s.deployment.name, version: s.deployment.version })) };
    });
  }

  status(): StatusResponse {
    const components: ProcessReport[] = [...this.components.values()].map((p) => ({
      component: p.component,
      state: p.state,
      ...(p.pid !== undefined ? { pid: p.pid } : {}),
      restarts: p.restarts,
      logFile: p.spec.logFile,
      ...(p.startedAt ? { startedAt: p.startedAt } : {}),
      ...(p.lastExit ? { lastExit: p.lastExit } : {}),
    }));
    const replicas: ReplicaReport[] = [];
    for (const s of this.deployments.values()) {
      for (const [replica, p] of [...s.replicas.entries()].sort((a, b) => a[0] - b[0])) {
        replicas.push({
          name: s.deployment.name,
          version: s.deployment.version,
          replica,
          component: p.component,
          state: p.state,
          ...(p.pid !== undefined ? { pid: p.pid } : {}),
          restarts: p.restarts,
          ready: p.state === "running" && p.spec.readyFile !== undefined && existsSync(p.spec.readyFile),
          logFile: p.spec.logFile,
          ...(p.startedAt ? { startedAt: p.startedAt } : {}),
          ...(p.lastExit ? { lastExit: p.lastExit } : {}),
        });
      }
    }
    return {
      cluster: this.config.cluster,
      supervisorPid: process.pid,
      addresses: addressesFor(this.config.options),
      components,
      replicas,
      deployments: [...this.deployments.values()].map((s) => ({
        name: s.deployment.name,
        version: s.deployment.version,
        framework: s.deployment.framework,
        replicas: s.desired,
      })),
    };
  }

  logs(component?: string): LogsResponse {
    const candidates = logCandidates(this.paths, [...this.deployments.values()].map((s) => s.deployment));
    try {
      return { logs: selectLogs(candidates, component).map(({ component: c, path }) => ({ component: c, path })) };
    } catch (err) {
      if (isReason(err, "NOT_FOUND")) throw new HttpError(404, (err as Error).message);
      throw err;
    }
  }

  /**
   * Stops every child (replicas first, then the frontend, then the management daemon), removes
   * supervisor.json, and with keepState false the whole cluster directory. Does not exit.
   */
  shutdown(keepState: boolean): Promise<void> {
    // The loop stops first and outside the queue: a round waiting in it finishes, none starts after.
    this.shutdownPromise ??= (this.autoscaler?.stop() ?? Promise.resolve()).then(() => this.exclusive(async () => {
      this.log.info({ keepState }, "shutting down");
      const children: { role: StopRole; proc: ManagedProcess }[] = [
        ...[...this.components.entries()].map(([role, proc]) => ({ role, proc })),
        ...[...this.deployments.values()].flatMap((s) => [...s.replicas.values()].map((proc) => ({ role: "model" as const, proc }))),
      ];
      await stopInOrder(children, (c) => c.role, (c) => c.proc.stop(this.config.stopGraceMs));
      for (const s of this.deployments.values()) s.replicas.clear();
      this.finalized = true;
      rmSync(this.paths.supervisorFile, { force: true });
      rmSync(this.paths.childrenFile, { force: true });
      rmSync(this.paths.configFile, { force: true });
      if (!keepState) rmSync(this.paths.dir, { recursive: true, force: true });
      this.log.info("all children stopped");
    }));
    return this.shutdownPromise;
  }

  /** When the supervisor itself fails: signal every child group at once, without waiting. */
  emergencyStop(): void {
    for (const p of this.allProcesses()) p.killNow("SIGTERM");
  }

  closeControl(): void {
    this.server?.close();
    this.server?.closeAllConnections();
  }

  private assertRunning(): void {
    if (this.shutdownPromise) throw new HttpError(503, "the cluster is shutting down");
  }

  // ---- control API ---------------------------------------------------------------------------

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = createServer((req, res) => {
        void this.handle(req, res);
      });
      server.once("error", reject);
      server.listen({ host: "127.0.0.1", port: 0 }, () => {
        this.server = server;
        this.controlPort = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private authorized(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? "";
    const given = Buffer.from(header.startsWith("Bearer ") ? header.slice(7) : "");
    const expected = Buffer.from(this.controlToken);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (!this.authorized(req)) throw new HttpError(401, "missing or wrong control token (see supervisor.json)");
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const route = `${req.method ?? "GET"} ${url.pathname}`;
      switch (route) {
        case "GET /ping":
          return send(res, 200, { ok: true, cluster: this.config.cluster, pid: process.pid });
        case "GET /status":
          return send(res, 200, this.status());
        case "GET /deployments": {
          const body: DeploymentsResponse = {
            deployments: [...this.deployments.values()].map((s) => ({ deployment: s.deployment, replicas: s.desired })),
          };
          return send(res, 200, body);
        }
        case "POST /deployments": {
          const body = parse(SetDeploymentBodySchema, await readJson(req));
          await this.setDeployment(body.deployment, body.replicas);
          return send(res, 200, { ok: true });
        }
        case "POST /deployments/replicas": {
          const body = parse(SetReplicasBodySchema, await readJson(req));
          await this.setReplicas(body.name, body.version, body.replicas);
          return send(res, 200, { ok: true });
        }
        case "POST /models/stop": {
          const body = parse(StopModelsBodySchema, await readJson(req));
          return send(res, 200, await this.stopModels(body.models, { forget: false }));
        }
        case "POST /models/stop-all":
          await readJson(req);
          return send(res, 200, await this.stopModels("all", { forget: false }));
        case "POST /models/delete": {
          const body = parse(StopModelsBodySchema, await readJson(req));
          return send(res, 200, await this.stopModels(body.models, { forget: true }));
        }
        case "GET /logs":
          return send(res, 200, this.logs(url.searchParams.get("component") ?? undefined));
        case "POST /shutdown": {
          const body = parse(ShutdownBodySchema, await readJson(req));
          await this.shutdown(body.keepState ?? true);
          res.once("finish", () => {
            this.closeControl();
            this.deps.exit(0);
          });
          return send(res, 200, { ok: true });
        }
        default: {
          const known = ["/ping", "/status", "/deployments", "/deployments/replicas", "/models/stop", "/models/stop-all", "/models/delete", "/logs", "/shutdown"];
          if (known.includes(url.pathname)) throw new HttpError(405, `${req.method} is not allowed on ${url.pathname}`);
          throw new HttpError(404, `no such control endpoint: ${url.pathname}`);
        }
      }
    } catch (err) {
      if (err instanceof HttpError) return send(res, err.status, { error: err.message });
      this.log.error({ err: (err as Error).stack }, "control request failed");
      return send(res, 500, { error: `internal supervisor error: ${(err as Error).message}` });
    }
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_CONTROL_BODY) throw new HttpError(413, `request body is larger than ${MAX_CONTROL_BODY} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8").trim();
  if (text === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, "request body is not valid JSON");
  }
}

function parse<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new HttpError(400, `invalid request: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** Local processes get GPUs the way CUDA programs choose them: CUDA_VISIBLE_DEVICES ("all": unchanged). */
export function cudaVisibleDevices(gpu: ModelDeployment["gpu"]): string | undefined {
  if (!gpu) return undefined;
  if ("deviceIds" in gpu) return gpu.deviceIds.join(",");
  if (gpu.count === "all") return undefined;
  return Array.from({ length: gpu.count }, (_, i) => String(i)).join(",");
}
