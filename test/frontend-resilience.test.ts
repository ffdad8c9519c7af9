/**
 * One bad event must not cut a query frontend off for good: a handler that throws on one RPC
 * message leaves the receive loop running for every other replica, and the configuration watch
 * applies a snapshot it could not apply when it reconnects, and the first snapshot of every
 * connection even when its revision is one it saw (a daemon restored from an older generation).
 */
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { ContainerRpcClient } from "../runtime/container-node/rpc-client.js";
import { ConfigWatcher } from "../runtime/frontend/config-watch.js";
import { RpcServer, type ReplicaConnection } from "../runtime/rpc/rpc-server.js";
import { emptyState, WATCH_PATH, type ClusterState } from "../runtime/shared/state.js";
import { waitFor } from "./support/cluster-in-process.js";
import { TEST_RPC_KEY } from "./support/test-frontend.js";
import { versionSecret } from "../runtime/shared/rpc-auth.js";

const log = pino({ level: "silent" });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("the RPC receive loop", () => {
  it("keeps serving other replicas after a handler throws on one message", async () => {
    const answers: string[][] = [];
    const added: ReplicaConnection[] = [];
    const rpc = new RpcServer({
      host: "127.0.0.1", port: 0, replicaTimeoutMs: 30_000, log, auth: { mode: "plain", key: TEST_RPC_KEY },
      handlers: {
        replicaAdded: (replica) => {
          if (replica.name === "boom") throw new TypeError("a handler bug");
          added.push(replica);
        },
        replicaRemoved: () => undefined,
        response: (_replica, _msgId, outputs) => answers.push(outputs),
      },
    });
    await rpc.start();
    cleanups.push(() => rpc.close());
    const start = (name: string) => {
      let registered = false;
      const client = new ContainerRpcClient({
        address: `tcp://127.0.0.1:${rpc.boundPort}`,
        metadata: { name, version: "1", inputType: "strings" },
        rpcSecret: versionSecret(TEST_RPC_KEY, { name, version: "1", inputType: "strings" }),
        handleBatch: (batch) => batch.inputs.map((b) => `${name}:${b.toString()}`),
        heartbeatIntervalMs: 100,
        onRegistered: () => { registered = true; },
      });
      client.start();
      cleanups.push(() => client.stop());
      return () => registered;
    };
    const boomRegistered = start("boom");
    await waitFor(boomRegistered, 10_000, "the replica whose registration throws");
    const fineRegistered = start("fine");
    await waitFor(() => fineRegistered() && added.length === 1, 10_000, "the next replica to register");
    await rpc.sendPredict(added[0]!, 7, "strings", [Buffer.from("x")]);
    await waitFor(() => answers.length === 1, 10_000, "the answer of the next replica");
    expect(answers).toEqual([["fine:x"]]);
  });
});

describe("the configuration watch", () => {
  /** A watch endpoint that sends, on each connection, the next script of snapshots, then hangs up. */
  async function watchServer(connections: ClusterState[][]): Promise<{ server: Server; url: string }> {
    let next = 0;
    const server = createServer((req, res: ServerResponse) => {
      if (req.url !== WATCH_PATH) return void res.writeHead(404).end();
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      const script = connections[next++] ?? [];
      for (const state of script) res.write(JSON.stringify({ revision: state.revision, state }) + "\n");
      if (next < connections.length) setTimeout(() => res.end(), 50);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }));
    return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }

  const stateWithApp = (revision: number, app: string): ClusterState => {
    const state = emptyState();
    state.revision = revision;
    state.applications[app] = { name: app, input_type: "doubles", default_output: "-1", latency_slo_micros: 1000, linked_models: [] };
    return state;
  };

  it("applies again a snapshot whose application failed, and the first snapshot of each connection", async () => {
    const { url } = await watchServer([
      [stateWithApp(4, "a"), stateWithApp(5, "b")],
      // Same revision 5 after a reconnect, different content: a daemon restored an older generation.
      [stateWithApp(5, "c")],
      [stateWithApp(5, "c"), stateWithApp(6, "d")],
    ]);
    const seen: string[] = [];
    let failOnce = true;
    const watcher = new ConfigWatcher({
      managementUrl: url, log,
      onDelta: () => undefined,
      onSnapshot: (state) => {
        const names = Object.keys(state.applications).join(",");
        if (names === "b" && failOnce) {
          failOnce = false;
          throw new Error("could not apply");
        }
        seen.push(`${state.revision}:${names}`);
      },
    });
    watcher.start();
    cleanups.push(() => watcher.close());
    await waitFor(() => seen.includes("6:d"), 10_000, "the last snapshot");
    // 5:b failed and its connection dropped; the next connection's 5:c is applied, not skipped as seen.
    expect(seen).toEqual(["4:a", "5:c", "5:c", "6:d"]);
  });
});
