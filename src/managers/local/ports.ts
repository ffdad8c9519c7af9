/** Port checks made before anything is started, so a conflict fails fast with a clear message. */
import { readFileSync } from "node:fs";
import { createServer, type AddressInfo, type Server } from "node:net";
import { ManagerError, PortInUseError } from "../errors.js";

type PortCheck = "free" | "in-use" | "denied" | "unavailable";

function tryListen(host: string, port: number): Promise<{ result: PortCheck; port: number; detail?: string }> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE") resolve({ result: "in-use", port });
      else if (err.code === "EACCES" || err.code === "EPERM") resolve({ result: "denied", port });
      else resolve({ result: "unavailable", port, detail: err.message });
    });
    server.listen({ host, port, exclusive: true }, () => {
      const bound = server.address();
      const actual = typeof bound === "object" && bound ? bound.port : port;
      server.close(() => resolve({ result: "free", port: actual }));
    });
  });
}

export interface PortRequest {
  port: number;
  /** The CLI flag that chooses this port, named in the error. */
  flag: string;
}

/** Throws PortInUseError for the first requested port that cannot be bound on `host`. */
export async function assertPortsFree(host: string, requests: PortRequest[]): Promise<void> {
  const seen = new Map<number, string>();
  for (const { port, flag } of requests) {
    const other = seen.get(port);
    if (other) throw new PortInUseError(port, flag, `is also chosen with ${other}`);
    seen.set(port, flag);
  }
  for (const { port, flag } of requests) {
    const { result, detail } = await tryListen(host, port);
    if (result === "in-use") throw new PortInUseError(port, flag);
    if (result === "denied") throw new PortInUseError(port, flag, "cannot be used without more privileges");
    if (result === "unavailable") {
      throw new ManagerError(`cannot listen on ${host}:${port}: ${detail} (check the --host option)`, "INVALID_ARGUMENT");
    }
  }
}

/**
 * `count` distinct ports that are free on `host` right now. They are drawn from below the
 * kernel's ephemeral range when it leaves room, because a port handed out by listen(0) can be
 * taken as the source port of some outgoing connection before the child process binds it.
 */
export async function findFreePorts(host: string, count: number): Promise<number[]> {
  const held: Server[] = [];
  try {
    const range = ephemeralRange();
    const low = 15_000;
    const high = (range?.[0] ?? 32_768) - 1;
    for (let attempt = 0; held.length < count && attempt < 200 && high - low >= 1000; attempt++) {
      const port = low + Math.floor(Math.random() * (high - low + 1));
      const server = await holdPort(host, port);
      if (server) held.push(server);
    }
    while (held.length < count) {
      const server = await holdPort(host, 0);
      if (!server) throw new ManagerError(`cannot find a free port on ${host}`, "INVALID_ARGUMENT");
      held.push(server);
    }
    return held.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/**
 * The first of `count` consecutive ports that are all free on `host` right now and none of them in
 * `avoid`: the RPC ports of the frontend workers (worker i on first + i).
 */
export async function findFreePortRun(host: string, count: number, avoid: readonly number[] = []): Promise<number> {
  const range = ephemeralRange();
  const low = 15_000;
  const high = (range?.[0] ?? 32_768) - count;
  for (let attempt = 0; attempt < 200; attempt++) {
    const first = high - low >= 1000 ? low + Math.floor(Math.random() * (high - low + 1)) : 20_000 + attempt * count;
    const run = Array.from({ length: count }, (_, i) => first + i);
    if (run.some((p) => avoid.includes(p) || p > 65535)) continue;
    const held: Server[] = [];
    try {
      for (const port of run) {
        const server = await holdPort(host, port);
        if (!server) break;
        held.push(server);
      }
      if (held.length === count) return first;
    } finally {
      await Promise.all(held.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    }
  }
  throw new ManagerError(`cannot find ${count} consecutive free ports on ${host} for the frontend workers; choose them with --rpc-port`, "INVALID_ARGUMENT");
}

export { frontendRpcPorts } from "../cluster-spec.js";

function holdPort(host: string, port: number): Promise<Server | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE" || err.code === "EACCES") resolve(undefined);
      else reject(new ManagerError(`cannot listen on ${host}: ${err.message} (check the --host option)`, "INVALID_ARGUMENT"));
    });
    server.listen({ host, port, exclusive: true }, () => resolve(server));
  });
}

function ephemeralRange(): [number, number] | undefined {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    return low && high ? [low, high] : undefined;
  } catch {
    return undefined;
  }
}
