/**
 * A latency estimate that is too high must not shed a model forever: on a fake clock, a model whose
 * first batches are slow (or that turns slow for a while) is sent queries again as soon as a replica
 * is free, its estimate learns that it is fast now, and queries left out of a batch are answered at
 * once as late, not left to their SLO timer. Real overload still sheds (admission.test.ts).
 */
import { describe, expect, it } from "vitest";
import { LatencyEstimate } from "../runtime/frontend/admission.js";
import { DeadlineQueue, type QueuedTask } from "../runtime/frontend/deadline-queue.js";
import { harness, type Harness, type TestTask } from "./support/fake-dispatch.js";

const SLO_MS = 200;

interface Query {
  task: TestTask;
  at: number;
  admitted: boolean;
}

/**
 * Sends one query every `everyMs` from now until `untilMs`; the replica answers each batch after
 * `cost(sentAt)` ms (its cost when the batch was sent). Returns every query sent.
 */
function traffic(h: Harness, untilMs: number, everyMs: number, cost: (sentAt: number) => number): Query[] {
  const queries: Query[] = [];
  let scheduled = h.sent.length;
  const answerNewBatches = (): void => {
    for (; scheduled < h.sent.length; scheduled++) {
      const batch = h.sent[scheduled]!;
      h.clock.setTimeout(() => h.answer(batch), cost(h.clock.t));
    }
  };
  while (h.clock.t < untilMs) {
    const task = h.task(h.clock.t + SLO_MS, queries.length);
    queries.push({ task, at: h.clock.t, admitted: h.dispatcher.submit("m", "1", task) });
    answerNewBatches();
    // Step in 1 ms ticks so a batch answered mid-interval is followed by the next one at once.
    for (let i = 0; i < everyMs; i++) {
      h.clock.advance(1);
      answerNewBatches();
    }
  }
  h.clock.advance(10 * SLO_MS);
  return queries;
}

/** Whether the model answered the query by its deadline. */
function answeredInTime(q: Query): boolean {
  return q.task.result?.ok === true && q.task.answeredAt! <= q.task.deadline;
}

function share(queries: Query[], predicate: (q: Query) => boolean): number {
  return queries.filter(predicate).length / queries.length;
}

function oneReplica(): Harness {
  const h = harness();
  h.dispatcher.configure("m", "1", { batchSize: -1, batchWaitMicros: 0, budgetMs: SLO_MS / 2 });
  h.dispatcher.replicaAdded(h.replica(1));
  return h;
}

describe("a latency estimate that keeps learning", () => {
  it("gives a free replica the late query with the most slack, and answers the other late ones at once", () => {
    const h = oneReplica();
    h.dispatcher.submit("m", "1", h.task(1000, 0));
    // Queued behind a first batch that takes 500 ms: no estimate yet, so all are admitted.
    const waiting = [520, 600, 560].map((deadline, i) => h.task(deadline, i + 1));
    for (const t of waiting) expect(h.dispatcher.submit("m", "1", t)).toBe(true);
    h.clock.advance(500);
    h.answer(h.sent[0]!);
    expect(h.dispatcher.batchLatencyMs("m", "1")).toBe(500);
    // All three look late (due before now + 500); the replica still gets the latest-due one.
    expect(h.sent).toHaveLength(2);
    expect(h.sent[1]!.inputs.map((b) => b.readDoubleLE(0))).toEqual([2]);
    expect(h.dropped).toBe(2);
    for (const t of [waiting[0]!, waiting[2]!]) {
      expect(t.result).toEqual({ ok: false, late: true, latencyMs: 500 });
      expect(t.answeredAt).toBe(500); // at once, not at its deadline
    }
    h.clock.advance(2);
    h.answer(h.sent[1]!);
    expect(waiting[1]!.result).toMatchObject({ ok: true, output: "2" });
  });

  it("cold start: after three 500 ms batches at a 200 ms SLO, the model answers at least 95% of the queries that follow", () => {
    const h = oneReplica();
    let batches = 0;
    const queries = traffic(h, 4000, 10, () => (++batches <= 3 ? 500 : 2));
    const warm = queries.filter((q) => q.at >= 1600); // the three slow batches are over by 1.5 s
    expect(warm.length).toBeGreaterThan(200);
    expect(share(warm, answeredInTime)).toBeGreaterThanOrEqual(0.95);
    expect(h.dispatcher.batchLatencyMs("m", "1")).toBeLessThan(10);
  });

  it("recovers within a second of a fast → slow → fast step change", () => {
    const h = oneReplica();
    const slow = { from: 1000, to: 3000 };
    const queries = traffic(h, 6000, 10, (sentAt) => (sentAt >= slow.from && sentAt < slow.to ? 400 : 2));
    const before = queries.filter((q) => q.at >= 200 && q.at < slow.from);
    const during = queries.filter((q) => q.at >= slow.from + 500 && q.at < slow.to);
    const after = queries.filter((q) => q.at >= slow.to + 1000);
    expect(share(before, answeredInTime)).toBeGreaterThanOrEqual(0.95);
    // While slow, the model cannot meet the SLO: queries are refused or dropped fast, not queued.
    expect(share(during, answeredInTime)).toBe(0);
    expect(share(during, (q) => !q.admitted || (q.task.result !== undefined && "late" in q.task.result) || q.task.result?.ok === true))
      .toBeGreaterThan(0.9);
    expect(share(after, answeredInTime)).toBeGreaterThanOrEqual(0.95);
  });

  it("still sheds a real overload: the estimate stays honest when the model is slow for every batch", () => {
    const h = oneReplica();
    const queries = traffic(h, 3000, 10, () => 500);
    const late = queries.filter((q) => q.at >= 1000);
    expect(share(late, (q) => !q.admitted)).toBeGreaterThan(0.9);
    // One query at a time still reaches the free replica, and the estimate stays at the model's cost.
    expect(h.dispatcher.batchLatencyMs("m", "1")).toBe(500);
    expect(h.sent.length).toBeLessThanOrEqual(3000 / 500 + 1);
  });
});

describe("latency estimate ageing", () => {
  it("weighs a sample from a minute ago less than one from now", () => {
    const recent = new LatencyEstimate(0.2, 10_000);
    recent.observe(500, 0);
    recent.observe(2, 10);
    const aged = new LatencyEstimate(0.2, 10_000);
    aged.observe(500, 0);
    aged.observe(2, 60_000);
    expect(recent.ms).toBeCloseTo(0.2 * 2 + 0.8 * 500, 0);
    // 60 s is six half-lives: the old sample keeps 0.8 / 64 of the weight.
    expect(aged.ms).toBeCloseTo(2 + (0.8 / 64) * 498, 6);
    expect(aged.ms!).toBeLessThan(10);
  });

  it("is the plain EWMA for samples at the same time, and refuses a bad half-life", () => {
    const e = new LatencyEstimate(0.5, 1000);
    e.observe(10, 0);
    e.observe(20, 0);
    expect(e.ms).toBe(15);
    expect(e.deviationMs).toBe(5);
    expect(() => new LatencyEstimate(0.2, 0)).toThrow(RangeError);
  });
});

describe("deadline queue: late tasks", () => {
  it("takes live tasks due after the cutoff and hands back the live ones due before it, in deadline order", () => {
    const q = new DeadlineQueue<QueuedTask>();
    const t = (deadline: number, settled = false): QueuedTask => ({ deadline, settled });
    for (const task of [t(40), t(10), t(30), t(25, true), t(90), t(70)]) q.push(task);
    const { batch, late } = q.takeBatchBefore(10, 15, 50);
    expect(late.map((x) => x.deadline)).toEqual([30, 40]);
    expect(batch.map((x) => x.deadline)).toEqual([70, 90]);
    expect(q.size).toBe(0);
  });
});
