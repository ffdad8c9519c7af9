/**
 * DockerEngine over a real daemon, through dockerode: the one file of the Docker manager that
 * uses the SDK. Every dockerode failure leaves as EngineError with the daemon's status, so the
 * manager maps errors in one place and never sees an SDK type. Without a client given, dockerode is
 * loaded at the first call, not when the library is imported.
 */
import type { Readable } from "node:stream";
import type Dockerode from "dockerode";
import type { BuildProgress } from "../../images/types.js";
import { LogStreamLines, logLines } from "./logs.js";
import { fileArchive, firstFileOf } from "./file-archive.js";
import { usageFromStats, type EngineStats } from "./stats.js";
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
} from "./engine.js";

function statusOf(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof status === "number" ? status : undefined;
}

/** Runs a dockerode call, turning its failure into EngineError; `ok` statuses resolve as undefined. */
async function engineCall<T>(fn: () => Promise<T>, ...ok: number[]): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    const status = statusOf(err);
    if (status !== undefined && ok.includes(status)) return undefined;
    // The daemon's own words, without dockerode's "(HTTP code 404) no such container - " prefix.
    const message = (err instanceof Error ? err.message : String(err)).replace(/^\(HTTP code \d+\)\s*[^-]*-\s*/, "").trim();
    throw new EngineError(message, status);
  }
}

async function must<T>(fn: () => Promise<T>): Promise<T> {
  return (await engineCall(fn)) as T;
}

function labelFilters(labels: Record<string, string>): { label: string[] } {
  return { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
}

function publishedPorts(info: Dockerode.ContainerInspectInfo): Record<number, number> {
  const ports: Record<number, number> = {};
  const bindings = (info.NetworkSettings?.Ports ?? {}) as Record<string, { HostPort?: string }[] | null>;
  for (const [key, list] of Object.entries(bindings)) {
    const [port, proto] = key.split("/");
    const host = Number(list?.find((b) => b.HostPort)?.HostPort ?? 0);
    if (proto === "tcp" && host > 0) ports[Number(port)] = host;
  }
  return ports;
}

export class DockerodeEngine implements DockerEngine {
  private client: Promise<Dockerode> | undefined;

  /** `docker`: the client to use; absent, one for DOCKER_HOST or the default socket, made at the first call. */
  constructor(private readonly given?: Dockerode) {}

  private docker(): Promise<Dockerode> {
    this.client ??= this.given ? Promise.resolve(this.given) : import("../../docker/client.js").then(({ dockerClient }) => dockerClient());
    return this.client;
  }

  async remoteHost(): Promise<string | undefined> {
    return ((await this.docker()).modem as { host?: string } | undefined)?.host;
  }

  async listContainers(labels: Record<string, string>): Promise<ContainerSummary[]> {
    const docker = await this.docker();
    const found = await must(() => docker.listContainers({ all: true, filters: labelFilters(labels) }));
    return found.map((c) => ({
      id: c.Id,
      name: (c.Names?.[0] ?? c.Id.slice(0, 12)).replace(/^\//, ""),
      state: c.State as ContainerState,
      labels: c.Labels ?? {},
    }));
  }

  async inspectContainer(id: string): Promise<ContainerDetails | undefined> {
    const docker = await this.docker();
    const info = await engineCall(() => docker.getContainer(id).inspect(), 404);
    if (!info) return undefined;
    return {
      id: info.Id,
      name: info.Name.replace(/^\//, ""),
      state: info.State.Status as ContainerState,
      labels: info.Config.Labels ?? {},
      pid: info.State.Pid,
      exitCode: info.State.ExitCode,
      restartCount: info.RestartCount ?? 0,
      ...(info.State.StartedAt && !info.State.StartedAt.startsWith("0001-") ? { startedAt: new Date(info.State.StartedAt) } : {}),
      ports: publishedPorts(info),
    };
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    const docker = await this.docker();
    return (await must(() => docker.createContainer(spec))).id;
  }

  async startContainer(id: string): Promise<void> {
    const docker = await this.docker();
    await engineCall(() => docker.getContainer(id).start(), 304);
  }

  async stopContainer(id: string, graceSeconds: number): Promise<void> {
    const docker = await this.docker();
    await engineCall(() => docker.getContainer(id).stop({ t: graceSeconds }), 304, 404);
  }

  async removeContainer(id: string): Promise<void> {
    const docker = await this.docker();
    await engineCall(() => docker.getContainer(id).remove({ force: true, v: false }), 404);
  }

  async renameContainer(id: string, name: string): Promise<void> {
    const docker = await this.docker();
    await must(() => docker.getContainer(id).rename({ name }));
  }

  async containerLogs(id: string, tail: number): Promise<string[]> {
    const docker = await this.docker();
    const answer = await must(() =>
      docker.getContainer(id).logs({ stdout: true, stderr: true, tail: Math.max(0, Math.floor(tail)), follow: false }),
    );
    return logLines(Buffer.isBuffer(answer) ? answer : Buffer.from(String(answer)), tail);
  }

  async streamContainerLogs(id: string, options: ContainerLogOptions, onLine: (line: string) => void): Promise<void> {
    const docker = await this.docker();
    const query = {
      stdout: true, stderr: true,
      tail: options.tail === undefined ? "all" : String(Math.max(0, Math.floor(options.tail))),
      // The daemon takes fractional seconds, so a resumed stream does not repeat a whole second.
      ...(options.since ? { since: (options.since.getTime() / 1000).toFixed(3) } : {}),
    };
    const lines = new LogStreamLines(onLine);
    if (!options.follow) {
      const answer = await must(() => docker.getContainer(id).logs({ ...query, follow: false } as unknown as Dockerode.ContainerLogsOptions & { follow: false }));
      lines.push(Buffer.isBuffer(answer) ? answer : Buffer.from(String(answer)));
      lines.end();
      return;
    }
    if (options.signal?.aborted) return;
    const stream = await must(() => docker.getContainer(id).logs({ ...query, follow: true } as unknown as Dockerode.ContainerLogsOptions & { follow: true })) as unknown as Readable;
    await new Promise<void>((resolve) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        options.signal?.removeEventListener("abort", finish);
        stream.destroy();
        lines.end();
        resolve();
      };
      options.signal?.addEventListener("abort", finish, { once: true });
      stream.on("data", (chunk: Buffer) => lines.push(chunk));
      stream.once("end", finish);
      stream.once("close", finish);
      stream.once("error", finish);
    });
  }

  async containerStats(id: string): Promise<ContainerUsage | undefined> {
    const docker = await this.docker();
    const stats = await engineCall(() => docker.getContainer(id).stats({ stream: false }), 404, 409);
    return stats ? usageFromStats(stats as EngineStats) : undefined;
  }

  async putFile(id: string, path: string, content: string): Promise<void> {
    const docker = await this.docker();
    const archive = await fileArchive(path, content);
    await must(() => docker.getContainer(id).putArchive(archive, { path: "/" }));
  }

  async readFile(id: string, path: string): Promise<string | undefined> {
    const docker = await this.docker();
    const stream = await engineCall(() => docker.getContainer(id).getArchive({ path }), 404);
    return stream ? must(() => firstFileOf(stream)) : undefined;
  }

  async findNetwork(name: string): Promise<NamedObject | undefined> {
    const docker = await this.docker();
    const info = await engineCall(() => docker.getNetwork(name).inspect() as Promise<Dockerode.NetworkInspectInfo>, 404);
    return info ? { id: info.Id, name: info.Name, labels: info.Labels ?? {} } : undefined;
  }

  async listNetworks(labels: Record<string, string>): Promise<NamedObject[]> {
    const docker = await this.docker();
    const found = await must(() => docker.listNetworks({ filters: labelFilters(labels) }));
    return found.map((n) => ({ id: n.Id, name: n.Name, labels: n.Labels ?? {} }));
  }

  async createNetwork(name: string, labels: Record<string, string>): Promise<NamedObject> {
    const docker = await this.docker();
    const network = await must(() => docker.createNetwork({ Name: name, Driver: "bridge", CheckDuplicate: true, Labels: labels }));
    return { id: network.id, name, labels };
  }

  async removeNetwork(id: string): Promise<void> {
    const docker = await this.docker();
    const network = docker.getNetwork(id);
    const info = await engineCall(() => network.inspect() as Promise<Dockerode.NetworkInspectInfo>, 404);
    if (!info) return;
    // A container that is not ours but joined the network would block its removal.
    for (const endpoint of Object.keys(info.Containers ?? {})) {
      await engineCall(() => network.disconnect({ Container: endpoint, Force: true }), 404);
    }
    await engineCall(() => network.remove(), 404);
  }

  async findVolume(name: string): Promise<NamedObject | undefined> {
    const docker = await this.docker();
    const info = await engineCall(() => docker.getVolume(name).inspect(), 404);
    return info ? { id: info.Name, name: info.Name, labels: info.Labels ?? {} } : undefined;
  }

  async listVolumes(labels: Record<string, string>): Promise<NamedObject[]> {
    const docker = await this.docker();
    const found = await must(() => docker.listVolumes({ filters: labelFilters(labels) }));
    return (found.Volumes ?? []).map((v) => ({ id: v.Name, name: v.Name, labels: v.Labels ?? {} }));
  }

  async createVolume(name: string, labels: Record<string, string>): Promise<NamedObject> {
    const docker = await this.docker();
    await must(() => docker.createVolume({ Name: name, Labels: labels }));
    return { id: name, name, labels };
  }

  async removeVolume(name: string): Promise<void> {
    const docker = await this.docker();
    await engineCall(() => docker.getVolume(name).remove(), 404);
  }

  async imageExists(ref: string): Promise<boolean> {
    const docker = await this.docker();
    return (await engineCall(() => docker.getImage(ref).inspect(), 404)) !== undefined;
  }

  async pullImage(ref: string): Promise<void> {
    const docker = await this.docker();
    const stream = await must(() => docker.pull(ref) as Promise<NodeJS.ReadableStream>);
    // The pull's answer is a stream of events; a failure is an event, not a status.
    await must(() => new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(
        stream,
        (err: Error | null) => (err ? reject(err) : resolve()),
        (event: { error?: string; errorDetail?: { message?: string } }) => {
          if (event.errorDetail || event.error) reject(new Error(event.errorDetail?.message ?? event.error));
        },
      );
    }));
  }

  async buildRuntimeImage(options: { baseImage?: string }, onProgress?: BuildProgress): Promise<string> {
    const { buildRuntimeImage } = await import("../../images/index.js");
    return buildRuntimeImage(await this.docker(), options.baseImage ? { baseImage: options.baseImage } : {}, onProgress);
  }
}
