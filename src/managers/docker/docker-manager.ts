/**
 * The Docker ContainerManager. A cluster `<c>` is:
 *   network   clipper-<c>                 user-defined bridge; containers find each other by name
 *   volume    clipper-<c>-state           the management daemon's --state-dir /state
 *   container clipper-<c>-management      node dist/runtime/management/main.js, 1338 published
 *   container clipper-<c>-query-frontend  node dist/runtime/frontend/main.js, 1337 published (7000, the
 *                                         model RPC port, only on the network)
 *   container clipper-<c>-<m>-<v>-<i>     model replicas: the model image's own command; they reach
 *                                         the frontend over the network (CLIPPER_IP=<frontend name>)
 *   container clipper-<c>-<m>-<v>-deployment  created, never started: the deployment's record
 * The frontends run from a runtime image built locally from this package (src/images), so no
 * registry is needed; `runtimeBaseImage` chooses its base (it must hold Node 20), `runtimeImage`
 * skips the build. Frontends and replicas restart unless stopped.
 *
 * Ownership is by label (labels.ts): `ai.clipper.container.label=<c>` is on every container, the
 * network and the volume; every lookup and every removal filters on it, so `stopAll` removes what
 * this manager created and nothing else. `ai.clipper.name` gives the role, and model replicas carry
 * Clipper's `ai.clipper.model_container.label=<m>_<v>`. The deployment itself (image, env, GPUs,
 * input type) is JSON in `ai.clipper.deployment`, so another process can scale a model; scaled to
 * zero, the created-only record container keeps it.
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
 * its version's credential as CLIPPER_RPC_SECRET, derived at deploy or scale from the key read
 * back from the frontend. The deployment label holds no credential. The frontend's
 * `ai.clipper.rpc.auth` label says which mode it runs in.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type Dockerode from "dockerode";
import { dockerClient, dockerError } from "../../docker/client.js";
import { httpProblem } from "../../http-fetch.js";
import { ClipperError } from "../../errors.js";
import type { BuildProgress } from "../../images/types.js";
import { isLoopbackHost } from "../../../runtime/shared/loopback.js";
import { nameProblem } from "../../../runtime/shared/names.js";
import type {
  ClusterAddresses,
  ClusterOptions,
  ClusterStatus,
  ComponentStatus,
  ContainerManager,
  LogSource,
  LogTail,
  ModelDeployment,
  ReplicaStatus,
} from "../container-manager.js";
import { checkClusterPorts, ManagerError } from "../errors.js";
import { connectHost, RPC_KEY_FILE, rpcAuthOf, urlHost } from "../cluster-spec.js";
import {
  clusterLabels,
  componentOf,
  INTERNAL_PORTS,
  LABEL,
  labelFilter,
  names,
  readStoredDeployment,
  sameStoredDeployment,
  storedDeployment,
  type Role,
  type StoredDeployment,
} from "./labels.js";
import { logLines } from "./logs.js";
import { daemonHostName, deploymentRecordSpec, frontendSpec, managementSpec, replicaSpec } from "./specs.js";
import { newToken, putToken, readTokenFrom } from "./token.js";
import { generateRpcKey } from "../../../runtime/shared/rpc-auth.js";

export interface DockerManagerOptions {
  /** Cluster name (default "default"); names the network, volume and containers. */
  cluster?: string;
  /** A dockerode client (default: DOCKER_HOST or /var/run/docker.sock). */
  docker?: Dockerode;
  /** Base image of the runtime image the frontends run from; it must hold Node 20 (default: the image builder's). */
  runtimeBaseImage?: string;
  /** A runtime image that already exists: skips building one. */
  runtimeImage?: string;
  /** Seconds a stopping container gets after SIGTERM before SIGKILL (default 5). */
  stopGraceSeconds?: number;
  /** Progress of the runtime image build. */
  onProgress?: BuildProgress;
}

export const MAX_REPLICAS = 64;

type State = "running" | "restarting" | "exited";

interface Ports {
  query: number;
  management: number;
}

/** What `startClipper` created, so a failed start removes exactly that. */
interface Created {
  containers: Dockerode.Container[];
  network?: Dockerode.Network;
  volume?: Dockerode.Volume;
}

const TITLES: Record<string, string> = { management: "the management daemon", frontend: "the query frontend" };

export class DockerContainerManager implements ContainerManager {
  readonly kind = "docker" as const;
  readonly capabilities = { runsImages: true, pullsFromRegistry: false, defaultReadyTimeoutMs: 60_000, reportsPods: false };
  readonly cluster: string;
  private readonly docker: Dockerode;
  private readonly runtimeBaseImage: string | undefined;
  private readonly runtimeImage: string | undefined;
  private readonly stopGraceSeconds: number;
  private readonly onProgress: BuildProgress | undefined;

  constructor(options: DockerManagerOptions = {}) {
    const cluster = options.cluster ?? "default";
    const problem = nameProblem("cluster name", cluster);
    if (problem) throw new ManagerError(problem, "INVALID_ARGUMENT");
    this.cluster = cluster;
    this.docker = options.docker ?? dockerClient();
    this.runtimeBaseImage = options.runtimeBaseImage;
    this.runtimeImage = options.runtimeImage;
    this.stopGraceSeconds = options.stopGraceSeconds ?? 5;
    this.onProgress = options.onProgress;
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  async startClipper(options: ClusterOptions): Promise<ClusterAddresses> {
    checkClusterOptions(this.cluster, options);
    const existing = await this.containers();
    if (existing.length > 0) {
      throw new ManagerError(
        `a Docker cluster named ${this.cluster} already exists (containers: ${existing.map(containerName).join(", ")}); ` +
          "stop it with `clipper stop --manager docker` or choose another cluster name",
        "CLUSTER_ALREADY_RUNNING",
      );
    }
    const image = await this.runtimeImageTag();
    const created: Created = { containers: [] };
    try {
      await this.ensureNetwork(created);
      await this.ensureVolume(created);
      const token = isLoopbackHost(publishHost(options.host)) ? undefined : newToken();
      const daemonHost = daemonHostName(this.remoteDaemonHost());
      const input = { cluster: this.cluster, options, image, token: token !== undefined, ...(daemonHost === undefined ? {} : { daemonHost }) };
      const rpcKey = rpcAuthOf(options) === "plain" ? generateRpcKey() : undefined;
      const management = await this.createAndStart(managementSpec(input), created, token);
      const frontend = await this.createAndStart(frontendSpec(input), created, token, rpcKey);
      const ports = await this.publishedPorts(management, frontend);
      const addresses = this.addressesFor(options.host, ports, token);
      await this.waitUntilUp(addresses, { management, frontend }, options.startupTimeoutMs);
      return addresses;
    } catch (err) {
      await this.undoStart(created);
      throw err;
    }
  }

  async connect(): Promise<ClusterAddresses> {
    return (await this.addressesOf(await this.containers())).addresses;
  }

  /** The addresses of the cluster whose containers are `all`, with the inspections they were read from. */
  private async addressesOf(all: Dockerode.ContainerInfo[]): Promise<{ addresses: ClusterAddresses; inspected: Dockerode.ContainerInspectInfo[] }> {
    const management = all.find((c) => roleOf(c) === "management");
    const frontend = all.find((c) => roleOf(c) === "query_frontend");
    if (!management || !frontend) {
      if (all.length === 0) throw notRunning(this.cluster);
      const missing = [!management && "the management daemon", !frontend && "the query frontend"].filter(Boolean).join(" and ");
      throw new ManagerError(
        `the Docker cluster ${this.cluster} has no container for ${missing}; stop it with \`clipper stop --manager docker\` and start it again`,
        "CLUSTER_NOT_RUNNING",
      );
    }
    const [mInfo, fInfo] = await Promise.all([this.inspect(management.Id), this.inspect(frontend.Id)]);
    const labels = fInfo.Config.Labels ?? {};
    const ports: Ports = {
      query: portOf(fInfo, INTERNAL_PORTS.query, labels[LABEL.queryPort]),
      management: portOf(mInfo, INTERNAL_PORTS.management, mInfo.Config.Labels?.[LABEL.managementPort]),
    };
    const unknown = Object.entries(ports).filter(([, p]) => !p).map(([k]) => k);
    if (unknown.length) {
      throw new ManagerError(
        `the Docker cluster ${this.cluster} is not running (its ${unknown.join(", ")} port${unknown.length > 1 ? "s are" : " is"} ` +
          `not published: ${[mInfo, fInfo].map((i) => `${i.Name.replace(/^\//, "")} ${i.State.Status}`).join(", ")})`,
        "CLUSTER_NOT_RUNNING",
      );
    }
    const tokenFile = mInfo.Config.Labels?.[LABEL.tokenFile];
    const token = tokenFile
      ? await this.call("reading the management token", () => readTokenFrom(this.docker.getContainer(mInfo.Id), tokenFile))
      : undefined;
    if (tokenFile && !token) {
      throw new ManagerError(`the management container ${containerName(management)} has lost its token file ${tokenFile}`, "CONTROL_API");
    }
    return { addresses: this.addressesFor(labels[LABEL.host] ?? "127.0.0.1", ports, token), inspected: [mInfo, fInfo] };
  }

  /**
   * Removes every container, the network and (unless keepState, the default) the state volume that
   * carry this cluster's label; nothing else. Throws NO_CLUSTER when there is nothing to remove.
   */
  async stopAll(options?: { keepState?: boolean }): Promise<void> {
    const keepState = options?.keepState ?? true;
    const containers = await this.containers();
    const filters = { label: [labelFilter(LABEL.cluster, this.cluster)] };
    const networks = await this.call("listing networks", () => this.docker.listNetworks({ filters }));
    const volumes = keepState
      ? []
      : ((await this.call("listing volumes", () => this.docker.listVolumes({ filters }))).Volumes ?? []);
    if (containers.length === 0 && networks.length === 0 && volumes.length === 0) throw notRunning(this.cluster);

    // Replicas first, then the frontend, then the management daemon.
    const order = (c: Dockerode.ContainerInfo) => ({ model: 0, model_deployment: 0, query_frontend: 1, management: 2 })[roleOf(c) ?? "model"] ?? 0;
    for (const rank of [0, 1, 2]) {
      await Promise.all(containers.filter((c) => order(c) === rank).map((c) => this.removeContainer(c.Id)));
    }
    for (const network of networks) await this.removeNetwork(network.Id);
    for (const volume of volumes) {
      await this.call(`removing volume ${volume.Name}`, () => this.docker.getVolume(volume.Name).remove()).catch(ignoreStatus(404));
    }
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
    const rpcKey = await this.frontendRpcKey();
    await this.ensureImage(deployment.image);
    const wanted = storedDeployment({ ...deployment, image: deployment.image });
    const current = await this.findDeployment(deployment.name, deployment.version);
    if (current.stored && !sameStoredDeployment(current.stored, wanted)) {
      // A changed deployment replaces its replicas (as the local manager does).
      await Promise.all([...current.replicas, ...(current.record ? [current.record] : [])].map((c) => this.removeContainer(c.Id)));
      current.replicas = [];
      current.record = undefined;
    }
    if (!current.record) await this.createContainer(deploymentRecordSpec(this.cluster, wanted), wanted);
    await this.scale(wanted, current.replicas, replicas, rpcKey);
  }

  async setNumReplicas(name: string, version: string, replicas: number): Promise<void> {
    checkReplicas(replicas);
    checkModelNames(name, version);
    const current = await this.findDeployment(name, version);
    if (!current.stored) {
      throw new ManagerError(`no deployment of model ${name} version ${version} in the Docker cluster ${this.cluster}; deploy it first`, "NOT_FOUND");
    }
    await this.scale(current.stored, current.replicas, replicas, await this.frontendRpcKey());
  }

  async getNumReplicas(name: string, version: string): Promise<number> {
    return (await this.findDeployment(name, version)).replicas.length;
  }

  async stopModels(models: Record<string, string[]>): Promise<void> {
    const chosen: Dockerode.ContainerInfo[] = [];
    for (const [name, versions] of Object.entries(models)) {
      const found = await this.containers([labelFilter(LABEL.modelName, name)]);
      chosen.push(...found.filter((c) => versions.length === 0 || versions.includes(c.Labels[LABEL.modelVersion] ?? "")));
    }
    await Promise.all(chosen.map((c) => this.removeContainer(c.Id)));
  }

  async deleteModels(models: Record<string, string[]>): Promise<void> {
    return this.stopModels(models);
  }

  async stopAllModelContainers(): Promise<void> {
    const all = await this.containers();
    await Promise.all(all.filter((c) => roleOf(c) === "model" || roleOf(c) === "model_deployment").map((c) => this.removeContainer(c.Id)));
  }

  // ---- inspection ------------------------------------------------------------------------------

  async status(): Promise<ClusterStatus> {
    const all = await this.containers();
    const { addresses, inspected: known } = await this.addressesOf(all);
    const inspected = await Promise.all(
      all.filter((c) => roleOf(c) !== "model_deployment").map(async (c) => ({
        c, info: known.find((i) => i.Id === c.Id) ?? await this.inspect(c.Id).catch(() => undefined),
      })),
    );
    const components: ComponentStatus[] = [];
    const replicas: ReplicaStatus[] = [];
    for (const { c, info } of inspected) {
      if (!info) continue;
      const state = stateOf(info.State.Status);
      const pid = info.State.Pid > 0 ? { pid: info.State.Pid } : {};
      const restarts = info.RestartCount ?? 0;
      const role = roleOf(c);
      if (role === "model") {
        replicas.push({
          name: c.Labels[LABEL.modelName] ?? "",
          version: c.Labels[LABEL.modelVersion] ?? "",
          replica: Number(c.Labels[LABEL.replica]),
          state,
          ...pid,
          restarts,
        });
      } else if (role === "management" || role === "query_frontend") {
        components.push({ component: componentOf(c.Labels)!, state, ...pid, restarts });
      }
    }
    components.sort((a, b) => a.component.localeCompare(b.component));
    replicas.sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version) || a.replica - b.replica);
    return { addresses, components, replicas };
  }

  /**
   * The containers whose logs match `component`: `management`, `frontend`, a replica
   * (`<model>-<version>-<n>`), or a model name or `<model>-<version>` for all of its replicas.
   */
  async logs(component?: string): Promise<LogSource[]> {
    return (await this.logContainers(component)).map(({ component: c }) => ({ component: c }));
  }

  async readLogs(component: string | undefined, tail: number): Promise<LogTail[]> {
    const sources = await this.logContainers(component);
    return Promise.all(
      sources.map(async ({ component: c, id }) => {
        const buffer = await this.call(`reading the log of ${c}`, () =>
          this.docker.getContainer(id).logs({ stdout: true, stderr: true, tail: Math.max(0, Math.floor(tail)), follow: false }),
        );
        return { component: c, lines: logLines(Buffer.isBuffer(buffer) ? buffer : Buffer.from(String(buffer)), tail) };
      }),
    );
  }

  // ---- internals: starting ---------------------------------------------------------------------

  /** The runtime image: given, or built from this package by the image builder. */
  private async runtimeImageTag(): Promise<string> {
    if (this.runtimeImage) {
      await this.call(`inspecting the runtime image ${this.runtimeImage}`, () => this.docker.getImage(this.runtimeImage!).inspect());
      return this.runtimeImage;
    }
    const { buildRuntimeImage } = await import("../../images/index.js");
    return buildRuntimeImage(this.docker, this.runtimeBaseImage ? { baseImage: this.runtimeBaseImage } : {}, this.onProgress);
  }

  private async ensureNetwork(created: Created): Promise<void> {
    const name = names.network(this.cluster);
    const existing = await this.docker.getNetwork(name).inspect().catch(ignoreStatus(404));
    if (existing) {
      if (existing.Labels?.[LABEL.cluster] !== this.cluster) throw notOurs("network", name);
      return; // left by a cluster that did not stop cleanly: ours to reuse
    }
    created.network = await this.call(`creating network ${name}`, () =>
      this.docker.createNetwork({ Name: name, Driver: "bridge", CheckDuplicate: true, Labels: clusterLabels(this.cluster) }),
    );
  }

  private async ensureVolume(created: Created): Promise<void> {
    const name = names.volume(this.cluster);
    const existing = await this.docker.getVolume(name).inspect().catch(ignoreStatus(404));
    if (existing) {
      if (existing.Labels?.[LABEL.cluster] !== this.cluster) throw notOurs("volume", name);
      return; // state kept by `stop --keep-state`
    }
    created.volume = await this.call(`creating volume ${name}`, () =>
      this.docker.createVolume({ Name: name, Labels: clusterLabels(this.cluster) }),
    );
  }

  private async createAndStart(
    spec: Dockerode.ContainerCreateOptions, created: Created, token: string | undefined, rpcKey?: string,
  ): Promise<Dockerode.Container> {
    const container = await this.call(`creating container ${spec.name}`, () => this.docker.createContainer(spec));
    created.containers.push(container);
    if (token) await this.call(`copying the token into ${spec.name}`, () => putToken(container, token));
    if (rpcKey) await this.call(`copying the RPC key into ${spec.name}`, () => putToken(container, rpcKey, RPC_KEY_FILE));
    await this.call(`starting container ${spec.name}`, () => container.start());
    return container;
  }

  private async publishedPorts(management: Dockerode.Container, frontend: Dockerode.Container): Promise<Ports> {
    const [m, f] = await Promise.all([this.inspect(management.id), this.inspect(frontend.id)]);
    const ports = {
      query: portOf(f, INTERNAL_PORTS.query),
      management: portOf(m, INTERNAL_PORTS.management),
    };
    if (!ports.query || !ports.management) {
      throw new ManagerError(
        `Docker did not publish the cluster's ports (${m.Name.replace(/^\//, "")} ${m.State.Status}, ${f.Name.replace(/^\//, "")} ${f.State.Status})`,
        "STARTUP_FAILED",
      );
    }
    return ports;
  }

  /** Waits until /admin/ping and /health answer through the published ports, or explains why not. */
  private async waitUntilUp(
    addresses: ClusterAddresses,
    containers: { management: Dockerode.Container; frontend: Dockerode.Container },
    timeoutMs: number,
  ): Promise<void> {
    const headers: Record<string, string> = addresses.token ? { authorization: `Bearer ${addresses.token}` } : {};
    const checks = [
      { component: "management", container: containers.management, url: `${addresses.managementUrl}/admin/ping`, expect: "PONG", ok: false, problem: "no answer yet" },
      { component: "frontend", container: containers.frontend, url: `${addresses.queryUrl}/health`, expect: undefined, ok: false, problem: "no answer yet" },
    ];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      await Promise.all(
        checks.filter((c) => !c.ok).map(async (check) => {
          const problem = await httpProblem(check.url, headers, Math.max(200, Math.min(2000, left)), check.expect);
          check.ok = problem === undefined;
          if (problem) check.problem = problem;
        }),
      );
      if (checks.every((c) => c.ok)) return;
      for (const check of checks.filter((c) => !c.ok)) {
        const info = await this.inspect(check.container.id);
        const restarts = info.RestartCount ?? 0;
        if (restarts > 0 || info.State.Status === "exited" || info.State.Status === "dead") {
          const stopped = info.State.Status === "exited" || info.State.Status === "dead";
          const exit = stopped
            ? `exited with code ${info.State.ExitCode}${restarts ? ` after ${restarts} restart${restarts > 1 ? "s" : ""}` : ""}`
            : `keeps exiting (Docker restarted it ${restarts} time${restarts > 1 ? "s" : ""})`;
          throw await this.startupError(check.component, check.container, exit);
        }
      }
      if (Date.now() >= deadline) {
        const check = checks.find((c) => !c.ok)!;
        throw await this.startupError(check.component, check.container, `did not answer GET ${check.url} within ${timeoutMs} ms (${check.problem})`);
      }
      await sleep(Math.min(250, Math.max(0, deadline - Date.now())));
    }
  }

  private async startupError(component: string, container: Dockerode.Container, what: string): Promise<ManagerError> {
    const info = await this.inspect(container.id).catch(() => undefined);
    const name = info?.Name.replace(/^\//, "") ?? container.id.slice(0, 12);
    const buffer = await container.logs({ stdout: true, stderr: true, tail: 10, follow: false }).catch(() => undefined);
    const lines = buffer ? logLines(buffer, 10).filter((l) => l.trim()) : [];
    const tail = lines.length ? `; its last log lines:\n${lines.map((l) => `  ${l}`).join("\n")}` : "; it logged nothing";
    return new ManagerError(`${TITLES[component]} (container ${name}) ${what}${tail}`, "STARTUP_FAILED");
  }

  /** Removes what a failed start created (and only that): containers, then network and volume. */
  private async undoStart(created: Created): Promise<void> {
    for (const container of created.containers.reverse()) await this.removeContainer(container.id).catch(() => undefined);
    if (created.network) await this.removeNetwork(created.network.id).catch(() => undefined);
    if (created.volume) await created.volume.remove().catch(() => undefined);
  }

  // ---- internals: models -----------------------------------------------------------------------

  private async findDeployment(
    name: string,
    version: string,
  ): Promise<{ stored?: StoredDeployment; record?: Dockerode.ContainerInfo; replicas: Dockerode.ContainerInfo[] }> {
    const found = await this.containers([labelFilter(LABEL.modelName, name), labelFilter(LABEL.modelVersion, version)]);
    const record = found.find((c) => roleOf(c) === "model_deployment");
    const replicas = found.filter((c) => roleOf(c) === "model");
    const stored = readStoredDeployment(record?.Labels) ?? replicas.map((r) => readStoredDeployment(r.Labels)).find(Boolean);
    return { ...(stored ? { stored } : {}), ...(record ? { record } : {}), replicas };
  }

  /**
   * Brings a version to `desired` replicas numbered 0..desired-1: creates and starts the missing
   * ones (all or none: if one cannot start, the new ones are removed again), starts stopped ones,
   * and removes the highest-numbered ones beyond `desired`.
   */
  private async scale(d: StoredDeployment, replicas: Dockerode.ContainerInfo[], desired: number, rpcKey: string | undefined): Promise<void> {
    const byIndex = new Map(replicas.map((r) => [Number(r.Labels[LABEL.replica]), r]));
    const added: Dockerode.Container[] = [];
    const results = await Promise.allSettled(
      Array.from({ length: desired }, async (_, i) => {
        const existing = byIndex.get(i);
        if (existing) {
          if (existing.State !== "running" && existing.State !== "restarting") {
            await this.call(`starting replica ${i} of ${d.name}:${d.version}`, () => this.docker.getContainer(existing.Id).start());
          }
          return;
        }
        const container = await this.createContainer(replicaSpec(this.cluster, d, i, rpcKey), d);
        added.push(container);
        await this.call(`starting replica ${i} of ${d.name}:${d.version}`, () => container.start());
      }),
    );
    const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failure) {
      await Promise.all(added.map((c) => this.removeContainer(c.id).catch(() => undefined)));
      throw failure.reason;
    }
    const extra = [...byIndex.entries()].filter(([i]) => !(i < desired)).sort((a, b) => b[0] - a[0]);
    await Promise.all(extra.map(([, c]) => this.removeContainer(c.Id)));
  }

  private async createContainer(spec: Dockerode.ContainerCreateOptions, d: StoredDeployment): Promise<Dockerode.Container> {
    try {
      return await this.docker.createContainer(spec);
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 409) {
        const other = await this.docker.getContainer(spec.name!).inspect().catch(() => undefined);
        const labels = other?.Config.Labels ?? {};
        const owner = labels[LABEL.cluster] === this.cluster && labels[LABEL.modelName]
          ? `model ${labels[LABEL.modelName]} version ${labels[LABEL.modelVersion]}`
          : "a container this cluster did not create";
        throw new ManagerError(
          `container name ${spec.name} for model ${d.name} version ${d.version} is taken by ${owner}; choose another name or version`,
          "CONFLICT",
        );
      }
      throw dockerError(err, `creating container ${spec.name}`);
    }
  }

  /** The model image must be on the Docker host; one that is not is pulled (it may be in a registry). */
  private async ensureImage(image: string): Promise<void> {
    const found = await this.docker.getImage(image).inspect().catch(ignoreStatus(404));
    if (found) return;
    try {
      const stream = await this.docker.pull(image);
      await new Promise<void>((resolve, reject) => {
        this.docker.modem.followProgress(
          stream,
          (err: Error | null) => (err ? reject(err) : resolve()),
          (event: { error?: string; errorDetail?: { message?: string } }) => {
            if (event.errorDetail || event.error) reject(new Error(event.errorDetail?.message ?? event.error));
          },
        );
      });
    } catch (err) {
      const mapped = dockerError(err, `pulling model image ${image}`);
      if (mapped instanceof ClipperError) throw mapped;
      throw new ManagerError(
        `model image ${image} is not on the Docker host and could not be pulled (${mapped.message}); build it first`,
        "NOT_FOUND",
      );
    }
  }

  /**
   * The cluster's RPC key, read back from the query frontend, when it authenticates replicas
   * (undefined when it admits any peer); throws when the cluster has no frontend.
   */
  private async frontendRpcKey(): Promise<string | undefined> {
    const [frontend] = await this.containers([labelFilter(LABEL.role, "query_frontend")]);
    if (!frontend) throw notRunning(this.cluster);
    if (frontend.Labels?.[LABEL.rpcAuth] !== "plain") return undefined;
    const key = await this.call("reading the RPC key", () => readTokenFrom(this.docker.getContainer(frontend.Id), RPC_KEY_FILE));
    if (!key) {
      throw new ManagerError(`the query frontend ${containerName(frontend)} has lost its RPC key ${RPC_KEY_FILE}; ` +
        "stop the cluster and start it again", "CONTROL_API");
    }
    return key;
  }

  // ---- internals: docker -----------------------------------------------------------------------

  /** Every container (any state) with this cluster's label, plus any further label filters. */
  private async containers(filters: string[] = []): Promise<Dockerode.ContainerInfo[]> {
    return this.call("listing containers", () =>
      this.docker.listContainers({ all: true, filters: { label: [labelFilter(LABEL.cluster, this.cluster), ...filters] } }),
    );
  }

  private inspect(id: string): Promise<Dockerode.ContainerInspectInfo> {
    return this.call("inspecting a container", () => this.docker.getContainer(id).inspect());
  }

  private async logContainers(component: string | undefined): Promise<{ component: string; id: string }[]> {
    const all = await this.containers();
    if (all.length === 0) throw notRunning(this.cluster);
    const sources = all
      .map((c) => ({ c, component: componentOf(c.Labels) }))
      .filter((s): s is { c: Dockerode.ContainerInfo; component: string } => s.component !== undefined)
      .sort((a, b) => a.component.localeCompare(b.component, undefined, { numeric: true }));
    const chosen = !component
      ? sources
      : sources.some((s) => s.component === component)
        ? sources.filter((s) => s.component === component)
        : sources.filter(({ c }) => {
            const name = c.Labels[LABEL.modelName];
            return roleOf(c) === "model" && (name === component || `${name}-${c.Labels[LABEL.modelVersion]}` === component);
          });
    if (component && chosen.length === 0) {
      throw new ManagerError(
        `no logs for component ${component} (known: ${sources.map((s) => s.component).join(", ") || "none"})`,
        "NOT_FOUND",
      );
    }
    return chosen.map(({ c, component: name }) => ({ component: name, id: c.Id }));
  }

  /** Stops (SIGTERM, then SIGKILL after the grace period) and removes a container; gone is fine. */
  private async removeContainer(id: string): Promise<void> {
    const container = this.docker.getContainer(id);
    await container.stop({ t: this.stopGraceSeconds }).catch(ignoreStatus(304, 404));
    await this.call("removing a container", () => container.remove({ force: true, v: false })).catch(ignoreStatus(404, 409));
  }

  /** Removes a network, first disconnecting containers that are not ours but joined it. */
  private async removeNetwork(id: string): Promise<void> {
    const network = this.docker.getNetwork(id);
    const info = await network.inspect().catch(ignoreStatus(404));
    if (!info) return;
    for (const endpoint of Object.keys(info.Containers ?? {})) {
      await network.disconnect({ Container: endpoint, Force: true }).catch(() => undefined);
    }
    await this.call(`removing network ${info.Name}`, () => network.remove()).catch(ignoreStatus(404));
  }

  private async call<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ClipperError) throw err;
      throw dockerError(err, doing);
    }
  }

  private addressesFor(host: string, ports: Ports, token: string | undefined): ClusterAddresses {
    const h = urlHost(this.clientHost(publishHost(host)));
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
  private clientHost(host: string): string {
    const remote = this.remoteDaemonHost();
    if (remote && (host === "0.0.0.0" || host === "::")) return remote;
    return connectHost(host);
  }

  /** The host of a daemon reached over TCP (DOCKER_HOST=tcp://…); undefined for a local socket. */
  private remoteDaemonHost(): string | undefined {
    return (this.docker.modem as { host?: string } | undefined)?.host;
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

function roleOf(c: Dockerode.ContainerInfo): Role | undefined {
  return c.Labels?.[LABEL.role] as Role | undefined;
}

function containerName(c: Dockerode.ContainerInfo): string {
  return (c.Names?.[0] ?? c.Id.slice(0, 12)).replace(/^\//, "");
}

function stateOf(status: string): State {
  if (status === "running") return "running";
  if (status === "restarting") return "restarting";
  return "exited";
}

/** The host address a container port is published on (0 when it is not published now). */
function portOf(info: Dockerode.ContainerInspectInfo, internal: number, label?: string): number {
  const bindings = (info.NetworkSettings?.Ports as Record<string, { HostPort?: string }[] | null> | undefined)?.[`${internal}/tcp`];
  const published = Number(bindings?.find((b) => b.HostPort)?.HostPort ?? 0);
  if (published > 0) return published;
  const configured = Number(label ?? 0);
  return Number.isInteger(configured) && configured > 0 ? configured : 0;
}

/** The cluster host as Docker publishes on it ("localhost" is 127.0.0.1). */
function publishHost(host: string): string {
  return host === "localhost" ? "127.0.0.1" : host;
}

function ignoreStatus(...codes: number[]) {
  return (err: unknown): undefined => {
    if (codes.includes((err as { statusCode?: number }).statusCode ?? -1)) return undefined;
    throw err;
  };
}

function checkReplicas(replicas: number): void {
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > MAX_REPLICAS) {
    throw new ManagerError(`the number of replicas must be an integer from 0 to ${MAX_REPLICAS} (got ${replicas})`, "INVALID_ARGUMENT");
  }
}

function checkModelNames(name: string, version: string): void {
  const problem = nameProblem("model name", name) ?? nameProblem("model version", version);
  if (problem) throw new ManagerError(problem, "INVALID_ARGUMENT");
}

/** Refuses cluster options the Docker manager cannot honour, before anything is created. */
export function checkClusterOptions(cluster: string, options: ClusterOptions): void {
  if (options.cluster !== cluster) {
    throw new ManagerError(
      `cluster name mismatch: this manager is for cluster ${cluster}, the options name ${options.cluster}`,
      "INVALID_ARGUMENT",
    );
  }
  // Docker does not publish the RPC port (replicas use the frontend's internal one), so the rpcPort
  // option names no port of this cluster and cannot clash with the published two.
  checkClusterPorts({ queryPort: options.queryPort, managementPort: options.managementPort, rpcPort: 0 });
  if (!options.host.trim()) throw new ManagerError("the cluster host must not be empty", "INVALID_ARGUMENT");
}


