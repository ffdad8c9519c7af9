/**
 * Pipelining: the dispatcher keeps up to `maxInFlight` batches in flight per replica (in-flight.ts),
 * on a fake clock. Idle replicas come first; batch latencies are service times (a batch queued behind
 * another is timed from that one's answer); a lost replica gives back every batch it had; a draining
 * one answers them all; admission and late-dropping count the batches ahead in the replica. Then the
 * setting's way from `clipper start` to the frontend's command line, validated at each step.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { DEFAULT_CLUSTER_OPTIONS } from "../src/connection.js";
import { frontendTuningFlags } from "../src/managers/cluster-spec.js";
import { ClusterOptionsSchema } from "../src/managers/local/schemas.js";
import { estimateCompletion } from "../runtime/frontend/admission.js";
import { Dispatcher } from "../runtime/frontend/dispatcher.js";
import { InFlightBatches } from "../runtime/frontend/in-flight.js";
import { pino } from "pino";
import { harness } from "./support/fake-dispatch.js";

const values = (b: { inputs: Buffer[] }) => b.inputs.map((x) => x.readDoubleLE(0));

describe("in-flight batches of one replica", () => {
  it("times each batch from when the replica could start on it, and matches answers by message id", () => {
    const f = new InFlightBatches<string>(3);
    f.add({ msgId: 1, tasks: ["a"], sentAt: 0, cap: 1 });
    f.add({ msgId: 2, tasks: ["b"], sentAt: 2, cap: 1 });
    f.add({ msgId: 3, tasks: ["c"], sentAt: 30, cap: 1 });
    expect(f.full).toBe(true);
    expect(f.busySince).toBe(0);
    expect(f.startsAt(5, 10)).toBe(30); // three batches of 10 ms from 0
    expect(f.answer(1, 10)?.serviceMs).toBe(10);
    expect(f.busySince).toBe(10); // b waited behind a until 10
    expect(f.answer(2, 22)?.serviceMs).toBe(12); // from a's answer, not from its send at 2
    expect(f.answer(2, 23)).toBeUndefined(); // answered once
    expect(f.answer(3, 35)?.serviceMs).toBe(5); // sent after b's answer: from its send
    expect(f.size).toBe(0);
    expect(f.startsAt(40, 10)).toBe(40);
  });

  it("accepts an answer out of order, and gives everything back oldest first", () => {
    const f = new InFlightBatches<string>(2);
    f.add({ msgId: 7, tasks: ["a"], sentAt: 0, cap: 1 });
    f.add({ msgId: 8, tasks: ["b"], sentAt: 1, cap: 1 });
    expect(f.answer(8, 4)?.tasks).toEqual(["b"]);
    f.add({ msgId: 9, tasks: ["c"], sentAt: 5, cap: 1 });
    expect(f.takeAll().map((b) => b.msgId)).toEqual([7, 9]);
    expect(f.size).toBe(0);
  });

  it("refuses a limit that is not an integer of at least 1", () => {
    for (const bad of [0, -1, 1.5, NaN]) {
      expect(() => new InFlightBatches(bad)).toThrow(RangeError);
      expect(() => new Dispatcher({ defaultMaxBatch: 8, log: pino({ level: "silent" }), maxInFlight: bad })).toThrow(RangeError);
    }
  });
});

describe("dispatcher with batches in flight (fake clock)", () => {
  it("sends a busy replica its next batch at once, but only after every idle replica has one", () => {
    const h = harness({ maxInFlight: 2, admission: false });
    h.dispatcher.configure("m", "1", { batchSize: 1, batchWaitMicros: 0, budgetMs: 50 });
    const a = h.replica(0);
    const b = h.replica(1);
    h.dispatcher.replicaAdded(a);
    h.dispatcher.replicaAdded(b);
    for (let i = 0; i < 4; i++) h.dispatcher.submit("m", "1", h.task(1e9, i));
    // b, idle, gets the second query rather than a's pipeline; then each gets a second batch.
    expect(h.sent.map((s) => [s.replica.replicaId, values(s)])).toEqual([[0, [0]], [1, [1]], [0, [2]], [1, [3]]]);
    for (let i = 4; i < 7; i++) h.dispatcher.submit("m", "1", h.task(1e9, i));
    expect(h.sent).toHaveLength(4); // two in flight each: the rest waits in the queue
    expect(h.dispatcher.queueDepth("m", "1")).toBe(3);
    h.answer(h.sent[0]!);
    expect(h.sent.map((s) => s.replica.replicaId)).toEqual([0, 1, 0, 1, 0]); // a has room again
    expect(values(h.sent[4]!)).toEqual([4]);
  });

  it("with maxInFlight 1, waits for the answer as before", () => {
    const h = harness({ maxInFlight: 1, admission: false });
    const a = h.replica(0);
    h.dispatcher.replicaAdded(a);
    h.dispatcher.submit("m", "1", h.task(1e9, 0));
    h.dispatcher.submit("m", "1", h.task(1e9, 1));
    expect(h.sent).toHaveLength(1);
    h.answer(h.sent[0]!);
    expect(h.sent).toHaveLength(2);
  });

  it("feeds AIMD and the latency estimate the service time, not the wait behind the batch ahead", () => {
    // Every batch takes 10 ms of model time; a batch queued behind another returns 20 ms after its
    // send. Budget 15 ms: send-to-answer times would shrink the cap to 1, service times grow it.
    const h = harness({ maxInFlight: 2, admission: false });
    h.dispatcher.configure("m", "1", { batchSize: -1, batchWaitMicros: 0, budgetMs: 15 });
    const a = h.replica(0);
    h.dispatcher.replicaAdded(a);
    let value = 0;
    const roundTrips: number[] = [];
    h.dispatcher.setObserver({ batchDone: (_m, s) => roundTrips.push(s * 1000) });
    for (let round = 0; round < 40; round++) {
      while (h.dispatcher.queueDepth("m", "1") < 100) h.dispatcher.submit("m", "1", h.task(1e12, value++));
      const next = h.sent.at(-2)!; // the older of the two in flight
      h.clock.advance(10);
      h.answer(next);
    }
    expect(h.dispatcher.batchLatencyMs("m", "1")).toBeCloseTo(10, 6);
    // Every answer found its batch full (at the cap it was sent with) and in budget: +1 each time.
    expect(h.dispatcher.batchCaps()[0]!.cap).toBe(41);
    // The metric of batch round trips still says what the queries saw: 20 ms, each behind another.
    expect(roundTrips.at(-1)).toBe(20);
  });

  it("re-queues every batch in flight to a replica that dies, and another replica answers them all", () => {
    const h = harness({ maxInFlight: 3, admission: false });
    h.dispatcher.configure("m", "1", { batchSize: 2, batchWaitMicros: 0, budgetMs: 50 });
    const requeued: number[] = [];
    h.dispatcher.setObserver({ requeued: (_m, n) => requeued.push(n) });
    const tasks = Array.from({ length: 6 }, (_, i) => h.task(1e9, i));
    for (const t of tasks) h.dispatcher.submit("m", "1", t);
    const a = h.replica(0);
    h.dispatcher.replicaAdded(a);
    expect(h.sent.map(values)).toEqual([[0, 1], [2, 3], [4, 5]]);
    h.answer(h.sent[0]!); // the first is answered; two remain in flight
    h.dispatcher.replicaRemoved(a);
    expect(requeued).toEqual([4]);
    expect(h.dispatcher.queueDepth("m", "1")).toBe(4);
    const b = h.replica(1);
    h.dispatcher.replicaAdded(b);
    expect(h.sent.slice(3).map(values)).toEqual([[2, 3], [4, 5]]);
    for (const batch of h.sent.slice(3)) h.answer(batch);
    expect(tasks.map((t) => t.result && "output" in t.result ? [t.result.output, t.result.replica] : t.result)).toEqual([
      ["0", a.key], ["1", a.key], ["2", b.key], ["3", b.key], ["4", b.key], ["5", b.key],
    ]);
    // An answer from the dead replica to a batch it no longer holds changes nothing.
    h.answer(h.sent[1]!);
    expect(tasks[2]!.result).toEqual({ ok: true, output: "2", replica: b.key });
  });

  it("bans a replica that answers a pipelined batch with the wrong count, and re-queues both its batches", () => {
    const h = harness({ maxInFlight: 2, admission: false });
    h.dispatcher.configure("m", "1", { batchSize: 1, batchWaitMicros: 0, budgetMs: 50 });
    const liar = h.replica(0);
    h.dispatcher.replicaAdded(liar);
    h.dispatcher.submit("m", "1", h.task(1e9, 0));
    h.dispatcher.submit("m", "1", h.task(1e9, 1));
    h.dispatcher.response(liar, h.sent[1]!.msgId, ["1", "1"]);
    expect(h.dispatcher.liveReplicaCount("m", "1")).toBe(0);
    expect(h.dispatcher.queueDepth("m", "1")).toBe(2);
  });

  it("lets a draining replica answer all its batches in flight, sends it nothing new, and re-queues nothing", () => {
    const h = harness({ maxInFlight: 2, admission: false });
    h.dispatcher.configure("m", "1", { batchSize: 1, batchWaitMicros: 0, budgetMs: 50 });
    const requeued: number[] = [];
    h.dispatcher.setObserver({ requeued: (_m, n) => requeued.push(n) });
    const a = h.replica(0);
    h.dispatcher.replicaAdded(a);
    const held = [h.task(1e9, 0), h.task(1e9, 1)];
    for (const t of held) h.dispatcher.submit("m", "1", t);
    h.dispatcher.replicaDraining(a);
    const b = h.replica(1);
    h.dispatcher.replicaAdded(b);
    const later = h.task(1e9, 2);
    h.dispatcher.submit("m", "1", later);
    expect(h.sent.map((s) => s.replica.replicaId)).toEqual([0, 0, 1]);
    h.answer(h.sent[1]!); // out of order is fine too
    h.answer(h.sent[0]!);
    expect(h.sent).toHaveLength(3); // nothing new for the draining replica
    h.dispatcher.replicaRemoved(a);
    expect(requeued).toEqual([]);
    expect(held.map((t) => t.result)).toEqual([
      { ok: true, output: "0", replica: a.key }, { ok: true, output: "1", replica: a.key },
    ]);
  });

  it("sends a busy replica only full batches: what is queued meanwhile waits for the answer and goes as one batch", () => {
    const h = harness({ maxInFlight: 2, admission: false });
    h.dispatcher.configure("m", "1", { batchSize: 4, batchWaitMicros: 0, budgetMs: 50 });
    const a = h.replica(0);
    h.dispatcher.replicaAdded(a);
    for (let i = 0; i < 3; i++) h.dispatcher.submit("m", "1", h.task(1e9, i));
    expect(h.sent.map(values)).toEqual([[0]]); // an idle replica takes what there is; then it is busy
    h.answer(h.sent[0]!);
    expect(h.sent.map(values)).toEqual([[0], [1, 2]]);
    for (let i = 3; i < 6; i++) h.dispatcher.submit("m", "1", h.task(1e9, i));
    expect(h.sent).toHaveLength(2); // three queued, the cap is four: they wait
    h.dispatcher.submit("m", "1", h.task(1e9, 6));
    expect(h.sent.map(values)).toEqual([[0], [1, 2], [3, 4, 5, 6]]); // a full batch goes behind the busy one
  });

  it("sends a busy replica only full batches when the model has a batch wait", () => {
    const h = harness({ maxInFlight: 2, admission: false });
    h.dispatcher.configure("m", "1", { batchSize: 3, batchWaitMicros: 5_000, budgetMs: 50 });
    const a = h.replica(0);
    h.dispatcher.replicaAdded(a);
    for (let i = 0; i < 3; i++) h.dispatcher.submit("m", "1", h.task(1e9, i));
    expect(h.sent.map(values)).toEqual([[0, 1, 2]]);
    h.dispatcher.submit("m", "1", h.task(1e9, 3));
    h.clock.advance(10); // past the batch wait: still not sent behind the busy batch
    expect(h.sent).toHaveLength(1);
    for (let i = 4; i < 6; i++) h.dispatcher.submit("m", "1", h.task(1e9, i));
    expect(h.sent.map(values)).toEqual([[0, 1, 2], [3, 4, 5]]); // full: queued behind the first
  });

  it("drops as late what would come back past its deadline behind the batch in flight", () => {
    const h = harness({ maxInFlight: 2 });
    h.dispatcher.configure("m", "1", { batchSize: 1, batchWaitMicros: 0, budgetMs: 50 });
    const a = h.replica(0);
    h.dispatcher.replicaAdded(a);
    h.dispatcher.submit("m", "1", h.task(1e9, 0));
    h.clock.advance(10);
    h.answer(h.sent[0]!); // a service time of 10 ms
    h.dispatcher.submit("m", "1", h.task(1e9, 1));
    h.dispatcher.submit("m", "1", h.task(1e9, 2)); // queued behind it in the replica
    // Admission plans with both batches ahead: 10 + 20 + its own 10 = 40, in time for 45.
    const doomed = h.task(45, 3);
    const fine = h.task(1e9, 4);
    expect(h.dispatcher.submit("m", "1", doomed)).toBe(true);
    expect(h.dispatcher.submit("m", "1", h.task(39, 5))).toBe(false);
    h.dispatcher.submit("m", "1", fine);
    // The model slows down: 15 ms. Sent now, behind the batch in service, the next batch would come
    // back after 45: the doomed query is answered late at once, the other one goes.
    h.clock.advance(15);
    h.answer(h.sent[1]!);
    expect(doomed.result).toMatchObject({ ok: false, late: true });
    expect(h.sent.map(values)).toEqual([[0], [1], [2], [4]]);
  });
});

describe("admission with batches in flight", () => {
  it("counts every batch a replica has in flight before the new query's own", () => {
    const view = { now: 0, latencyMs: 10, ahead: 0, replicas: [{ cap: 4, busySince: -4, batchesInFlight: 2 }] };
    // The second batch ends at −4 + 2·10 = 16; the query's own batch then takes 10.
    expect(estimateCompletion(view)).toBe(26);
    expect(estimateCompletion({ ...view, replicas: [{ cap: 4, busySince: -4 }] })).toBe(16);
  });
});

describe("the --max-in-flight setting", { timeout: 60_000 }, () => {
  const FRONTEND_MAIN = join(fileURLToPath(new URL("..", import.meta.url)), "dist", "runtime", "frontend", "main.js");

  it("reaches the frontend's command line from the cluster options, and is left to the frontend when absent", () => {
    const flags = frontendTuningFlags({ ...DEFAULT_CLUSTER_OPTIONS, maxInFlight: 3 }, "/key");
    expect(flags.slice(flags.indexOf("--max-in-flight"), flags.indexOf("--max-in-flight") + 2)).toEqual(["--max-in-flight", "3"]);
    expect(frontendTuningFlags(DEFAULT_CLUSTER_OPTIONS, "/key")).not.toContain("--max-in-flight");
  });

  it("is refused out of 1 to 16 in a local cluster's saved options", () => {
    const base = { ...DEFAULT_CLUSTER_OPTIONS };
    for (const bad of [0, 17, 1.5, "2"]) expect(ClusterOptionsSchema.safeParse({ ...base, maxInFlight: bad }).success, String(bad)).toBe(false);
    expect(ClusterOptionsSchema.safeParse({ ...base, maxInFlight: 16 }).success).toBe(true);
  });

  it("is refused by the frontend out of 1 to 16, with exit 2 and one line", () => {
    for (const bad of ["0", "17", "two", "1.5"]) {
      const r = spawnSync(process.execPath, [FRONTEND_MAIN, "--management-url", "http://127.0.0.1:9", "--rpc-auth", "none", "--max-in-flight", bad], {
        encoding: "utf8", timeout: 20_000,
      });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/--max-in-flight must be an integer from 1 to 16/);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });
});
