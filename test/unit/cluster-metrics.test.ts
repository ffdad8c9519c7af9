/**
 * The frontend workers' merged /metrics (runtime/frontend/cluster-metrics.ts): each metric's
 * aggregation as FrontendMetrics chooses it, and the primary's collect bounded by its deadline,
 * counting each worker once. The IPC channel is an EventEmitter here; the real one runs in
 * test/frontend-workers-e2e.test.ts.
 */
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { FrontendMetrics } from "../../runtime/frontend/metrics.js";
import { aggregateWorkerRegistries, PrimaryMetricsClient, SCRAPED_WORKERS_METRIC, WorkerMetricsAggregator } from "../../runtime/frontend/cluster-metrics.js";
import { parsePrometheusText } from "../../src/frontend-metrics.js";

/** One worker's metrics: `queries` answered for app "a", `queued` waiting, the one replica of m:1 connected. */
function workerMetrics(queries: number, queued: number): FrontendMetrics {
  const metrics = new FrontendMetrics({
    queueDepths: () => new Map([["m:1", queued]]),
    replicaCounts: () => new Map([["m:1", 1]]),
  });
  for (let i = 0; i < queries; i++) metrics.query("a", 0.004);
  metrics.drained("m:1");
  return metrics;
}

function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  return parsePrometheusText(text).find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

/** A forked worker as the primary sees it: messages it sends arrive on "message"; what the primary sends is kept. */
class FakeWorker extends EventEmitter {
  connected = true;
  readonly sent: Array<{ type: string; id: number }> = [];
  isConnected(): boolean {
    return this.connected;
  }
  send(message: object, callback?: (err: Error | null) => void): boolean {
    this.sent.push(message as { type: string; id: number });
    callback?.(null);
    return true;
  }
}

function manualTimer() {
  const timers: Array<() => void> = [];
  return { setTimer: (fn: () => void) => (timers.push(fn), () => undefined), fire: () => timers.splice(0).forEach((fn) => fn()) };
}

describe("the workers' merged metrics", () => {
  it("sums what each worker counts alone and takes the max of what every worker sees alike", async () => {
    const workers = [workerMetrics(3, 2), workerMetrics(5, 4)];
    const text = await aggregateWorkerRegistries(await Promise.all(workers.map((w) => w.registry.getMetricsAsJSON())) as never, 0);
    expect(value(text, "clipper_app_requests_total", { app: "a" })).toBe(8);
    expect(value(text, "clipper_app_request_latency_seconds_count", { app: "a" })).toBe(8);
    expect(value(text, "clipper_model_queue_depth", { model: "m:1" })).toBe(6);
    // One replica connected to both workers, and its one drain seen by both: not doubled.
    expect(value(text, "clipper_model_replicas", { model: "m:1" })).toBe(1);
    expect(value(text, "clipper_model_drained_replicas_total", { model: "m:1" })).toBe(1);
    expect(value(text, SCRAPED_WORKERS_METRIC, { state: "answered" })).toBe(2);
    expect(value(text, SCRAPED_WORKERS_METRIC, { state: "missing" })).toBe(0);
  });

  it("writes a value the IPC JSON turned into null as NaN, keeping that worker's other series", async () => {
    const timer = manualTimer();
    const fakes = new Map([[0, new FakeWorker()]]);
    const aggregator = new WorkerMetricsAggregator({ workers: () => fakes as never, expected: 1, setTimer: timer.setTimer });
    aggregator.attach(0, fakes.get(0)! as never);
    const collected = aggregator.collect();
    const metrics = JSON.parse(JSON.stringify([
      ...(await workerMetrics(2, 0).registry.getMetricsAsJSON()),
      { name: "lag", help: "h", type: "gauge", aggregator: "min", values: [{ value: Infinity, labels: {} }] },
    ]));
    fakes.get(0)!.emit("message", { type: "clipper:metrics-collected", id: fakes.get(0)!.sent[0]!.id, metrics });
    const text = await collected;
    expect(text).toMatch(/^lag nan$/im); // prom-client writes Nan
    expect(value(text, "clipper_app_requests_total", { app: "a" })).toBe(2);
  });

  it("answers at the deadline with the workers that answered, counting the silent one missing", async () => {
    const timer = manualTimer();
    const fakes = new Map([[0, new FakeWorker()], [1, new FakeWorker()]]);
    const aggregator = new WorkerMetricsAggregator({ workers: () => fakes as never, expected: 2, setTimer: timer.setTimer });
    for (const [index, worker] of fakes) aggregator.attach(index, worker as never);
    const collected = aggregator.collect();
    const request = fakes.get(0)!.sent[0]!;
    expect(request.type).toBe("clipper:metrics-collect");
    const metrics = await workerMetrics(3, 0).registry.getMetricsAsJSON();
    fakes.get(0)!.emit("message", { type: "clipper:metrics-collected", id: request.id, metrics });
    // Twice from the same worker, and from nobody asked: counted once.
    fakes.get(0)!.emit("message", { type: "clipper:metrics-collected", id: request.id, metrics });
    fakes.get(0)!.emit("message", { type: "clipper:metrics-collected", id: request.id + 7, metrics });
    timer.fire();
    const text = await collected;
    expect(value(text, "clipper_app_requests_total", { app: "a" })).toBe(3);
    expect(value(text, SCRAPED_WORKERS_METRIC, { state: "answered" })).toBe(1);
    expect(value(text, SCRAPED_WORKERS_METRIC, { state: "missing" })).toBe(1);
    // A registry arriving after the deadline changes nothing and throws nothing.
    fakes.get(1)!.emit("message", { type: "clipper:metrics-collected", id: request.id, metrics });
  });

  it("fails with the reason when no worker answers, and ignores a registry that is not one", async () => {
    const timer = manualTimer();
    const fakes = new Map([[0, new FakeWorker()]]);
    const aggregator = new WorkerMetricsAggregator({ workers: () => fakes as never, expected: 1, timeoutMs: 2000, setTimer: timer.setTimer });
    aggregator.attach(0, fakes.get(0)! as never);
    const collected = aggregator.collect();
    const id = fakes.get(0)!.sent[0]!.id;
    fakes.get(0)!.emit("message", { type: "clipper:metrics-collected", id, metrics: [{ name: "x", help: "", type: "gauge", aggregator: "nope", values: [] }] });
    fakes.get(0)!.emit("message", { type: "clipper:metrics-collected", id, metrics: "all of them" });
    timer.fire();
    await expect(collected).rejects.toThrow("no frontend worker sent its metrics within 2000 ms");
  });

  it("does not wait for a worker whose channel is closed", async () => {
    const fakes = new Map([[0, new FakeWorker()], [1, new FakeWorker()]]);
    fakes.get(1)!.connected = false;
    const aggregator = new WorkerMetricsAggregator({ workers: () => fakes as never, expected: 2, setTimer: () => () => undefined });
    for (const [index, worker] of fakes) aggregator.attach(index, worker as never);
    const collected = aggregator.collect();
    expect(fakes.get(1)!.sent).toHaveLength(0);
    const id = fakes.get(0)!.sent[0]!.id;
    fakes.get(0)!.emit("message", { type: "clipper:metrics-collected", id, metrics: await workerMetrics(2, 0).registry.getMetricsAsJSON() });
    const text = await collected;
    expect(value(text, SCRAPED_WORKERS_METRIC, { state: "missing" })).toBe(1);
  });

  it("a worker answers the primary's collect with its registry, and its scrape with the primary's answer or error", async () => {
    const channel = Object.assign(new EventEmitter(), {
      sent: [] as Array<{ type: string; id: number; metrics?: unknown[] }>,
      send(message: object, _h: unknown, _o: unknown, callback?: (err: Error | null) => void) {
        channel.sent.push(message as never);
        callback?.(null);
        return true;
      },
    });
    const client = new PrimaryMetricsClient(workerMetrics(1, 0).registry, channel as never);
    try {
      channel.emit("message", { type: "clipper:metrics-collect", id: 4 });
      await new Promise((resolve) => setImmediate(resolve));
      expect(channel.sent[0]).toMatchObject({ type: "clipper:metrics-collected", id: 4 });
      expect(channel.sent[0]!.metrics!.length).toBeGreaterThan(0);

      const ok = client.scrape();
      channel.emit("message", { type: "clipper:metrics-scraped", id: channel.sent[1]!.id, text: "x 1\n" });
      expect(await ok).toMatchObject({ ok: true, text: "x 1\n" });
      const failed = client.scrape();
      channel.emit("message", { type: "clipper:metrics-scraped", id: channel.sent[2]!.id, error: "no frontend worker sent its metrics" });
      expect(await failed).toEqual({ ok: false, reason: "the frontend's metrics could not be aggregated: no frontend worker sent its metrics" });
      // Stopping answers a scrape still waiting rather than leaving it to hang.
      const waiting = client.scrape();
      client.close();
      expect(await waiting).toEqual({ ok: false, reason: "the frontend worker is stopping" });
    } finally {
      client.close();
    }
  });
});
