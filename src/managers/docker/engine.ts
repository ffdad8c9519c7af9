/**
 * The Docker Engine as the Docker manager sees it, in our own types: the few calls it makes, and
 * nothing of an SDK. `dockerode-engine.ts` implements it over a daemon; test/support/fake-docker.ts
 * implements it in memory, so the manager's rules are tested without a daemon.
 *
 * Conventions every implementation keeps: a failed call throws EngineError with the daemon's HTTP
 * status (404 missing, 409 name clash or conflict); "find" and "inspect" calls return undefined for
 * what does not exist; stopping something stopped and removing something gone are not errors.
 */
import type { BuildProgress } from "../../images/types.js";

/** A failed Engine call, with the daemon's HTTP status (absent when the daemon was not reached). */
export class EngineError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = "EngineError";
  }
}

/** Docker's device request for the NVIDIA runtime, in the Engine API's shape. */
export interface DeviceRequest {
  Driver: string;
  Count?: number;
  DeviceIDs?: string[];
  Capabilities: string[][];
}

export interface PortBinding {
  HostIp?: string;
  /** "" lets Docker choose. */
  HostPort?: string;
}

/** What a container is created from (the Engine API's field names, the subset the manager uses). */
export interface ContainerSpec {
  name: string;
  Image: string;
  Cmd?: string[];
  Env?: string[];
  Labels: Record<string, string>;
  ExposedPorts?: Record<string, object>;
  /** Seconds `docker stop` (and the daemon's own shutdown) waits after SIGTERM before SIGKILL. */
  StopTimeout?: number;
  HostConfig: {
    NetworkMode?: string;
    PortBindings?: Record<string, PortBinding[]>;
    RestartPolicy?: { Name: string };
    Mounts?: ({ Type: "volume"; Source: string; Target: string } | { Type: "bind"; Source: string; Target: string; ReadOnly?: boolean })[];
    DeviceRequests?: DeviceRequest[];
  };
}

/** Docker's container states (`created`: never started). */
export type ContainerState = "created" | "running" | "restarting" | "paused" | "exited" | "dead" | "removing";

export interface ContainerSummary {
  id: string;
  /** Without Docker's leading slash. */
  name: string;
  state: ContainerState;
  labels: Record<string, string>;
}

export interface ContainerDetails extends ContainerSummary {
  /** 0 when not running. */
  pid: number;
  exitCode: number;
  restartCount: number;
  /** When it last started (absent when it never did). */
  startedAt?: Date;
  /** Published host port by the container's TCP port, for ports published now. */
  ports: Record<number, number>;
}

/** A network or a volume (a volume's id is its name). */
export interface NamedObject {
  id: string;
  name: string;
  labels: Record<string, string>;
}

/** What a running container uses, as the engine's stats say. */
export interface ContainerUsage {
  /** Percent of one CPU core since the engine's previous sample. */
  cpuPercent?: number;
  /** Memory without the page cache (what `docker stats` shows). */
  memoryBytes?: number;
}

export interface ContainerLogOptions {
  tail?: number;
  since?: Date;
  follow: boolean;
  signal?: AbortSignal;
}

export interface DockerEngine {
  /** The host of a daemon reached over TCP (DOCKER_HOST=tcp://…); undefined for a local socket. */
  remoteHost(): Promise<string | undefined>;

  /** Containers in every state carrying all of `labels`. */
  listContainers(labels: Record<string, string>): Promise<ContainerSummary[]>;
  inspectContainer(id: string): Promise<ContainerDetails | undefined>;
  /** The new container's id; EngineError 409 when the name is taken. */
  createContainer(spec: ContainerSpec): Promise<string>;
  startContainer(id: string): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceSeconds`. */
  stopContainer(id: string, graceSeconds: number): Promise<void>;
  /** Removes it whatever its state (its anonymous volumes stay). */
  removeContainer(id: string): Promise<void>;
  renameContainer(id: string, name: string): Promise<void>;
  /** The last `tail` lines of its stdout and stderr. */
  containerLogs(id: string, tail: number): Promise<string[]>;
  /**
   * Hands its stdout and stderr lines to `onLine`: those written since `since` (the last `tail` of
   * them; all when `tail` is absent), then with `follow` new ones. Resolves when they are out, the
   * container stops (its log ends), or `signal` aborts.
   */
  streamContainerLogs(id: string, options: ContainerLogOptions, onLine: (line: string) => void): Promise<void>;
  /** CPU and memory now (one sample, not a stream); undefined when it is not running. */
  containerStats(id: string): Promise<ContainerUsage | undefined>;
  /** Writes a file (mode 0444, parent directories created) into a container, started or not. */
  putFile(id: string, path: string, content: string): Promise<void>;
  /** A file's text, or undefined when the container has no such file. */
  readFile(id: string, path: string): Promise<string | undefined>;

  findNetwork(name: string): Promise<NamedObject | undefined>;
  listNetworks(labels: Record<string, string>): Promise<NamedObject[]>;
  createNetwork(name: string, labels: Record<string, string>): Promise<NamedObject>;
  /** Removes a network, disconnecting whatever still joins it first. */
  removeNetwork(id: string): Promise<void>;

  findVolume(name: string): Promise<NamedObject | undefined>;
  listVolumes(labels: Record<string, string>): Promise<NamedObject[]>;
  createVolume(name: string, labels: Record<string, string>): Promise<NamedObject>;
  removeVolume(name: string): Promise<void>;

  imageExists(ref: string): Promise<boolean>;
  /** Pulls from the image's registry; EngineError when it cannot. */
  pullImage(ref: string): Promise<void>;
  /** Builds (or finds, by content) the runtime image the frontends run from; resolves to its tag. */
  buildRuntimeImage(options: { baseImage?: string }, onProgress?: BuildProgress): Promise<string>;
}
