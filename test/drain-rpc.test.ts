/**
 * Stopping a replica by draining (our RPC extension, docs/compatibility.md), at the frontend's RPC
 * port: the dispatcher takes a draining replica out of rotation while its batch in flight stays its
 * own; the real RpcServer acknowledges DRAIN from registered replicas only, on real ZeroMQ, and a
 * bad DRAIN frame does not stop its receive loop; the Node runtime's client drains against it, and
 * stops within its bound against a frontend that never answers (Clipper's).
 */
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Router } from "zeromq";
import { ContainerRpcClient } from "../runtime/container-node/rpc-client.js";
import { Dispatcher, type DispatchObserver, type ModelResult, type PredictTask } from "../runtime/frontend/dispatcher.js";
import { decodeContainerMessage, encodeFrontendMessage, MessageType, u32 } from "../runtime/rpc/codec.js";
import { RpcServer } from "../runtime/rpc/rpc-server.js";
import { versionSecret, type RpcPrincipal } from "../runtime/shared/rpc-auth.js";
import { waitFor } from "./support/cluster-in-process.js";
import { harness } from "./support/fake-dispatch.js";
import { closePeers, Peer } from "./support/rpc-peer.js";
import { TEST_RPC_KEY } from "./support/test-frontend.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  closePeers();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("the dispatcher with a draining replica (fake clock)", () => {
  it("sends it no new batch, stops counting it, and takes its last answer without re-queueing", () => {
    const h = harness();
    const requeued: number[] = [];
    const drained: string[] = [];
    h.dispatcher.setObserver({ requeued: (_m, n) => requeued.push(n), drained: (m) => drained.push(m) });
    h.dispatcher.configure("m", "1", { batchSize: 1, batchWaitMicros: 0, budgetMs: 50 });
    const a = h.replica(0);
    const b = h.replica(1);
    h.dispatcher.replicaAdded(a);
    h.dispatcher.replicaAdded(b);
    const first = h.task(10_000, 1);
    h.dispatcher.submit("m", "1", first);
    expect(h.sent.map((s) => s.replica)).toEqual([a]);

    h.dispatcher.replicaDraining(a);
    expect(drained).toEqual(["m:1"]);
    expect(h.dispatcher.liveReplicaCount("m", "1")).toBe(1);
    expect(h.dispatcher.replicaCounts().get("m:1")).toBe(1);
    expect(h.dispatcher.liveVersions()[0]!.replicas.map((r) => r.replicaId)).toEqual([1]);
    expect(h.dispatcher.batchCaps().map((c) => c.replica)).toEqual(["1"]);

    const later = [h.task(10_000, 2), h.task(10_000, 3)];
    for (const t of later) h.dispatcher.submit("m", "1", t);
    // Only b gets batches now; its second waits for it, not for a.
    expect(h.sent.map((s) => s.replica)).toEqual([a, b]);
    h.answer(h.sent[1]!);
    expect(h.sent.map((s) => s.replica)).toEqual([a, b, b]);

    // a's answer to the batch it held still counts, and its leaving re-queues nothing.
    h.answer(h.sent[0]!);
    expect(first.result).toEqual({ ok: true, output: "1", replica: a.key });
    h.dispatcher.replicaRemoved(a);
    expect(requeued).toEqual([]);
    expect(h.sent).toHaveLength(3);
    // A second drain of the same replica (or of one already gone) changes nothing.
    h.dispatcher.replicaDraining(a);
    expect(drained).toEqual(["m:1"]);
  });

  it("hands a batch the draining replica held to fill to the next free replica", () => {
    const h = harness();
    h.dispatcher.configure("m", "1", { batchSize: 4, batchWaitMicros: 50_000, budgetMs: 50 });
    const a = h.replica(0);
    h.dispatcher.replicaAdded(a);
    h.dispatcher.submit("m", "1", h.task(10_000, 1));
    expect(h.sent).toHaveLength(0); // a holds the small batch to fill it
    const b = h.replica(1);
    h.dispatcher.replicaAdded(b);
    h.dispatcher.replicaDraining(a);
    h.clock.advance(60);
    expect(h.sent.map((s) => s.replica)).toEqual([b]);
  });

  it("with its only replica draining, a version has no connected replica and queues for the next one", () => {
    const h = harness();
    const a = h.replica(0);
    h.dispatcher.replicaAdded(a);
    h.dispatcher.replicaDraining(a);
    expect(h.dispatcher.liveReplicaCount("m", "1")).toBe(0);
    const waiting = h.task(10_000, 5);
    h.dispatcher.submit("m", "1", waiting);
    expect(h.sent).toHaveLength(0);
    const next = h.replica(1);
    h.dispatcher.replicaAdded(next);
    expect(h.sent.map((s) => s.replica)).toEqual([next]);
  });
});

const doubles = (name: string): RpcPrincipal => ({ name, version: "1", inputType: "doubles" });

interface LogLine {
  msg: string;
  [k: string]: unknown;
}

/** A real RpcServer wired to a real Dispatcher as the frontend wires them, with what they report. */
async function frontendRpc() {
  const lines: LogLine[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  const seen = { requeued: 0, drained: 0 };
  const observer: DispatchObserver = { requeued: (_m, n) => (seen.requeued += n), drained: () => (seen.drained += 1) };
  const dispatcher = new Dispatcher({ defaultMaxBatch: 8, log, observer });
  const rpc = new RpcServer({
    host: "127.0.0.1", port: 0, replicaTimeoutMs: 30_000, log, auth: { mode: "plain", key: TEST_RPC_KEY },
    handlers: {
      replicaAdded: (r) => dispatcher.replicaAdded(r),
      replicaRemoved: (r) => dispatcher.replicaRemoved(r),
      replicaDraining: (r) => dispatcher.replicaDraining(r),
      response: (r, msgId, outputs) => dispatcher.response(r, msgId, outputs),
      replicaBanned: () => undefined,
    },
  });
  dispatcher.attach(rpc);
  await rpc.start();
  cleanups.push(() => rpc.close());
  for (const name of ["m", "n"]) dispatcher.configure(name, "1", { batchSize: 1, batchWaitMicros: 0, budgetMs: 50 });
  const address = `tcp://127.0.0.1:${rpc.boundPort}`;
  const submit = (name: string, value: number): Promise<ModelResult> =>
    new Promise((resolve) => {
      const input = Buffer.alloc(8);
      input.writeDoubleLE(value);
      const task: PredictTask = {
        input, inputType: "doubles", deadline: performance.now() + 20_000, enqueuedAt: performance.now(), settled: false,
        resolve(result) {
          if (task.settled) return;
          task.settled = true;
          resolve(result);
        },
      };
      expect(dispatcher.submit(name, "1", task)).toBe(true);
    });
  /** A registered raw peer for model `name`. */
  const replica = async (name: string): Promise<Peer> => {
    const before = rpc.liveReplicas().length;
    const peer = Peer.credentialed(address, TEST_RPC_KEY, doubles(name));
    expect(await peer.hello(doubles(name))).toBe(true);
    await waitFor(() => rpc.liveReplicas().length === before + 1, 5000, `replica of ${name} to register`);
    return peer;
  };
  return { rpc, dispatcher, address, lines, seen, submit, replica };
}

describe("DRAIN at the frontend's RPC server (real ZeroMQ)", () => {
  it("acknowledges a registered replica's drain after its last batch, and accepts that batch's answer", async () => {
    const f = await frontendRpc();
    const a = await f.replica("m");
    const first = f.submit("m", 1);
    const batch = await a.next("predict", 5000);
    expect(batch).toBeDefined();

    await a.send({ kind: "drain" });
    expect(await a.next("drainAck", 5000)).toEqual({ kind: "drainAck" });
    expect(f.rpc.liveReplicas()).toEqual([]);
    expect(f.dispatcher.liveReplicaCount("m", "1")).toBe(0);
    expect(f.seen.drained).toBe(1);

    // A new replica gets the queries sent from now on; the draining one gets none.
    const b = await f.replica("m");
    const second = f.submit("m", 2);
    const toB = await b.next("predict", 5000);
    await b.send({ kind: "response", msgId: toB!.msgId, outputs: ["from b"] });
    expect(await second).toMatchObject({ ok: true, output: "from b" });
    expect(await a.next("predict", 300)).toBeUndefined();

    // The draining replica's answer to the batch it held is taken.
    await a.send({ kind: "response", msgId: batch!.msgId, outputs: ["from a"] });
    expect(await first).toMatchObject({ ok: true, output: "from a" });
    // Asked again (the runtime's proof that its answers arrived), it acknowledges again.
    await a.send({ kind: "drain" });
    expect(await a.next("drainAck", 5000)).toEqual({ kind: "drainAck" });
    expect(f.seen.drained).toBe(1);
    a.close();
    await waitFor(() => f.lines.some((l) => l.msg === "replica removed"), 5000, "the drained replica to be removed");
    expect(f.seen.requeued).toBe(0);
  });

  it("ignores a drain from a peer that is not a registered replica, logging it once", async () => {
    const f = await frontendRpc();
    // Authenticated, but it never sent its metadata.
    const stranger = Peer.credentialed(f.address, TEST_RPC_KEY, doubles("m"));
    await stranger.send({ kind: "heartbeat" });
    expect(await stranger.next("heartbeat", 3000)).toMatchObject({ requestMetadata: true });
    const serving = await f.replica("m");
    await stranger.send({ kind: "drain" });
    await stranger.send({ kind: "drain" });
    expect(await stranger.next("drainAck", 500)).toBeUndefined();
    expect(f.lines.filter((l) => l.msg === "drain from an unregistered container ignored")).toHaveLength(1);
    // The registered replica of the same model is still in rotation.
    expect(f.dispatcher.liveReplicaCount("m", "1")).toBe(1);
    const answer = f.submit("m", 3);
    const batch = await serving.next("predict", 5000);
    await serving.send({ kind: "response", msgId: batch!.msgId, outputs: ["3"] });
    expect(await answer).toMatchObject({ ok: true, output: "3" });
  });

  it("bans a replica whose DRAIN frame is malformed and keeps serving the others", async () => {
    const f = await frontendRpc();
    const liar = await f.replica("m");
    const honest = await f.replica("n");
    // DRAIN with a frame too many, then a type frame of the wrong size.
    await liar.dealer.send([Buffer.alloc(0), u32(MessageType.Drain), Buffer.from("extra")]);
    await waitFor(() => f.lines.some((l) => l.msg === "replica removed" && /drain: expected 2 frames/.test(String(l.reason))), 5000, "the ban");
    expect(await liar.next("drainAck", 300)).toBeUndefined();
    // Authenticated but not registered: refused, and the loop goes on.
    const stranger = Peer.credentialed(f.address, TEST_RPC_KEY, doubles("m"));
    await stranger.send({ kind: "heartbeat" });
    expect(await stranger.next("heartbeat", 3000)).toBeDefined();
    await stranger.dealer.send([Buffer.alloc(0), u32(MessageType.Drain), Buffer.alloc(0), Buffer.alloc(0)]);
    await waitFor(() => f.lines.some((l) => l.msg === "refused a model container on the rpc port" && /malformed rpc message: drain/.test(String(l.reason))), 5000, "the refusal");

    const answer = f.submit("n", 4);
    const batch = await honest.next("predict", 5000);
    await honest.send({ kind: "response", msgId: batch!.msgId, outputs: ["4"] });
    expect(await answer).toMatchObject({ ok: true, output: "4" });
    await honest.send({ kind: "drain" });
    expect(await honest.next("drainAck", 5000)).toEqual({ kind: "drainAck" });
  });
});

describe("the Node runtime's client draining", () => {
  const client = (address: string, name: string, handleBatch: ConstructorParameters<typeof ContainerRpcClient>[0]["handleBatch"]) => {
    let registered = false;
    const c = new ContainerRpcClient({
      address, metadata: doubles(name), rpcSecret: versionSecret(TEST_RPC_KEY, doubles(name)), handleBatch,
      heartbeatIntervalMs: 200, onRegistered: () => { registered = true; },
    });
    c.start();
    cleanups.push(() => c.stop());
    return { client: c, registered: () => registered };
  };

  it("answers the batch it holds, then stops with every answer delivered and nothing re-queued", async () => {
    const f = await frontendRpc();
    let started = 0;
    const slow = client(f.address, "m", async (batch) => {
      started += 1;
      await new Promise((r) => setTimeout(r, 400));
      return batch.inputs.map((b) => `slow ${b.readDoubleLE(0)}`);
    });
    await waitFor(() => f.rpc.liveReplicas().length === 1, 5000, "the client to register");
    const held = f.submit("m", 7);
    await waitFor(() => started === 1, 5000, "the batch to start");
    const outcome = await slow.client.drainAndStop(5000);
    expect(outcome).toBe("drained");
    expect(await held).toMatchObject({ ok: true, output: "slow 7" });
    expect(f.seen).toEqual({ requeued: 0, drained: 1 });
    expect(f.dispatcher.liveReplicaCount("m", "1")).toBe(0);
  });

  it("stops at once, sending no drain, when it never registered (no batch can be on its way)", async () => {
    const router = new Router({ linger: 0 });
    await router.bind("tcp://127.0.0.1:0");
    cleanups.push(() => router.close());
    const c = new ContainerRpcClient({ address: router.lastEndpoint!, metadata: doubles("m"), handleBatch: () => [], heartbeatIntervalMs: 5000 });
    c.start();
    cleanups.push(() => c.stop());
    router.receiveTimeout = 5000;
    const [, ...hello] = await router.receive();
    expect(decodeContainerMessage(hello).kind).toBe("heartbeat");
    const began = Date.now();
    expect(await c.drainAndStop(5000)).toBe("stopped");
    expect(Date.now() - began).toBeLessThan(1000);
    router.receiveTimeout = 300;
    await expect(router.receive()).rejects.toThrow();
  });

  it("stops within its bound against a frontend that never acknowledges, answering what it held", async () => {
    // A ROUTER that registers the container and sends one batch, as Clipper's frontend would, and
    // ignores DRAIN.
    const router = new Router({ linger: 0 });
    await router.bind("tcp://127.0.0.1:0");
    cleanups.push(() => router.close());
    const c = new ContainerRpcClient({
      address: router.lastEndpoint!, metadata: doubles("m"),
      handleBatch: (batch) => batch.inputs.map(() => "x"), heartbeatIntervalMs: 5000,
    });
    c.start();
    cleanups.push(() => c.stop());
    const received: string[] = [];
    const serve = (async () => {
      for await (const [identity, ...frames] of router) {
        const m = decodeContainerMessage(frames);
        received.push(m.kind);
        if (m.kind === "heartbeat") await router.send([identity!, ...encodeFrontendMessage({ kind: "heartbeat", requestMetadata: true })]);
        if (m.kind === "metadata") await router.send([identity!, ...encodeFrontendMessage({ kind: "predict", msgId: 1, inputType: "doubles", inputs: [Buffer.alloc(8)] })]);
      }
    })().catch(() => undefined);
    await waitFor(() => received.includes("response"), 5000, "the answer to the batch");
    const began = Date.now();
    expect(await c.drainAndStop(300)).toBe("unacknowledged");
    expect(Date.now() - began).toBeLessThan(3000);
    expect(received.filter((k) => k === "drain")).toHaveLength(1);
    router.close();
    await serve;
  });
});
