/**
 * Latency-aware adaptive batching: the AIMD controller on its own (simulated batch latency a + b·n),
 * then through the dispatcher on a fake clock (batch wait, send reasons, fixed batch sizes).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatchController, modelBatchConfig } from "../runtime/frontend/batch-controller.js";
import { FrontendMetrics } from "../runtime/frontend/metrics.js";
import type { ClusterState } from "../runtime/shared/state.js";
import { harness } from "./support/fake-dispatch.js";
import { startInProcessCluster, sumHandler, type InProcessCluster } from "./support/cluster-in-process.js";

/** Runs `rounds` full batches of a model whose batch latency is a + b·n; returns the cap after each. */
function simulate(controller: BatchController, rounds: number, latency: (n: number) => number): number[] {
  const caps: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const n = controller.cap; // the queue is always deep enough: every batch is full
    controller.observe(n, latency(n));
    caps.push(controller.cap);
  }
  return caps;
}

function within(values: number[], target: number, tolerance: number): void {
  expect(Math.min(...values)).toBeGreaterThanOrEqual(target * (1 - tolerance));
  expect(Math.max(...values)).toBeLessThanOrEqual(target * (1 + tolerance));
}

describe("AIMD batch controller", () => {
  it("settles near the largest batch under the budget, and backs off when the model slows down", () => {
    // Budget 50 ms, latency 5 + 0.5·n ms: the largest batch under budget is (50 − 5) / 0.5 = 90.
    const controller = new BatchController({ budgetMs: 50, maxCap: 256 });
    expect(controller.cap).toBe(1);
    const a = 5;
    let b = 0.5;
    const warm = simulate(controller, 150, (n) => a + b * n);
    // +1 per full batch under budget: 89 rounds from 1 to 90; the last 50 of 150 rounds are settled,
    // sawing between floor(0.9 × 91) = 81 and 91.
    within(warm.slice(-50), (50 - a) / b, 0.12);
    expect(warm.indexOf(90)).toBe(88);

    // The model gets twice as slow per query: the optimum halves to (50 − 5) / 1 = 45.
    b = 1;
    const slowed = simulate(controller, 80, (n) => a + b * n);
    // 10% steps down: 91 → 45 takes about 7 rounds; the last 40 rounds are settled around 45.
    expect(slowed.findIndex((cap) => cap <= 45)).toBeLessThan(10);
    within(slowed.slice(-40), 45, 0.12);
  });

  it("never grows on batches smaller than the cap, and backs off 10% (floor, at least 1) over budget", () => {
    const controller = new BatchController({ budgetMs: 10, maxCap: 64, initialCap: 20 });
    controller.observe(3, 1); // a slow trickle: far under budget, but not full
    expect(controller.cap).toBe(20);
    controller.observe(20, 1);
    expect(controller.cap).toBe(21);
    controller.observe(2, 11); // over budget, whatever the size
    expect(controller.cap).toBe(18);
    const tiny = new BatchController({ budgetMs: 10, maxCap: 64 });
    tiny.observe(1, 100);
    expect(tiny.cap).toBe(1);
    const ten = new BatchController({ budgetMs: 10, maxCap: 64, initialCap: 10 });
    ten.observe(10, 11);
    expect(ten.cap).toBe(9);
  });

  it("takes a configurable step and never passes --max-batch", () => {
    const controller = new BatchController({ budgetMs: 1000, maxCap: 10, step: 4 });
    expect(simulate(controller, 5, () => 1)).toEqual([5, 9, 10, 10, 10]);
  });

  it("never exceeds a model's fixed batch size, and does not adapt it", () => {
    const controller = new BatchController({ budgetMs: 50, maxCap: 64, fixedBatchSize: 8 });
    expect(controller.adaptive).toBe(false);
    expect(Math.max(...simulate(controller, 100, () => 0.1))).toBe(8);
    expect(Math.min(...simulate(controller, 100, () => 500))).toBe(8);
    controller.configure({ fixedBatchSize: -1 });
    expect(controller.adaptive).toBe(true);
    expect(controller.cap).toBe(1);
  });

  it("derives the budget from the tightest SLO of the applications linked to the model", () => {
    const state: ClusterState = {
      revision: 1,
      applications: {
        fast: { name: "fast", input_type: "doubles", default_output: "0", latency_slo_micros: 40_000, linked_models: ["m"] },
        slow: { name: "slow", input_type: "doubles", default_output: "0", latency_slo_micros: 500_000, linked_models: ["m"] },
        other: { name: "other", input_type: "doubles", default_output: "0", latency_slo_micros: 1_000, linked_models: ["x"] },
      },
      models: {
        m: {
          name: "m", current_version: "1",
          versions: {
            1: {
              model_name: "m", model_version: "1", labels: [], input_type: "doubles", container_name: "c",
              model_data_path: "p", batch_size: -1, batch_wait_micros: 2_000,
            },
          },
        },
      },
    };
    expect(modelBatchConfig(state, "m", "1", { defaultBudgetMs: 50 })).toEqual({ batchSize: -1, batchWaitMicros: 2_000, budgetMs: 20 });
    expect(modelBatchConfig(state, "lonely", "1", { defaultBudgetMs: 50 })).toEqual({ batchSize: -1, batchWaitMicros: 0, budgetMs: 50 });
    expect(modelBatchConfig(state, "m", "1", { defaultBudgetMs: 50, budgetFraction: 0.25 }).budgetMs).toBe(10);
  });
});

describe("dispatcher batching", () => {
  it("adapts each replica's cap from the batch latencies it measures", () => {
    const h = harness({ admission: false, defaultMaxBatch: 256 });
    h.dispatcher.configure("m", "1", { batchSize: -1, batchWaitMicros: 0, budgetMs: 30 });
    const replica = h.replica(0);
    h.dispatcher.replicaAdded(replica);
    let value = 0;
    // Keep the queue deeper than any cap; the replica takes 2 + 0.25·n ms per batch: optimum 112.
    for (let round = 0; round < 200; round++) {
      while (h.dispatcher.queueDepth("m", "1") < 300) h.dispatcher.submit("m", "1", h.task(1e12, value++));
      const batch = h.sent.at(-1)!;
      h.clock.advance(2 + 0.25 * batch.inputs.length);
      h.answer(batch);
    }
    const caps = h.sent.slice(-50).map((b) => b.inputs.length);
    within(caps, 112, 0.12);
    expect(h.sent.slice(-50).every((b) => b.detail?.reason === "full")).toBe(true);
    expect(h.dispatcher.batchCaps()).toEqual([{ model: "m:1", replica: "0", cap: expect.any(Number) }]);
  });

  it("re-queues a batch answered with the wrong number of outputs and bans the replica that did it", () => {
    const h = harness({ admission: false });
    h.dispatcher.configure("m", "1", { batchSize: -1, batchWaitMicros: 0, budgetMs: 30 });
    const liar = h.replica(0);
    h.dispatcher.replicaAdded(liar);
    const tasks = [h.task(1e12, 1), h.task(1e12, 2)];
    for (const t of tasks) h.dispatcher.submit("m", "1", t);
    const first = h.sent.at(-1)!;
    h.dispatcher.response(liar, first.msgId, ["1", "2", "3"]);
    expect(tasks.every((t) => t.result === undefined)).toBe(true);
    expect(h.dispatcher.liveReplicaCount("m", "1")).toBe(0);
    const honest = h.replica(1);
    h.dispatcher.replicaAdded(honest);
    // The honest replica gets every task again, the liar's batch included.
    for (let i = 0; i < 10 && tasks.some((t) => !t.result); i++) {
      const batch = h.sent.at(-1)!;
      expect(batch.replica).toBe(honest);
      h.answer(batch);
    }
    expect(tasks.map((t) => t.result)).toEqual([{ ok: true, output: "1", replica: honest.key }, { ok: true, output: "2", replica: honest.key }]);
  });

  it("reports full batches as full and a drained queue as queue_drained", () => {
    const h = harness({ admission: false });
    h.dispatcher.configure("m", "1", { batchSize: 4, batchWaitMicros: 0, budgetMs: 50 });
    const replica = h.replica(0);
    h.dispatcher.replicaAdded(replica);
    for (let i = 0; i < 6; i++) h.dispatcher.submit("m", "1", h.task(1000, i));
    expect(h.sent.map((b) => [b.inputs.length, b.detail?.reason])).toEqual([[1, "queue_drained"]]);
    h.clock.advance(5);
    h.answer(h.sent[0]!);
    expect(h.sent.map((b) => [b.inputs.length, b.detail?.reason])).toEqual([[1, "queue_drained"], [4, "full"]]);
    h.clock.advance(5);
    h.answer(h.sent[1]!);
    expect(h.sent.map((b) => [b.inputs.length, b.detail?.reason]).at(-1)).toEqual([1, "queue_drained"]);
    expect(h.sent[1]!.detail?.queueWaitSeconds).toEqual([0.005, 0.005, 0.005, 0.005]);
    expect(Math.max(...h.sent.map((b) => b.inputs.length))).toBeLessThanOrEqual(4);
  });

  it("holds a small batch for the batch wait, then sends it as wait_expired", () => {
    const h = harness({ admission: false });
    h.dispatcher.configure("m", "1", { batchSize: 8, batchWaitMicros: 5_000, budgetMs: 50 });
    h.dispatcher.replicaAdded(h.replica(0));
    for (let i = 0; i < 3; i++) h.dispatcher.submit("m", "1", h.task(1000, i));
    h.clock.advance(4.9);
    expect(h.sent).toHaveLength(0);
    h.clock.advance(0.1);
    expect(h.sent.map((b) => [b.inputs.length, b.detail?.reason])).toEqual([[3, "wait_expired"]]);
    expect(h.clock.timers).toBe(0);
  });

  it("sends a held batch at once, as full, when it fills during the wait", () => {
    const h = harness({ admission: false });
    h.dispatcher.configure("m", "1", { batchSize: 8, batchWaitMicros: 5_000, budgetMs: 50 });
    h.dispatcher.replicaAdded(h.replica(0));
    for (let i = 0; i < 3; i++) h.dispatcher.submit("m", "1", h.task(1000, i));
    h.clock.advance(2);
    for (let i = 3; i < 8; i++) h.dispatcher.submit("m", "1", h.task(1000, i));
    expect(h.sent.map((b) => [b.inputs.length, b.detail?.reason])).toEqual([[8, "full"]]);
    expect(h.clock.timers).toBe(0);
  });

  it("never holds past the earliest deadline minus the measured batch latency", () => {
    const h = harness({ admission: false });
    h.dispatcher.configure("m", "1", { batchSize: 8, batchWaitMicros: 50_000, budgetMs: 50 });
    h.dispatcher.replicaAdded(h.replica(0));
    // Measure a batch: 20 ms (held 50 ms first, since it was alone).
    h.dispatcher.submit("m", "1", h.task(1000));
    h.clock.advance(50);
    h.clock.advance(20);
    h.answer(h.sent[0]!);
    expect(h.dispatcher.batchLatencyMs("m", "1")).toBe(20);
    // A query due in 30 ms may wait 10 ms at most, not 50.
    const start = h.clock.t;
    h.dispatcher.submit("m", "1", h.task(start + 30));
    h.clock.advance(9.9);
    expect(h.sent).toHaveLength(1);
    h.clock.advance(0.1);
    expect(h.sent.map((b) => [b.inputs.length, b.detail?.reason]).at(-1)).toEqual([1, "wait_expired"]);
    // A query arriving during a hold with an earlier deadline shortens it.
    h.clock.advance(20);
    h.answer(h.sent[1]!);
    const t2 = h.clock.t;
    h.dispatcher.submit("m", "1", h.task(t2 + 100));
    h.clock.advance(1);
    h.dispatcher.submit("m", "1", h.task(t2 + 25));
    h.clock.advance(3.9);
    expect(h.sent).toHaveLength(2);
    h.clock.advance(0.1);
    expect(h.sent.at(-1)!.inputs).toHaveLength(2);
  });

  it("lets one replica fill a batch while the others wait, then shares the rest", () => {
    const h = harness({ admission: false });
    h.dispatcher.configure("m", "1", { batchSize: 4, batchWaitMicros: 5_000, budgetMs: 50 });
    const [r0, r1] = [h.replica(0), h.replica(1)];
    h.dispatcher.replicaAdded(r0);
    h.dispatcher.replicaAdded(r1);
    for (let i = 0; i < 2; i++) h.dispatcher.submit("m", "1", h.task(1000, i));
    expect(h.sent).toHaveLength(0);
    for (let i = 2; i < 7; i++) h.dispatcher.submit("m", "1", h.task(1000, i));
    // Full at 4 → sent; the other replica then holds the remaining 3 for the wait.
    expect(h.sent.map((b) => b.inputs.length)).toEqual([4]);
    h.clock.advance(5);
    expect(h.sent.map((b) => [b.inputs.length, b.detail?.reason])).toEqual([[4, "full"], [3, "wait_expired"]]);
    expect(new Set(h.sent.map((b) => b.replica.replicaId))).toEqual(new Set([0, 1]));
  });

  it("drops expired queries from the queue before forming a batch", () => {
    const h = harness({ admission: false });
    h.dispatcher.configure("m", "1", { batchSize: 4, batchWaitMicros: 0, budgetMs: 50 });
    h.dispatcher.replicaAdded(h.replica(0));
    h.dispatcher.submit("m", "1", h.task(1000, 0));
    h.dispatcher.submit("m", "1", h.task(10, 1)); // due before the replica is free again
    h.dispatcher.submit("m", "1", h.task(1000, 2));
    h.clock.advance(20);
    h.answer(h.sent[0]!);
    expect(h.sent[1]!.inputs.map((b) => b.readDoubleLE(0))).toEqual([2]);
    expect(h.dispatcher.queueDepth("m", "1")).toBe(0);
  });

  it("exports the batching metrics", async () => {
    const h = harness({ admission: false });
    const metrics = new FrontendMetrics({
      queueDepths: () => h.dispatcher.queueDepths(),
      replicaCounts: () => h.dispatcher.replicaCounts(),
      batchCaps: () => h.dispatcher.batchCaps(),
    });
    h.dispatcher.setObserver(metrics);
    h.dispatcher.configure("m", "1", { batchSize: 2, batchWaitMicros: 0, budgetMs: 50 });
    h.dispatcher.replicaAdded(h.replica(7));
    for (let i = 0; i < 3; i++) h.dispatcher.submit("m", "1", h.task(1000, i));
    h.clock.advance(3);
    h.answer(h.sent[0]!);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/clipper_model_batches_total\{model="m:1",reason="queue_drained"\} 1/);
    expect(text).toMatch(/clipper_model_batches_total\{model="m:1",reason="full"\} 1/);
    expect(text).toMatch(/clipper_model_queue_wait_seconds_count\{model="m:1"\} 3/);
    expect(text).toMatch(/clipper_model_batch_cap\{model="m:1",replica="7"\} 2/);
  });
});

describe("batch wait through the management daemon and a real frontend", () => {
  let c: InProcessCluster;
  beforeAll(async () => {
    c = await startInProcessCluster();
  });
  afterAll(async () => {
    await c?.close();
  });

  it("validates batch_wait_micros on add_model", async () => {
    const model = {
      model_name: "w", model_version: "1", labels: [], input_type: "doubles", container_name: "NO_CONTAINER",
      model_data_path: "x", batch_size: 4,
    };
    for (const bad of [-1, 1.5, 2 ** 31]) {
      await expect(c.admin.postText("/admin/add_model", { ...model, batch_wait_micros: bad }))
        .rejects.toThrow(/batch_wait_micros must be a non-negative integer number of microseconds/);
    }
    await expect(c.admin.postText("/admin/add_model", { ...model, batch_wait_micros: "5" })).rejects.toThrow(/batch_wait_micros/);
    await expect(c.admin.postText("/admin/add_app", {
      name: "w", input_type: "doubles", default_output: "-1", latency_slo_micros: 100_000, shed_with_503: "yes",
    })).rejects.toThrow(/shed_with_503/);
  });

  it("holds a replica's batch for the model's batch wait, so queries sent apart share a batch", async () => {
    await c.admin.postText("/admin/add_app", { name: "w", input_type: "doubles", default_output: "-1", latency_slo_micros: 5_000_000 });
    await c.admin.postText("/admin/add_model", {
      model_name: "w", model_version: "1", labels: [], input_type: "doubles", container_name: "NO_CONTAINER",
      model_data_path: "x", batch_size: 4, batch_wait_micros: 300_000,
    });
    await c.admin.postText("/admin/add_model_links", { app_name: "w", model_names: ["w"] });
    await c.waitForConfig((f) => f.state()?.models.w?.versions["1"]?.batch_wait_micros === 300_000
      && f.state()?.applications.w?.linked_models.includes("w") === true);
    const sizes: number[] = [];
    await c.addContainer("w", "1", "doubles", (batch) => {
      sizes.push(batch.inputs.length);
      return sumHandler(batch);
    });
    const first = c.predict("w", { input: [1] });
    await new Promise((r) => setTimeout(r, 50));
    const second = c.predict("w", { input: [2] });
    expect((await first).body).toMatchObject({ output: 1, default: false });
    expect((await second).body).toMatchObject({ output: 2, default: false });
    expect(sizes).toEqual([2]);
    const metrics = await (await fetch(`${c.frontend.queryUrl}/metrics`)).text();
    expect(metrics).toMatch(/clipper_model_batches_total\{model="w:1",reason="wait_expired"\} 1/);
  });
});
