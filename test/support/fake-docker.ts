/**
 * An in-process DockerEngine (src/managers/docker/engine.ts) with the daemon's semantics, for the
 * Docker manager's unit tests: containers, networks and volumes in memory; 409 on a taken name and
 * on removing a volume a container mounts; 404 on what is missing (an image, a network, a
 * container); label filters; states (created, running, exited); host ports published on start
 * (Docker's choice for an empty HostPort, 500 when the port is held). Tests steer it: images that
 * exist or can be pulled, containers that fail to start or exit at once, failures of one call.
 * `probe` answers for the published ports of running containers, and `clock` moves only when the
 * manager sleeps on it, so no test waits in real time.
 */
import type { Clock } from "../../src/managers/common/index.js";
import {
  EngineError,
  type ContainerDetails,
  type ContainerLogOptions,
  type ContainerUsage,
  type ContainerSpec,
  type ContainerState,
  type ContainerSummary,
  type DockerEngine,
  type NamedObject,
} from "../../src/managers/docker/engine.js";
import type { BuildProgress } from "../../src/images/types.js";

interface FakeContainer {
  id: string;
  name: string;
  spec: ContainerSpec;
  state: ContainerState;
  exitCode: number;
  restartCount: number;
  ports: Record<number, number>;
  files: Map<string, string>;
  logs: string[];
  startedAt?: Date;
  /** What containerStats answers while it runs (set by a test). */
  usage?: ContainerUsage;
  /** When each line of `logs` was written (ms). */
  logTimes: number[];
  /** Followers of its log, told of each new line and of the container stopping. */
  followers: Set<{ line(text: string): void; stopped(): void }>;
}

/** What a started container does: keep running (default), exit with a code, or fail to start. */
export type StartBehaviour = { exit: number; logs?: string[] } | { fail: string };

const FIRST_EPHEMERAL_PORT = 32768;

/** A clock that moves only when slept on. */
export class FakeClock implements Clock {
  constructor(public time = 1_000_000) {}
  now(): number {
    return this.time;
  }
  async sleep(ms: number): Promise<void> {
    this.time += Math.max(0, ms);
  }
}

function matches(labels: Record<string, string>, wanted: Record<string, string>): boolean {
  return Object.entries(wanted).every(([k, v]) => Object.prototype.hasOwnProperty.call(labels, k) && labels[k] === v);
}

export class FakeDockerEngine implements DockerEngine {
  private readonly remote: string | undefined;
  readonly containers = new Map<string, FakeContainer>();
  readonly networks = new Map<string, NamedObject>();
  readonly volumes = new Map<string, NamedObject>();
  readonly images = new Set<string>();
  /** Every streamContainerLogs call, as asked. */
  readonly logFollows: ({ id: string } & ContainerLogOptions)[] = [];
  /** Images a pull finds (in a registry). */
  readonly registry = new Set<string>();
  /** Every runtime image build, with its options. */
  readonly builds: { baseImage?: string }[] = [];
  /** Containers started, stopped or removed, by name, in order (`start NAME`, `stop NAME`, `remove NAME`). */
  readonly events: string[] = [];
  /** Each stopContainer call: the container's name and the grace it was given (seconds). */
  readonly stops: { name: string; graceSeconds: number }[] = [];
  /** What a container does when started, by a test on its spec (first match wins). */
  readonly onStart: { when: (spec: ContainerSpec) => boolean; then: StartBehaviour }[] = [];
  /** A failure of the next call of a method. */
  private readonly failures = new Map<keyof DockerEngine, EngineError>();
  private nextId = 1;
  private nextPort = FIRST_EPHEMERAL_PORT;

  constructor(options: { remoteHost?: string; images?: string[] } = {}) {
    this.remote = options.remoteHost;
    for (const image of options.images ?? []) this.images.add(image);
  }

  async remoteHost(): Promise<string | undefined> {
    return this.remote;
  }

  /** Makes the next call of `method` throw `error`. */
  failNext(method: keyof DockerEngine, error: EngineError): void {
    this.failures.set(method, error);
  }

  private check(method: keyof DockerEngine): void {
    const failure = this.failures.get(method);
    if (failure) {
      this.failures.delete(method);
      throw failure;
    }
  }

  /** The container named or with this id (Docker accepts both). */
  private find(idOrName: string): FakeContainer | undefined {
    return this.containers.get(idOrName) ?? [...this.containers.values()].find((c) => c.name === idOrName);
  }

  private must(idOrName: string): FakeContainer {
    const c = this.find(idOrName);
    if (!c) throw new EngineError(`No such container: ${idOrName}`, 404);
    return c;
  }

  private summary(c: FakeContainer): ContainerSummary {
    return { id: c.id, name: c.name, state: c.state, labels: { ...c.spec.Labels } };
  }

  byName(name: string): FakeContainer | undefined {
    return [...this.containers.values()].find((c) => c.name === name);
  }

  /** Containers carrying all of `labels`, by name. */
  namesWith(labels: Record<string, string>): string[] {
    return [...this.containers.values()].filter((c) => matches(c.spec.Labels, labels)).map((c) => c.name).sort();
  }

  // ---- DockerEngine ----------------------------------------------------------------------------

  async listContainers(labels: Record<string, string>): Promise<ContainerSummary[]> {
    this.check("listContainers");
    return [...this.containers.values()].filter((c) => matches(c.spec.Labels, labels)).map((c) => this.summary(c));
  }

  async inspectContainer(id: string): Promise<ContainerDetails | undefined> {
    this.check("inspectContainer");
    const c = this.find(id);
    if (!c) return undefined;
    const pid = c.state === "running" ? 1000 + Number(c.id.replace(/\D/g, "")) : 0;
    return {
      ...this.summary(c), pid, exitCode: c.exitCode, restartCount: c.restartCount, ports: { ...c.ports }, ...(c.startedAt ? { startedAt: c.startedAt } : {}),
    };
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    this.check("createContainer");
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(spec.name)) throw new EngineError(`Invalid container name (${spec.name})`, 400);
    if (this.find(spec.name)) throw new EngineError(`Conflict. The container name "/${spec.name}" is already in use`, 409);
    if (!this.images.has(spec.Image)) throw new EngineError(`No such image: ${spec.Image}`, 404);
    const network = spec.HostConfig.NetworkMode;
    if (network && !["bridge", "host", "none", "default"].includes(network) && !this.findNetworkSync(network)) {
      throw new EngineError(`network ${network} not found`, 404);
    }
    for (const mount of spec.HostConfig.Mounts ?? []) {
      // Docker creates a named volume a container mounts when it does not exist yet (a bind mount is a host path).
      if (mount.Type === "volume" && !this.volumes.has(mount.Source)) this.volumes.set(mount.Source, { id: mount.Source, name: mount.Source, labels: {} });
    }
    const id = `c${String(this.nextId++).padStart(11, "0")}`;
    this.containers.set(id, {
      id, name: spec.name, spec: structuredClone(spec), state: "created", exitCode: 0, restartCount: 0, ports: {}, files: new Map(), logs: [],
      logTimes: [], followers: new Set(),
    });
    return id;
  }

  async startContainer(id: string): Promise<void> {
    this.check("startContainer");
    const c = this.must(id);
    if (c.state === "running") return;
    const behaviour = this.onStart.find((b) => b.when(c.spec))?.then;
    if (behaviour && "fail" in behaviour) throw new EngineError(behaviour.fail, 500);
    this.events.push(`start ${c.name}`);
    const ports: Record<number, number> = {};
    for (const [key, bindings] of Object.entries(c.spec.HostConfig.PortBindings ?? {})) {
      const wanted = Number(bindings[0]?.HostPort || 0);
      if (wanted && this.portHolder(wanted)) {
        throw new EngineError(`driver failed programming external connectivity: Bind for 0.0.0.0:${wanted} failed: port is already allocated`, 500);
      }
      ports[Number(key.split("/")[0])] = wanted || this.nextPort++;
    }
    if (behaviour && "exit" in behaviour) {
      c.state = "exited";
      c.exitCode = behaviour.exit;
      for (const line of behaviour.logs ?? []) this.writeLog(c.id, line);
      return;
    }
    c.state = "running";
    c.ports = ports;
    c.startedAt = new Date();
  }

  private portHolder(port: number): FakeContainer | undefined {
    return [...this.containers.values()].find((c) => c.state === "running" && Object.values(c.ports).includes(port));
  }

  /** A test stopping a container by hand gives Docker's own default grace (10 s). */
  async stopContainer(id: string, graceSeconds = 10): Promise<void> {
    this.check("stopContainer");
    const c = this.find(id);
    if (!c) return;
    this.events.push(`stop ${c.name}`);
    this.stops.push({ name: c.name, graceSeconds });
    if (c.state === "running") {
      c.state = "exited";
      c.ports = {};
      for (const f of c.followers) f.stopped();
    }
  }

  async removeContainer(id: string): Promise<void> {
    this.check("removeContainer");
    const c = this.find(id);
    if (!c) return;
    this.events.push(`remove ${c.name}`);
    for (const f of c.followers) f.stopped();
    this.containers.delete(c.id);
  }

  async renameContainer(id: string, name: string): Promise<void> {
    this.check("renameContainer");
    const c = this.must(id);
    const other = this.find(name);
    if (other && other !== c) throw new EngineError(`Conflict. The container name "/${name}" is already in use`, 409);
    c.name = name;
    c.spec.name = name;
  }

  async containerLogs(id: string, tail: number): Promise<string[]> {
    this.check("containerLogs");
    const c = this.must(id);
    return tail > 0 ? c.logs.slice(-tail) : [];
  }

  async containerStats(id: string): Promise<ContainerUsage | undefined> {
    this.check("containerStats");
    const c = this.must(id);
    return c.state === "running" ? { ...(c.usage ?? {}) } : undefined;
  }

  /** A line the container writes to its log (at `timeMs`), seen by whoever follows it. */
  writeLog(idOrName: string, line: string, timeMs = Date.now()): void {
    const c = this.must(idOrName);
    c.logs.push(line);
    c.logTimes.push(timeMs);
    for (const f of c.followers) f.line(line);
  }

  /** As the daemon: lines since `since`, the last `tail`, then (following) new ones until the container stops. */
  async streamContainerLogs(id: string, options: ContainerLogOptions, onLine: (line: string) => void): Promise<void> {
    this.check("streamContainerLogs");
    const c = this.must(id);
    this.logFollows.push({ id: c.id, ...options });
    const sinceMs = options.since?.getTime() ?? -Infinity;
    const recent = c.logs.filter((_, i) => (c.logTimes[i] ?? 0) >= sinceMs);
    for (const line of options.tail === undefined ? recent : recent.slice(recent.length - Math.min(recent.length, options.tail))) onLine(line);
    if (!options.follow || c.state !== "running" || options.signal?.aborted) return;
    await new Promise<void>((resolve) => {
      const follower = {
        line: onLine,
        stopped: () => {
          c.followers.delete(follower);
          options.signal?.removeEventListener("abort", follower.stopped);
          resolve();
        },
      };
      c.followers.add(follower);
      options.signal?.addEventListener("abort", follower.stopped, { once: true });
    });
  }

  async putFile(id: string, path: string, content: string): Promise<void> {
    this.check("putFile");
    this.must(id).files.set(path, content);
  }

  async readFile(id: string, path: string): Promise<string | undefined> {
    this.check("readFile");
    return this.must(id).files.get(path);
  }

  private findNetworkSync(name: string): NamedObject | undefined {
    return this.networks.get(name) ?? [...this.networks.values()].find((n) => n.name === name);
  }

  async findNetwork(name: string): Promise<NamedObject | undefined> {
    this.check("findNetwork");
    return this.findNetworkSync(name);
  }

  async listNetworks(labels: Record<string, string>): Promise<NamedObject[]> {
    this.check("listNetworks");
    return [...this.networks.values()].filter((n) => matches(n.labels, labels));
  }

  async createNetwork(name: string, labels: Record<string, string>): Promise<NamedObject> {
    this.check("createNetwork");
    if (this.findNetworkSync(name)) throw new EngineError(`network with name ${name} already exists`, 409);
    const network = { id: `n${String(this.nextId++).padStart(11, "0")}`, name, labels: { ...labels } };
    this.networks.set(network.id, network);
    return network;
  }

  async removeNetwork(id: string): Promise<void> {
    this.check("removeNetwork");
    const n = this.findNetworkSync(id);
    if (n) this.networks.delete(n.id);
  }

  async findVolume(name: string): Promise<NamedObject | undefined> {
    this.check("findVolume");
    return this.volumes.get(name);
  }

  async listVolumes(labels: Record<string, string>): Promise<NamedObject[]> {
    this.check("listVolumes");
    return [...this.volumes.values()].filter((v) => matches(v.labels, labels));
  }

  async createVolume(name: string, labels: Record<string, string>): Promise<NamedObject> {
    this.check("createVolume");
    // Docker answers an existing volume of the same name instead of refusing.
    const volume = this.volumes.get(name) ?? { id: name, name, labels: { ...labels } };
    this.volumes.set(name, volume);
    return volume;
  }

  async removeVolume(name: string): Promise<void> {
    this.check("removeVolume");
    const users = [...this.containers.values()].filter((c) => (c.spec.HostConfig.Mounts ?? []).some((m) => m.Type === "volume" && m.Source === name));
    if (users.length) throw new EngineError(`remove ${name}: volume is in use - [${users.map((c) => c.id).join(", ")}]`, 409);
    this.volumes.delete(name);
  }

  async imageExists(ref: string): Promise<boolean> {
    this.check("imageExists");
    return this.images.has(ref);
  }

  async pullImage(ref: string): Promise<void> {
    this.check("pullImage");
    if (!this.registry.has(ref)) throw new EngineError(`pull access denied for ${ref}, repository does not exist or may require 'docker login'`, 404);
    this.images.add(ref);
  }

  async buildRuntimeImage(options: { baseImage?: string }, onProgress?: BuildProgress): Promise<string> {
    this.check("buildRuntimeImage");
    this.builds.push({ ...options });
    onProgress?.({ type: "step", index: 1, total: 1, instruction: `FROM ${options.baseImage ?? "node:20-slim"}` });
    const tag = "clipper-runtime:fake";
    this.images.add(tag);
    return tag;
  }

  // ---- for the manager's readiness wait --------------------------------------------------------

  /** A Probe: answers (undefined) when the URL's port is published by a running container. */
  readonly probe = async (url: string): Promise<string | undefined> => {
    const port = Number(new URL(url).port);
    return this.portHolder(port) ? undefined : `connect ECONNREFUSED ${new URL(url).host}`;
  };
}
