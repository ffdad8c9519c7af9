/**
 * The Docker ContainerManager. A cluster `<c>` is:
 *   network   clipper-<c>                 user-defined bridge; containers find each other by name
 *   volume    clipper-<c>-state           the management daemon's --state-dir /state
 *   container clipper-<c>-management      node dist/runtime/management/main.js, 1338 published
 *   container clipper-<c>-query-frontend  node dist/runtime/frontend/main.js [--workers N], 1337 published
 *                                         (7000..7000+N-1, one model RPC port per frontend worker, only
 *                                         on the network)
 *   container clipper-<c>-autoscaler      node dist/src/autoscaler/host-main.js, the Docker socket mounted
 *                                         (not with `autoscaler: false`); scales autoscaled versions
 *   container clipper-<c>-<m>-<v>-<i>     model replicas: the model image's own command; they reach
 *                                         the frontend over the network (CLIPPER_IP=<frontend name>)
 *   container clipper-<c>-<m>-<v>-deployment  created, never started: the deployment's record
 * The frontends run from a runtime image built locally from this package (src/images), so no
 * registry is needed; `runtimeBaseImage` chooses its base (it must hold Node 20), `runtimeImage`
 * skips the build. Frontends and replicas restart unless stopped. The daemon is reached through
 * DockerEngine (engine.ts), so every rule here runs against an in-memory fake in the unit tests.
 *
 * Ownership is by label (labels.ts): `ai.clipper.container.label=<c>` is on every container, the
 * network and the volume; every lookup and every removal filters on it, so `stopAll` removes what
 * this manager created and nothing else. `ai.clipper.name` gives the role, and model replicas carry
 * Clipper's `ai.clipper.model_container.label=<m>_<v>`.
 *
 * Deployment records (records.ts) keep what a version needs to run again, and its desired replica
 * count: stopping keeps them, deleting removes them.
 *
 * Ports are published on the cluster host (127.0.0.1 by default; 0.0.0.0 when asked). Port 0 lets
 * Docker choose; the configured ports are recorded in Clipper's port labels
 * (`ai.clipper.query_frontend.query.port`, `ai.clipper.management.port`; 0 for a port Docker
 * chose) and `connect()` reads the ports actually published from `docker inspect`. The RPC port is
 * not published: replicas reach it on the cluster's network (rpcAddress names it there).
 *
 * Token: published beyond loopback, the cluster gets a random token, copied into both frontends'
 * containers before they start (token.ts) and passed with --token-file; `connect()` reads it back
 * from the management container. Nothing is written on the client, so any machine that reaches
 * the Docker API (which is root on that host anyway) can connect.
 *
 * RPC auth (plain, the default): the cluster's RPC key is generated at start and copied into the
 * query frontend like the token (never into the management daemon or a replica); each replica gets
 * its version's credential as CLIPPER_RPC_SECRET, derived at deploy, scale or start from the key
 * read back from the frontend. The deployment label holds no credential. The frontend's
 * `ai.clipper.rpc.auth` label says which mode it runs in.
 *
 * Frontend workers (`frontendWorkers` N > 1): the frontend container runs N worker processes on
 * its query port, worker i on RPC port 7000 + i; its `ai.clipper.query_frontend.workers` label
 * records N, and each replica created later gets every port in CLIPPER_PORT (7000,7001,...) and
 * connects to each worker. A restart with another N creates the replicas again with the new list.
 */
import { dockerError } from "../../docker/errors.js";
import { httpProblem } from "../../http-fetch.js";
import { ClipperError } from "../../errors.js";
import type { BuildProgress } from "../../images/types.js";
import { isLoopbackHost } from "../../../runtime/shared/loopback.js";
import { nameProblem } from "../../../runtime/shared/names.js";
import { generateRpcKey } from "../../../runtime/shared/rpc-auth.js";
import type {
  ClusterAddresses,
  ClusterOptions,
  ClusterStatus,
  ComponentStatus,
  ContainerManager,
  LogLine,
  LogSource,
  LogStreamOptions,
  LogTail,
  ModelDeployment,
  ReplicaStatus,
  ResourceUsage,
  StatusOptions,
} from "../container-manager.js";
import { checkClusterPorts, ManagerError } from "../errors.js";
import { connectHost, internalRpcPorts, recordedFrontendWorkers, RPC_KEY_FILE, rpcAuthOf, urlHost } from "../cluster-spec.js";
import {
  apiCallError,
  checkModelNames,
  checkReplicas,
  chosenVersion,
  noDeployment,
  sameDeployment,
  selectLogs,
  STOP_GRACE_SECONDS,
  stopInOrder,
  streamEach,
  systemClock,
  type Clock,
  type LogCandidate,
  type StopRole,
} from "../common/index.js";
import { EngineError, type ContainerDetails, type ContainerSpec, type ContainerSummary, type DockerEngine } from "./engine.js";
import { DockerodeEngine } from "./dockerode-engine.js";
import {
  clusterLabels,
  componentOf,
  INTERNAL_PORTS,
  LABEL,
  names,
  RECORD_LABEL,
  recordNumber,
  storedDeployment,
  TOKEN_FILE,
  type StoredDeployment,
} from "./labels.js";
import { modelNames, records, roleOf, versionsOf, type VersionContainers } from "./records.js";
import { publishedPorts, waitUntilUp, type Probe, type PublishedPorts, type Readiness } from "./readiness.js";
import { autoscalerSpec, daemonHostName, deploymentRecordSpec, DOCKER_SOCKET, frontendSpec, managementSpec, replicaSpec, type FrontendLink } from "./specs.js";
import { newToken } from "./token.js";

export { MAX_REPLICAS } from "../common/index.js";
export type { Probe } from "./readiness.js";

export interface DockerManagerOptions {
  /** Cluster name (default "default"); names the network, volume and containers. */
  cluster?: string;
  /** The Docker Engine (default: dockerode on DOCKER_HOST or /var/run/docker.sock). */
  engine?: DockerEngine;
  /** Base image of the runtime image the frontends run from; it must hold Node 20 (default: the image builder's). */
  runtimeBaseImage?: string;
  /** A runtime image that already exists: skips building one. */
  runtimeImage?: string;
  /** Seconds a stopping container gets after SIGTERM before SIGKILL (default 30: a replica drains, common/stop-grace.ts). */
  stopGraceSeconds?: number;
  /** Progress of the runtime image build. */
  onProgress?: BuildProgress;
  /** How start checks that the frontends answer (default: HTTP GET through the published ports). */
  probe?: Probe;
  /** The clock start's readiness wait runs on. */
  clock?: Clock;
}

const DAEMON = "Docker daemon";

/** What `startClipper` created, so a failed start removes exactly that. */
interface Created {
  containers: string[];
  network?: string;
  volume?: string;
}

export class DockerContainerManager implements ContainerManager {
  readonly kind = "docker" as const;
  readonly capabilities = { runsImages: true, pullsFromRegistry: false, defaultReadyTimeoutMs: 60_000, reportsPods: false };
  readonly cluster: string;
  private readonly engine: DockerEngine;
  private readonly stopGraceSeconds: number;
  private readonly readiness: Readiness;

  constructor(private readonly options: DockerManagerOptions = {}) {
    const cluster = options.cluster ?? "default";
    const problem = nameProblem("cluster name", cluster);
    if (problem) throw new ManagerError(problem, "INVALID_ARGUMENT");
    this.cluster = cluster;
    this.engine = options.engine ?? new DockerodeEngine();
    this.stopGraceSeconds = options.stopGraceSeconds ?? STOP_GRACE_SECONDS;
    this.readiness = {
      engine: this.engine, probe: options.probe ?? httpProblem, clock: options.clock ?? systemClock, inspect: (id) => this.inspect(id),
    };
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /**
   * Starts the management daemon and the query frontend, then brings back the replicas that the
   * deployment records kept by `stopAll({keepState: true})` ask for, with this start's RPC key.
   */
  async startClipper(options: ClusterOptions): Promise<ClusterAddresses> {
    checkClusterOptions(this.cluster, options);
    const existing = await this.containers();
    const running = existing.filter((c) => roleOf(c) !== "model_deployment");
    if (running.length > 0) {
      throw new ManagerError(
        `a Docker cluster named ${this.cluster} already exists (containers: ${running.map((c) => c.name).join(", ")}); ` +
          `stop it with \`clipper stop --cluster ${this.cluster}\` or choose another cluster name`,
        "CLUSTER_ALREADY_RUNNING",
      );
    }
    const image = await this.runtimeImageTag();
    const created: Created = { containers: [] };
    try {
      await this.ensureNetwork(created);
      await this.ensureVolume(created);
      const token = isLoopbackHost(publishAddress(options.host)) ? undefined : newToken();
      const daemonHost = daemonHostName(await this.engine.remoteHost());
      const input = { cluster: this.cluster, options, image, token: token !== undefined, ...(daemonHost === undefined ? {} : { daemonHost }) };
      const rpcKey = rpcAuthOf(options) === "plain" ? generateRpcKey() : undefined;
      const management = await this.createAndStart(managementSpec(input), created, [[TOKEN_FILE, token]]);
      const frontend = await this.createAndStart(frontendSpec(input), created, [[TOKEN_FILE, token], [RPC_KEY_FILE, rpcKey]]);
      const containers = { management, frontend };
      const addresses = await this.addressesFor(options.host, await publishedPorts(this.readiness, containers), token);
      await waitUntilUp(this.readiness, addresses, containers, options.startupTimeoutMs);
      await this.restoreReplicas(existing, { ...(rpcKey === undefined ? {} : { rpcKey }), rpcPorts: internalRpcPorts(options.frontendWorkers) });
      // Last: it scales what is running, and retries until the daemon answers.
      if (options.autoscaler !== false) {
        await this.createAndStart(autoscalerSpec(input), created, [[TOKEN_FILE, token]]).catch((err: unknown) => {
          // A daemon whose socket is elsewhere (rootless Docker) cannot mount it: say how to start without.
          if (!(err instanceof ManagerError)) throw err;
          throw new ManagerError(`${err.message} (the autoscaler mounts the Docker host's ${DOCKER_SOCKET}; ` +
            "start with --no-autoscaler to run without it)", err.reason);
        });
      }
      return addresses;
    } catch (err) {
      await this.undoStart(created);
      throw err;
    }
  }

  async connect(): Promise<ClusterAddresses> {
    return this.addressesOf(await this.containers());
  }

  /**
   * Removes every container, the network and (unless keepState, the default) the state volume that
   * carry this cluster's label; nothing else. keepState keeps the deployment records too, so that
   * start brings the replicas back. Throws CLUSTER_NOT_RUNNING when there is nothing to stop.
   */
  async stopAll(options?: { keepState?: boolean }): Promise<void> {
    const keepState = options?.keepState ?? true;
    const labels = clusterLabels(this.cluster);
    const all = await this.containers();
    const containers = keepState ? all.filter((c) => roleOf(c) !== "model_deployment") : all;
    const networks = await this.call("listing networks", () => this.engine.listNetworks(labels));
    const volumes = keepState ? [] : await this.call("listing volumes", () => this.engine.listVolumes(labels));
    if (containers.length === 0 && networks.length === 0 && volumes.length === 0) throw notRunning(this.cluster);

    await stopInOrder(containers, stopRoleOf, (c) => this.removeContainer(c.id));
    for (const network of networks) await this.call(`removing network ${network.name}`, () => this.engine.removeNetwork(network.id));
    for (const volume of volumes) await this.call(`removing volume ${volume.name}`, () => this.engine.removeVolume(volume.name));
  }

  // ---- models ----------------------------------------------------------------------------------

  async deployModel(deployment: ModelDeployment, replicas: number): Promise<void> {
    checkReplicas(replicas);
    checkModelNames(deployment.name, deployment.version);
    if (!deployment.image) {
      throw new ManagerError(
        `the Docker manager runs model ${deployment.name}:${deployment.version} from an image, and the deployment names none ` +
          "(build one, or pass --image)",
        "INVALID_ARGUMENT",
      );
    }
    const link = await this.frontendLink();
    await this.ensureImage(deployment.image);
    const wanted = storedDeployment({ ...deployment, image: deployment.image });
    let current = await this.versionContainers(deployment.name, deployment.version);
    if (current.stored && !sameDeployment(current.stored, wanted)) {
      // A changed deployment replaces its replicas and its record.
      await Promise.all([...current.replicas, ...records(current)].map((c) => this.removeContainer(c.id)));
      current = { staleRecords: [], replicas: [] };
    }
    await this.scale(wanted, current.replicas, replicas, link);
    await this.writeRecord(wanted, replicas, current);
  }

  async setNumReplicas(name: string, version: string, replicas: number): Promise<void> {
    checkReplicas(replicas);
    checkModelNames(name, version);
    const current = await this.versionContainers(name, version);
    if (!current.stored) throw noDeployment(name, version, `the Docker cluster ${this.cluster}`);
    await this.scale(current.stored, current.replicas, replicas, await this.frontendLink());
    await this.writeRecord(current.stored, replicas, current);
  }

  async getNumReplicas(name: string, version: string): Promise<number> {
    return (await this.versionContainers(name, version)).replicas.length;
  }

  /** Removes the chosen versions' replicas and records a count of 0: setNumReplicas brings them back. */
  async stopModels(models: Record<string, string[]>): Promise<void> {
    for (const v of await this.chosenVersions(models)) {
      await Promise.all(v.replicas.map((c) => this.removeContainer(c.id)));
      if (v.stored) await this.writeRecord(v.stored, 0, v);
    }
  }

  /** Removes the chosen versions' replicas and records; what is already gone is no error. */
  async deleteModels(models: Record<string, string[]>): Promise<void> {
    for (const v of await this.chosenVersions(models)) {
      await Promise.all(v.replicas.map((c) => this.removeContainer(c.id)));
      await Promise.all(records(v).map((c) => this.removeContainer(c.id)));
    }
  }

  async stopAllModelContainers(): Promise<void> {
    const all = await this.containers();
    await this.stopModels(Object.fromEntries(modelNames(all).map((name) => [name, []])));
  }

  // ---- inspection ------------------------------------------------------------------------------

  async status(options: StatusOptions = {}): Promise<ClusterStatus> {
    const all = await this.containers();
    const addresses = await this.addressesOf(all);
    const components: ComponentStatus[] = [];
    const replicas: ReplicaStatus[] = [];
    const shown = all.filter((c) => roleOf(c) !== "model_deployment");
    const infos = await Promise.all(shown.map((c) => this.call("inspecting a container", () => this.engine.inspectContainer(c.id))));
    // The engine takes about a second per one-shot stats answer: ask for every container at once.
    const usages = options.usage ? await Promise.all(infos.map((info) => (info ? this.usageOf(info) : undefined))) : [];
    for (const [i, c] of shown.entries()) {
      const role = roleOf(c);
      const info = infos[i];
      if (!info) continue;
      const usage = usages[i];
      const seen = { state: stateOf(info.state), ...(info.pid > 0 ? { pid: info.pid } : {}), restarts: info.restartCount, ...(usage ? { usage } : {}) };
      if (role === "model") {
        replicas.push({
          name: c.labels[LABEL.modelName] ?? "", version: c.labels[LABEL.modelVersion] ?? "", replica: Number(c.labels[LABEL.replica]), ...seen,
        });
      } else if (role === "management" || role === "query_frontend" || role === "autoscaler") {
        components.push({ component: componentOf(c.labels)!, ...seen });
      }
    }
    components.sort((a, b) => a.component.localeCompare(b.component));
    replicas.sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version) || a.replica - b.replica);
    return { addresses, components, replicas };
  }

  /** A running container's uptime, CPU and memory (the engine's one-shot stats). */
  private async usageOf(info: ContainerDetails): Promise<ResourceUsage | undefined> {
    if (info.state !== "running") return undefined;
    const stats = await this.call("reading a container's stats", () => this.engine.containerStats(info.id));
    return {
      ...(info.startedAt ? { uptimeSeconds: Math.max(0, Math.round((Date.now() - info.startedAt.getTime()) / 1000)) } : {}),
      ...stats,
    };
  }

  /** The containers whose logs match `component`, in the grammar of common/log-components.ts. */
  async logs(component?: string): Promise<LogSource[]> {
    return (await this.logContainers(component)).map(({ component: c }) => ({ component: c }));
  }

  async readLogs(component: string | undefined, tail: number): Promise<LogTail[]> {
    const sources = await this.logContainers(component);
    return Promise.all(
      sources.map(async ({ component: c, id }) => ({
        component: c,
        lines: await this.call(`reading the log of ${c}`, () => this.engine.containerLogs(id, tail)),
      })),
    );
  }

  async streamLogs(component: string | undefined, options: LogStreamOptions, onLine: (line: LogLine) => void): Promise<void> {
    const keyed = async () => (await this.logContainers(component)).map((c) => ({ ...c, key: c.id }));
    await streamEach(await keyed(), keyed, options, ({ component: c, id }, start) =>
      this.call(`reading the log of ${c}`, () => this.engine.streamContainerLogs(id, start, (line) => onLine({ component: c, line }))));
  }

  // ---- internals: starting ---------------------------------------------------------------------

  /** The runtime image: given, or built from this package by the image builder. */
  private async runtimeImageTag(): Promise<string> {
    const given = this.options.runtimeImage;
    if (given) {
      if (!(await this.call(`inspecting the runtime image ${given}`, () => this.engine.imageExists(given)))) {
        throw new ManagerError(`the runtime image ${given} is not on the Docker host; build or load it first`, "NOT_FOUND");
      }
      return given;
    }
    const base = this.options.runtimeBaseImage;
    return this.call("building the runtime image", () =>
      this.engine.buildRuntimeImage(base ? { baseImage: base } : {}, this.options.onProgress),
    );
  }

  private async ensureNetwork(created: Created): Promise<void> {
    const name = names.network(this.cluster);
    const existing = await this.call(`inspecting network ${name}`, () => this.engine.findNetwork(name));
    if (existing) {
      if (existing.labels[LABEL.cluster] !== this.cluster) throw notOurs("network", name);
      return; // left by a cluster that did not stop cleanly: ours to reuse
    }
    created.network = (await this.call(`creating network ${name}`, () => this.engine.createNetwork(name, clusterLabels(this.cluster)))).id;
  }

  private async ensureVolume(created: Created): Promise<void> {
    const name = names.volume(this.cluster);
    const existing = await this.call(`inspecting volume ${name}`, () => this.engine.findVolume(name));
    if (existing) {
      if (existing.labels[LABEL.cluster] !== this.cluster) throw notOurs("volume", name);
      return; // state kept by `stop --keep-state`
    }
    created.volume = (await this.call(`creating volume ${name}`, () => this.engine.createVolume(name, clusterLabels(this.cluster)))).id;
  }

  /** Creates a container, copies the given files in (skipping absent contents), starts it. */
  private async createAndStart(spec: ContainerSpec, created: Created, files: [string, string | undefined][]): Promise<string> {
    const id = await this.call(`creating container ${spec.name}`, () => this.engine.createContainer(spec));
    created.containers.push(id);
    for (const [path, content] of files) {
      if (content !== undefined) await this.call(`copying ${path} into ${spec.name}`, () => this.engine.putFile(id, path, `${content}\n`));
    }
    await this.call(`starting container ${spec.name}`, () => this.engine.startContainer(id));
    return id;
  }

  /** Brings each recorded version back to its recorded count (replicas were removed by the stop). */
  private async restoreReplicas(existing: ContainerSummary[], link: FrontendLink): Promise<void> {
    for (const v of versionsOf(existing)) {
      const wanted = v.record ? recordNumber(v.record.labels, RECORD_LABEL.replicas) : 0;
      if (!v.stored || wanted === 0) continue;
      try {
        checkReplicas(wanted); // a record edited by hand may ask for anything
        await this.ensureImage(v.stored.image);
        await this.scale(v.stored, [], wanted, link);
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        throw new ManagerError(
          `could not bring back ${wanted} replica${wanted > 1 ? "s" : ""} of model ${v.stored.name} version ${v.stored.version}: ${why} ` +
            `(its record is container ${v.record!.name}; remove it to start without that model)`,
          "STARTUP_FAILED",
        );
      }
    }
  }

  /** Removes what a failed start created (and only that): replicas it restored, containers, network, volume. */
  private async undoStart(created: Created): Promise<void> {
    const replicas = await this.containers({ [LABEL.role]: "model" }).catch(() => []);
    await Promise.all(replicas.map((c) => this.removeContainer(c.id).catch(() => undefined)));
    for (const id of [...created.containers].reverse()) await this.removeContainer(id).catch(() => undefined);
    if (created.network) await this.engine.removeNetwork(created.network).catch(() => undefined);
    if (created.volume) await this.engine.removeVolume(created.volume).catch(() => undefined);
  }

  // ---- internals: models -----------------------------------------------------------------------

  private async versionContainers(name: string, version: string): Promise<VersionContainers> {
    const found = await this.containers({ [LABEL.modelName]: name, [LABEL.modelVersion]: version });
    return versionsOf(found)[0] ?? { staleRecords: [], replicas: [] };
  }

  private async chosenVersions(models: Record<string, string[]>): Promise<VersionContainers[]> {
    for (const name of Object.keys(models)) {
      const problem = nameProblem("model name", name);
      if (problem) throw new ManagerError(problem, "INVALID_ARGUMENT");
    }
    const all = await this.containers();
    return versionsOf(all.filter((c) => chosenVersion(models, c.labels[LABEL.modelName] ?? "", c.labels[LABEL.modelVersion] ?? "")));
  }

  /**
   * Records `replicas` as the version's desired count: a new record (labels cannot change) with the
   * next generation, then the old ones go. Nothing is written when the newest record says so already.
   */
  private async writeRecord(d: StoredDeployment, replicas: number, current: VersionContainers): Promise<void> {
    const canonical = names.deployment(this.cluster, d.name, d.version);
    const old = records(current);
    const { record } = current;
    const upToDate = old.length === 1 && record?.name === canonical && recordNumber(record.labels, RECORD_LABEL.replicas) === replicas;
    if (upToDate) return;
    const generation = Math.max(0, ...old.map((c) => recordNumber(c.labels, RECORD_LABEL.generation))) + 1;
    const name = old.length === 0 ? canonical : `${canonical}-${generation}`;
    const id = await this.createContainer(deploymentRecordSpec(this.cluster, d, { replicas, generation }, name), d);
    await Promise.all(old.map((c) => this.removeContainer(c.id)));
    if (name !== canonical) await this.call(`renaming the record of ${d.name}:${d.version}`, () => this.engine.renameContainer(id, canonical));
  }

  /**
   * Brings a version to `desired` replicas numbered 0..desired-1: creates and starts the missing
   * ones (all or none: if one cannot start, the new ones are removed again), starts stopped ones,
   * and removes the highest-numbered ones beyond `desired`.
   */
  private async scale(d: StoredDeployment, replicas: ContainerSummary[], desired: number, link: FrontendLink): Promise<void> {
    const byIndex = new Map(replicas.map((r) => [Number(r.labels[LABEL.replica]), r]));
    const added: string[] = [];
    const results = await Promise.allSettled(
      Array.from({ length: desired }, async (_, i) => {
        const existing = byIndex.get(i);
        const doing = `starting replica ${i} of ${d.name}:${d.version}`;
        if (existing) {
          if (existing.state !== "running" && existing.state !== "restarting") await this.call(doing, () => this.engine.startContainer(existing.id));
          return;
        }
        const id = await this.createContainer(replicaSpec(this.cluster, d, i, link, this.stopGraceSeconds), d);
        added.push(id);
        await this.call(doing, () => this.engine.startContainer(id));
      }),
    );
    const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failure) {
      await Promise.all(added.map((id) => this.removeContainer(id).catch(() => undefined)));
      throw failure.reason;
    }
    const extra = [...byIndex.entries()].filter(([i]) => !(i < desired)).sort((a, b) => b[0] - a[0]);
    await Promise.all(extra.map(([, c]) => this.removeContainer(c.id)));
  }

  /** Creates a model container; a taken name says whose it is. */
  private async createContainer(spec: ContainerSpec, d: StoredDeployment): Promise<string> {
    try {
      return await this.engine.createContainer(spec);
    } catch (err) {
      if (err instanceof EngineError && err.status === 409) {
        const other = await this.engine.inspectContainer(spec.name).catch(() => undefined);
        const labels = other?.labels ?? {};
        const owner = labels[LABEL.cluster] === this.cluster && labels[LABEL.modelName]
          ? `model ${labels[LABEL.modelName]} version ${labels[LABEL.modelVersion]} (another change to it may be under way)`
          : "a container this cluster did not create";
        throw new ManagerError(
          `container name ${spec.name} for model ${d.name} version ${d.version} is taken by ${owner}; choose another name or version`,
          "CONFLICT",
        );
      }
      throw this.mapped(err, `creating container ${spec.name}`);
    }
  }

  /** The model image must be on the Docker host; one that is not is pulled (it may be in a registry). */
  private async ensureImage(image: string): Promise<void> {
    if (await this.call(`inspecting model image ${image}`, () => this.engine.imageExists(image))) return;
    try {
      await this.engine.pullImage(image);
    } catch (err) {
      // Not reaching the daemon is that; anything else the pull answers means no such image.
      const hinted = dockerError(err, `pulling model image ${image}`);
      if (hinted instanceof ClipperError && hinted.code === "UNREACHABLE") throw hinted;
      throw new ManagerError(
        `model image ${image} is not on the Docker host and could not be pulled (${err instanceof Error ? err.message : String(err)}); build it first`,
        "NOT_FOUND",
      );
    }
  }

  /**
   * What a replica needs from the running query frontend: the cluster's RPC key, read back from it,
   * when it authenticates replicas (undefined when it admits any peer), and its workers' RPC ports
   * (its label); throws when the cluster has no frontend.
   */
  private async frontendLink(): Promise<FrontendLink> {
    const [frontend] = await this.containers({ [LABEL.role]: "query_frontend" });
    if (!frontend) throw notRunning(this.cluster);
    const rpcPorts = internalRpcPorts(recordedFrontendWorkers(frontend.labels[LABEL.frontendWorkers], `the query frontend ${frontend.name}`));
    if (frontend.labels[LABEL.rpcAuth] !== "plain") return { rpcPorts };
    const key = (await this.call("reading the RPC key", () => this.engine.readFile(frontend.id, RPC_KEY_FILE)))?.trim();
    if (!key) {
      throw new ManagerError(`the query frontend ${frontend.name} has lost its RPC key ${RPC_KEY_FILE}; ` +
        "stop the cluster and start it again", "CONTROL_API");
    }
    return { rpcKey: key, rpcPorts };
  }

  // ---- internals: docker -----------------------------------------------------------------------

  /** Every container (any state) with this cluster's label, plus any further labels. */
  private containers(labels: Record<string, string> = {}): Promise<ContainerSummary[]> {
    return this.call("listing containers", () => this.engine.listContainers({ ...labels, ...clusterLabels(this.cluster) }));
  }

  private async inspect(id: string) {
    const info = await this.call("inspecting a container", () => this.engine.inspectContainer(id));
    if (!info) throw new ManagerError(`container ${id.slice(0, 12)} of the Docker cluster ${this.cluster} is gone`, "NOT_FOUND");
    return info;
  }

  /** The addresses of the cluster whose containers are `all`. */
  private async addressesOf(all: ContainerSummary[]): Promise<ClusterAddresses> {
    const management = all.find((c) => roleOf(c) === "management");
    const frontend = all.find((c) => roleOf(c) === "query_frontend");
    if (!management || !frontend) {
      if (!management && !frontend) throw notRunning(this.cluster);
      throw new ManagerError(
        `the Docker cluster ${this.cluster} has no container for ${management ? "the query frontend" : "the management daemon"}; ` +
          `stop it with \`clipper stop --cluster ${this.cluster}\` and start it again`,
        "CLUSTER_NOT_RUNNING",
      );
    }
    const [m, f] = await Promise.all([this.inspect(management.id), this.inspect(frontend.id)]);
    const ports: PublishedPorts = {
      query: f.ports[INTERNAL_PORTS.query] ?? configuredPort(f.labels[LABEL.queryPort]),
      management: m.ports[INTERNAL_PORTS.management] ?? configuredPort(m.labels[LABEL.managementPort]),
    };
    const unknown = Object.entries(ports).filter(([, p]) => !p).map(([k]) => k);
    if (unknown.length) {
      throw new ManagerError(
        `the Docker cluster ${this.cluster} is not running (its ${unknown.join(", ")} port${unknown.length > 1 ? "s are" : " is"} ` +
          `not published: ${m.name} ${m.state}, ${f.name} ${f.state})`,
        "CLUSTER_NOT_RUNNING",
      );
    }
    const tokenFile = m.labels[LABEL.tokenFile];
    const token = tokenFile ? (await this.call("reading the management token", () => this.engine.readFile(m.id, tokenFile)))?.trim() : undefined;
    if (tokenFile && !token) {
      throw new ManagerError(`the management container ${m.name} has lost its token file ${tokenFile}`, "CONTROL_API");
    }
    return await this.addressesFor(f.labels[LABEL.host] ?? "127.0.0.1", ports, token);
  }

  private async logContainers(component: string | undefined): Promise<(LogCandidate & { id: string })[]> {
    const all = await this.containers();
    if (!all.some((c) => roleOf(c) !== "model_deployment")) throw notRunning(this.cluster);
    const candidates = all.flatMap((c): (LogCandidate & { id: string })[] => {
      const name = componentOf(c.labels);
      const role = roleOf(c);
      if (name === undefined) return [];
      if (role === "model") {
        const model = { name: c.labels[LABEL.modelName]!, version: c.labels[LABEL.modelVersion]!, replica: Number(c.labels[LABEL.replica]) };
        return [{ component: name, role: "model", model, id: c.id }];
      }
      return [{ component: name, role: role === "management" ? "management" : role === "autoscaler" ? "autoscaler" : "frontend", id: c.id }];
    });
    return selectLogs(candidates, component);
  }

  /** Stops (SIGTERM, then SIGKILL after the grace period) and removes a container; gone is fine. */
  private async removeContainer(id: string): Promise<void> {
    await this.call("stopping a container", () => this.engine.stopContainer(id, this.stopGraceSeconds));
    await this.call("removing a container", () => this.engine.removeContainer(id));
  }

  /** A daemon failure as our error: the daemon's hints first (GPU runtime, unreachable), else by status. */
  private mapped(err: unknown, doing: string): Error {
    if (err instanceof ClipperError) return err;
    const hinted = dockerError(err, doing);
    if (hinted instanceof ClipperError) return hinted;
    const status = err instanceof EngineError ? err.status : undefined;
    return apiCallError(doing, DAEMON, status, err instanceof Error ? err.message : String(err));
  }

  private async call<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.mapped(err, doing);
    }
  }

  private async addressesFor(host: string, ports: PublishedPorts, token: string | undefined): Promise<ClusterAddresses> {
    const h = urlHost(await this.clientHost(publishAddress(host)));
    const queryUrl = `http://${h}:${ports.query}`;
    return {
      cluster: this.cluster,
      manager: "docker",
      queryUrl,
      managementUrl: `http://${h}:${ports.management}`,
      // Named as replicas reach it, on the cluster's Docker network (the port is not published to the host).
      rpcAddress: `tcp://${names.frontend(this.cluster)}:${INTERNAL_PORTS.rpc}`,
      metricsUrl: `${queryUrl}/metrics`,
      ...(token ? { token } : {}),
    };
  }

  /** Where this client reaches ports published on `host`: the daemon's host when it is remote. */
  private async clientHost(host: string): Promise<string> {
    const remote = await this.engine.remoteHost();
    if (remote && (host === "0.0.0.0" || host === "::")) return remote;
    return connectHost(host);
  }
}

// ---- helpers -------------------------------------------------------------------------------------

function notRunning(cluster: string): ManagerError {
  return new ManagerError(`no Docker cluster named ${cluster} (start one with \`clipper start --manager docker\`)`, "CLUSTER_NOT_RUNNING");
}

function notOurs(what: string, name: string): ManagerError {
  return new ManagerError(
    `a Docker ${what} named ${name} exists and was not created for this cluster (it lacks the ${LABEL.cluster} label); ` +
      "remove it or choose another cluster name",
    "CONFLICT",
  );
}

function stopRoleOf(c: ContainerSummary): StopRole {
  const role = roleOf(c);
  if (role === "autoscaler") return "autoscaler";
  return role === "management" ? "management" : role === "query_frontend" ? "frontend" : "model";
}

function stateOf(status: string): ReplicaStatus["state"] {
  if (status === "running") return "running";
  if (status === "restarting") return "restarting";
  return "exited";
}

/** The port configured at start, from its label (0 when Docker chose it or the label is unreadable). */
function configuredPort(label: string | undefined): number {
  const port = Number(label ?? 0);
  return Number.isInteger(port) && port > 0 ? port : 0;
}

/** The cluster host as Docker publishes on it ("localhost" is 127.0.0.1). */
function publishAddress(host: string): string {
  return host === "localhost" ? "127.0.0.1" : host;
}

/** Refuses cluster options the Docker manager cannot honour, before anything is created. */
export function checkClusterOptions(cluster: string, options: ClusterOptions): void {
  if (options.cluster !== cluster) {
    throw new ManagerError(
      `cluster name mismatch: this manager is for cluster ${cluster}, the options name ${options.cluster}`,
      "INVALID_ARGUMENT",
    );
  }
  // Docker does not publish the RPC ports (replicas use the frontend's internal ones, 7000 + worker),
  // so the rpcPort option names no port of this cluster and cannot clash with the published two.
  checkClusterPorts({
    queryPort: options.queryPort, managementPort: options.managementPort, rpcPort: 0,
    ...(options.frontendWorkers === undefined ? {} : { frontendWorkers: options.frontendWorkers }),
  });
  if (!options.host.trim()) throw new ManagerError("the cluster host must not be empty", "INVALID_ARGUMENT");
}
