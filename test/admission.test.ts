/**
 * Deadline-aware admission: on a fake clock with a known batch latency, an overload is refused once
 * the work queued ahead cannot finish by the deadline, and what is accepted finishes in time; then the
 * same through a real management daemon, frontend and containers (Clipper's collapse case: batch size
 * 1, ~10 ms per query, a 100 ms SLO and far more concurrent clients than that).
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { admits, estimateCompletion, retryAfterSeconds } from "../runtime/frontend/admission.js";
import { DeadlineQueue, type QueuedTask } from "../runtime/frontend/deadline-queue.js";
import { QUERY_SHED, SLO_MISSED } from "../runtime/frontend/query-processor.js";
import { harness, type Harness, type TestTask } from "./support/fake-dispatch.js";
import { startInProcessCluster, sumHandler, type InProcessCluster } from "./support/cluster-in-process.js";

interface LoadResult {
  status: number;
  ms: number;
  default?: boolean;
  explanation?: string;
  retryAfter: string | null;
  body?: unknown;
}

const LOAD_GENERATOR = fileURLToPath(new URL("./fixtures/load-generator.mjs", import.meta.url));

/** Closed-loop clients in a child process (so their CPU does not slow the frontend under test). */
function runLoad(spec: { url: string; apps: Record<string, number>; durationMs: number; pauseMs: number; input: unknown }) {
  return new Promise<Record<string, LoadResult[]>>((resolve, reject) => {
    execFile(process.execPath, [LOAD_GENERATOR, JSON.stringify(spec)], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => {
      if (err) reject(err);
      else resolve(JSON.parse(stdout) as Record<string, LoadResult[]>);
    });
  });
}

/** A dispatcher with `replicas` replicas of batch size `batchSize` whose batches take `latencyMs` (measured once). */
function measured(latencyMs: number, replicas = 1, batchSize = 1): Harness {
  const h = harness();
  h.dispatcher.configure("m", "1", { batchSize, batchWaitMicros: 0, budgetMs: 50 });
  for (let i = 0; i < replicas; i++) h.dispatcher.replicaAdded(h.replica(i));
  expect(h.dispatcher.submit("m", "1", h.task(h.clock.t + 1000))).toBe(true);
  h.clock.advance(latencyMs);
  h.answer(h.sent[0]!);
  expect(h.dispatcher.batchLatencyMs("m", "1")).toBe(latencyMs);
  return h;
}

/** Lets every replica answer its batch `latencyMs` after it was sent, until nothing is left. */
function drain(h: Harness, latencyMs: number): void {
  const answered = new Set<number>();
  for (let guard = 0; guard < 10_000; guard++) {
    const open = h.sent.filter((b) => !answered.has(b.msgId));
    if (open.length === 0) return;
    h.clock.advance(latencyMs);
    for (const batch of open) {
      answered.add(batch.msgId);
      h.answer(batch);
    }
  }
  throw new Error("the queue never drained");
}

describe("admission estimate", () => {
  it("counts rounds of batches ahead, plus the query's own batch", () => {
    const view = { now: 0, latencyMs: 10, ahead: 25, replicas: [{ cap: 4 }, { cap: 4, busySince: -5 }] };
    // One replica free: no wait; 25 ahead / 8 per round = 3 full rounds; then its own batch.
    expect(estimateCompletion(view)).toBe(40);
    expect(admits(view, 40)).toBe(true);
    expect(admits(view, 39.9)).toBe(false);
    // Both busy: the first is back in 5 ms.
    expect(estimateCompletion({ ...view, replicas: [{ cap: 4, busySince: -5 }, { cap: 4, busySince: -2 }] })).toBe(45);
    expect(retryAfterSeconds({ ...view, ahead: 800 })).toBe(1);
    expect(retryAfterSeconds({ ...view, ahead: 2_000 })).toBe(3);
  });

  it("never refuses without an estimate, without a replica, or when a replica is idle with nothing ahead", () => {
    expect(admits({ now: 0, latencyMs: undefined, ahead: 10_000, replicas: [{ cap: 1, busySince: 0 }] }, 1)).toBe(true);
    expect(admits({ now: 0, latencyMs: 10, ahead: 10_000, replicas: [] }, 1)).toBe(true);
    // A stale, slow estimate (a cold first batch) must not shed a model's traffic forever.
    expect(admits({ now: 0, latencyMs: 500, ahead: 0, replicas: [{ cap: 1 }] }, 100)).toBe(true);
  });
});

describe("deadline queue", () => {
  it("counts the live tasks due no later than a deadline, and drops dead ones from the front", () => {
    const queue = new DeadlineQueue<QueuedTask>();
    const task = (deadline: number, settled = false): QueuedTask => ({ deadline, settled });
    for (const t of [task(50), task(10), task(30), task(30, true), task(70), task(20)]) queue.push(t);
    expect(queue.countAhead(30, 0)).toBe(3); // 10, 20, 30 (the settled 30 does not count)
    expect(queue.countAhead(30, 15)).toBe(2); // 10 has expired by 15
    expect(queue.countAhead(70, 0)).toBe(6); // nothing later: the whole queue (dropDead first)
    expect(queue.dropDead(25)).toBe(2);
    expect(queue.peek()?.deadline).toBe(30);
    expect(queue.takeBatch(10, 25).map((t) => t.deadline)).toEqual([30, 50, 70]);
    expect(queue.size).toBe(0);
  });
});

describe("dispatcher admission", () => {
  it("refuses an overload once the queue ahead cannot finish by the deadline; what it accepts finishes in time", () => {
    const h = measured(10);
    const start = h.clock.t;
    const tasks: TestTask[] = Array.from({ length: 50 }, (_, i) => h.task(start + 100, i));
    const accepted = tasks.filter((t) => h.dispatcher.submit("m", "1", t));
    // One goes to the free replica; then query k (k ≥ 2) would be answered at 10·k ms: k ≤ 10 fit.
    expect(accepted).toHaveLength(10);
    expect(h.shed).toBe(40);
    expect(h.dispatcher.retryAfterSeconds("m", "1")).toBe(1);
    drain(h, 10);
    for (const task of accepted) {
      expect(task.result).toMatchObject({ ok: true });
      expect(task.answeredAt!).toBeLessThanOrEqual(task.deadline);
    }
    expect(accepted.at(-1)!.answeredAt).toBe(start + 100);
  });

  it("scales with replicas and batch caps", () => {
    const h = measured(10, 2, 4);
    const start = h.clock.t;
    const accepted = Array.from({ length: 200 }, (_, i) => h.task(start + 100, i)).filter((t) => h.dispatcher.submit("m", "1", t));
    // One replica takes the first query at once; with 8 per round, 8·9 more fit behind it (and its batch).
    expect(accepted.length).toBeGreaterThanOrEqual(70);
    expect(accepted.length).toBeLessThanOrEqual(80);
    drain(h, 10);
    expect(accepted.every((t) => t.result?.ok && t.answeredAt! <= t.deadline)).toBe(true);
  });

  it("admits a query with an earlier deadline ahead of queued later ones (earliest deadline first)", () => {
    const h = measured(10);
    const start = h.clock.t;
    for (let i = 0; i < 30; i++) h.dispatcher.submit("m", "1", h.task(start + 100, i));
    expect(h.dispatcher.submit("m", "1", h.task(start + 100, 99))).toBe(false);
    // Due sooner than everything queued, so nothing queued is ahead of it.
    expect(h.dispatcher.submit("m", "1", h.task(start + 30, 100))).toBe(true);
  });

  it("queues everything before the first batch latency is known", () => {
    const h = harness();
    h.dispatcher.replicaAdded(h.replica(0));
    const accepted = Array.from({ length: 100 }, () => h.task(50)).filter((t) => h.dispatcher.submit("m", "1", t));
    expect(accepted).toHaveLength(100);
    expect(h.shed).toBe(0);
  });

  it("can be turned off", () => {
    const h = harness({ admission: false });
    h.dispatcher.replicaAdded(h.replica(0));
    h.dispatcher.submit("m", "1", h.task(1000));
    h.clock.advance(10);
    h.answer(h.sent[0]!);
    const accepted = Array.from({ length: 100 }, () => h.task(h.clock.t + 100)).filter((t) => h.dispatcher.submit("m", "1", t));
    expect(accepted).toHaveLength(100);
  });
});

describe("admission under overload, end to end", () => {
  let c: InProcessCluster;
  beforeAll(async () => {
    c = await startInProcessCluster();
  });
  afterAll(async () => {
    await c?.close();
  });

  it("keeps answering from the model at capacity, sheds at the deadline with an explanation, and answers 503 where asked", async () => {
    const admin = c.admin;
    await admin.postText("/admin/add_app", { name: "busy", input_type: "doubles", default_output: "-1.0", latency_slo_micros: 100_000 });
    await admin.postText("/admin/add_app", {
      name: "busy503", input_type: "doubles", default_output: "-1.0", latency_slo_micros: 100_000, shed_with_503: true,
    });
    await admin.postText("/admin/add_model", {
      model_name: "slowpoke", model_version: "1", labels: [], input_type: "doubles", container_name: "NO_CONTAINER",
      model_data_path: "x", batch_size: 1,
    });
    await admin.postText("/admin/add_model_links", { app_name: "busy", model_names: ["slowpoke"] });
    await admin.postText("/admin/add_model_links", { app_name: "busy503", model_names: ["slowpoke"] });
    await c.waitForConfig((f) => f.state()?.applications.busy503?.linked_models.includes("slowpoke") === true);
    expect(c.frontend.state()?.applications.busy503?.shed_with_503).toBe(true);
    await c.addContainer("slowpoke", "1", "doubles", async (batch) => {
      await new Promise((r) => setTimeout(r, 10 * batch.inputs.length));
      return sumHandler(batch) as string[];
    });
    // Measure the model once, so admission has an estimate.
    expect((await c.predict("busy", { input: [1, 2] })).body).toMatchObject({ output: 3, default: false });

    // 72 closed-loop clients for 2 s against a model that answers about one query per 10-15 ms, so
    // at most ~8 fit in a 100 ms SLO. A client answered with a default output or a 503 pauses 100 ms
    // (it would back off); otherwise the flood of cheap refusals starves this one process's CPU,
    // which here also runs the model container.
    const load = await runLoad({
      url: c.frontend.queryUrl, apps: { busy: 64, busy503: 8 }, durationMs: 2_000, pauseMs: 100, input: [1, 1],
    });
    const busy = load.busy!;
    const answered = busy.filter((r) => r.status === 200 && r.default === false);
    const shed = busy.filter((r) => r.explanation === QUERY_SHED);
    const missed = busy.filter((r) => r.explanation === SLO_MISSED);
    const unavailable = load.busy503!.filter((r) => r.status === 503);
    const metrics = await (await fetch(`${c.frontend.queryUrl}/metrics`)).text();
    const batches = Number(/clipper_model_batch_size_count\{model="slowpoke:1"\} (\d+)/.exec(metrics)?.[1]);
    const summary = { batches, answered: answered.length, shed: shed.length, missed: missed.length, unavailable: unavailable.length };

    // Without admission (Clipper) the model is busy all along but its answers come too late: the same
    // load with admission off answered about half of its batches in time, and timed out ~8 queries per
    // answer. Here most of the model's work reaches its caller in time (ratios: the machine's speed
    // sets how many batches run, not these),
    expect(answered.length, JSON.stringify(summary)).toBeGreaterThanOrEqual(20);
    expect(answered.length / batches, JSON.stringify(summary)).toBeGreaterThanOrEqual(0.65);
    expect(missed.length, JSON.stringify(summary)).toBeLessThan(answered.length / 2);
    // The rest is refused without taking model time, and the refusal is answered at the deadline
    // (Clipper's time for a default output), not at once: an instant refusal is asked again at once
    // by a closed-loop client, and such a storm starves the model (docs/bench/storm.md).
    expect(shed.length).toBeGreaterThan(answered.length);
    const shedMs = shed.map((r) => r.ms).sort((a, b) => a - b);
    expect(shedMs[0]!, "fastest shed query, ms").toBeGreaterThanOrEqual(95);
    expect(shedMs[Math.floor(shedMs.length / 2)]!, "median latency of a shed query").toBeLessThan(200);
    expect(unavailable.length).toBeGreaterThan(0);
    for (const u of unavailable) {
      expect(Number(u.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(u.body).toEqual({ error: "Service unavailable", cause: QUERY_SHED });
    }
    expect(metrics).toMatch(/clipper_model_shed_queries_total\{model="slowpoke:1"\} [1-9]/);
    expect(metrics).toMatch(/clipper_app_default_outputs_total\{app="busy",reason="overloaded"\} [1-9]/);
    expect(metrics).toMatch(/clipper_model_batch_cap\{model="slowpoke:1",replica="0"\} 1\n/);
  }, 20_000);
});
