/**
 * Setup file of the unit tier (vitest.config.ts, project "unit"): a unit test that starts a process,
 * listens, connects anywhere (the Docker daemon included) or opens a ZeroMQ socket fails at once,
 * naming what it tried, so that `npm run test:unit` stays fast and needs nothing but Node.
 */
import childProcess from "node:child_process";
import dgram from "node:dgram";
import { syncBuiltinESMExports } from "node:module";
import net from "node:net";
import * as zmq from "zeromq";

const refuse = (what: string) =>
  function refused(): never {
    throw new Error(`a unit test may not ${what}: move it out of test/unit/ (it belongs with the process and server tests)`);
  };

/** Replaces `target[name]` (native methods are read-only, so assignment would not do). */
function refuseOn(target: object, name: string, what: string): void {
  Object.defineProperty(target, name, { value: refuse(what), writable: true, configurable: true });
}

for (const name of ["spawn", "spawnSync", "exec", "execSync", "execFile", "execFileSync", "fork"]) {
  refuseOn(childProcess, name, `start a process (child_process.${name})`);
}
// `import { spawn } from "node:child_process"` reads the ESM facade, which copies the CommonJS
// exports only when told to.
syncBuiltinESMExports();

refuseOn(net.Server.prototype, "listen", "listen on a socket (net.Server.listen, node:http included)");
refuseOn(net.Socket.prototype, "connect", "connect to a socket (net.Socket.connect: HTTP clients, fetch, the Docker daemon)");
refuseOn(dgram.Socket.prototype, "bind", "bind a UDP socket");
// zeromq's Socket.prototype is sealed: shadow its methods on every socket type's prototype instead.
for (const SocketType of Object.values(zmq)) {
  if (typeof SocketType !== "function" || !(SocketType.prototype instanceof zmq.Socket)) continue;
  for (const name of ["bind", "bindSync", "connect"]) {
    refuseOn(SocketType.prototype, name, `open a ZeroMQ socket (zeromq ${SocketType.name}.${name})`);
  }
}
