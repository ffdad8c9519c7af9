/**
 * QueryProcessor.answerNow, the synchronous half of a predict: it answers (with no promise) exactly
 * the queries the prediction cache answers for a connected version, and leaves every other query to
 * the asynchronous path, counting nothing for them. A real Dispatcher on a fake clock and RPC side
 * (test/support/fake-dispatch.ts); test/cache-fast-path.test.ts covers a running frontend.
 */
import { describe, expect, it } from "vitest";
import { CacheMetrics } from "../../runtime/frontend/cache-metrics.js";
import { FrontendMetrics } from "../../runtime/frontend/metrics.js";
import { ModelCaller } from "../../runtime/frontend/model-caller.js";
import { PredictionCache } from "../../runtime/frontend/prediction-cache.js";
import { QueryProcessor } from "../../runtime/frontend/query-processor.js";
import { dict } from "../../runtime/shared/dict.js";
import { emptyState } from "../../runtime/shared/state.js";
import { metricValue } from "../../bench/lib/metrics.js";
import { harness } from "../support/fake-dispatch.js";
import { appRecord, versionRecord } from "../support/state-fixtures.js";

function setup(options: { scalesFromZero?: boolean } = {}) {
  const h = harness();
  const state = emptyState();
  state.applications.app = { ...appRecord("app", ["m"]), latency_slo_micros: 100_000 };
  state.applications.ensemble = { ...appRecord("ensemble", ["m"]), latency_slo_micros: 100_000, policy: { name: "ensemble" } };
  state.models.m = { name: "m", current_version: "1", versions: dict([["1", versionRecord("m", "1")]]) };
  const metrics = new FrontendMetrics({ queueDepths: () => new Map(), replicaCounts: () => new Map() });
  const cache = new PredictionCache({ maxBytes: 1 << 20, observer: new CacheMetrics(metrics.registry, () => ({ bytes: 0, entries: 0, maxBytes: 1 << 20 })) });
  const caller = new ModelCaller({ dispatcher: h.dispatcher, cache, now: h.clock.now, timers: h.clock, scalesFromZero: () => options.scalesFromZero === true });
  const processor = new QueryProcessor({ caller, metrics, state: () => state, now: h.clock.now });
  const count = async (name: string, labels: Record<string, string>) => metricValue(await metrics.registry.metrics(), name, labels);
  /** Asks the model through the asynchronous path and answers its batch, so the input is cached. */
  async function warm(input: number[]): Promise<void> {
    const pending = processor.predict("app", { input });
    h.answer(h.sent.at(-1)!);
    await pending;
  }
  return { h, processor, count, warm };
}

describe("QueryProcessor.answerNow", () => {
  it("answers a cached input at once, as predict does, and counts the hit, the query and its latency", async () => {
    const { h, processor, count, warm } = setup();
    h.dispatcher.replicaAdded(h.replica(0));
    expect(processor.answerNow(processor.prepare("app", { input: [3] }))).toBeUndefined(); // not cached yet
    expect(await count("clipper_cache_misses_total", { model: "m:1" })).toBe(0); // a lookup that missed counts nothing
    await warm([3]);
    expect(await count("clipper_cache_misses_total", { model: "m:1" })).toBe(1);

    h.clock.t += 2;
    const now = processor.answerNow(processor.prepare("app", { input: [3] }));
    expect(now).toEqual({ query_id: 1, output: 3, default: false });
    const later = await processor.predict("app", { input: [3] });
    expect(later).toEqual({ query_id: 2, output: 3, default: false });
    expect(h.sent).toHaveLength(1);
    expect(await count("clipper_cache_hits_total", { model: "m:1" })).toBe(2);
    expect(await count("clipper_app_requests_total", { app: "app" })).toBe(3);
    expect(await count("clipper_app_request_latency_seconds_count", { app: "app" })).toBe(3);
  });

  it("leaves to the asynchronous path several inputs, another policy, and a version with no replica", async () => {
    const { h, processor, count, warm } = setup({ scalesFromZero: true });
    h.dispatcher.replicaAdded(h.replica(0));
    await warm([4]);
    expect(processor.answerNow(processor.prepare("app", { input_batch: [[4], [4]] }))).toBeUndefined();
    expect(processor.answerNow(processor.prepare("ensemble", { input: [4] }))).toBeUndefined();
    // At zero, a query first takes its place in the bounded wait for a replica (model-caller.ts).
    h.dispatcher.replicaRemoved(h.sent[0]!.replica);
    expect(processor.answerNow(processor.prepare("app", { input: [4] }))).toBeUndefined();
    expect(await count("clipper_cache_hits_total", { model: "m:1" })).toBe(0);
    expect(await count("clipper_app_requests_total", { app: "app" })).toBe(1);
  });

  it("throws what predict rejects with, before counting anything", async () => {
    const { h, processor, count, warm } = setup();
    h.dispatcher.replicaAdded(h.replica(0));
    await warm([5]);
    expect(() => processor.answerNow(processor.prepare("app", { input: [5], version: "9" }))).toThrow("Requested version: 9 does not exist for model: m");
    await expect(processor.predict("app", { input: [5], version: "9" })).rejects.toThrow("Requested version: 9 does not exist for model: m");
    expect(await count("clipper_cache_hits_total", { model: "m:1" })).toBe(0);
    expect(await count("clipper_app_requests_total", { app: "app" })).toBe(1);
  });
});

describe("QueryProcessor.answerNowJson", () => {
  /** A processor whose cache holds `output` for input [1] of app "app" (model m:1, one replica). */
  async function cachedOutput(output: string) {
    const h = harness();
    const state = emptyState();
    state.applications.app = { ...appRecord("app", ["m"]), latency_slo_micros: 100_000 };
    state.models.m = { name: "m", current_version: "1", versions: dict([["1", versionRecord("m", "1")]]) };
    const metrics = new FrontendMetrics({ queueDepths: () => new Map(), replicaCounts: () => new Map() });
    const cache = new PredictionCache({ maxBytes: 1 << 20 });
    const caller = new ModelCaller({ dispatcher: h.dispatcher, cache, now: h.clock.now, timers: h.clock });
    h.dispatcher.replicaAdded(h.replica(0));
    await cache.call({ name: "m", version: "1" }, "doubles", Buffer.from(new Float64Array([1]).buffer), Infinity, async () => ({ kind: "output", output }));
    const processor = new QueryProcessor({ caller, metrics, state: () => state, now: h.clock.now });
    return { processor, metrics };
  }

  it("sends the bytes JSON.stringify gives answerNow's answer, whatever the output, and counts alike", async () => {
    const outputs = ["8", " [1, 2.50, {\"a\": null}] ", "not json", "\"quoted\"", "1e400", "{\"query_id\":7}", "\u2028\ud800", "x".repeat(2000), ""];
    for (const output of outputs) {
      const json = await cachedOutput(output);
      const object = await cachedOutput(output);
      for (let i = 0; i < 2; i++) { // the second time from the remembered tail
        const text = json.processor.answerNowJson(json.processor.prepare("app", { input: [1] }));
        expect(text).toBe(JSON.stringify(object.processor.answerNow(object.processor.prepare("app", { input: [1] }))));
      }
      const ours = async (m: FrontendMetrics) => (await m.registry.metrics()).split("\n").filter((line) => line.startsWith("clipper_app_")).join("\n");
      expect(await ours(json.metrics)).toBe(await ours(object.metrics));
      expect(metricValue(await json.metrics.registry.metrics(), "clipper_app_requests_total", { app: "app" })).toBe(2);
    }
  });

  it("is undefined, counting nothing, where answerNow is; a default answer is its JSON", async () => {
    const { processor, metrics } = await cachedOutput("8");
    expect(processor.answerNowJson(processor.prepare("app", { input: [2] }))).toBeUndefined();
    expect(processor.answerNowJson(processor.prepare("app", { input_batch: [[1], [1]] }))).toBeUndefined();
    expect(metricValue(await metrics.registry.metrics(), "clipper_app_requests_total", { app: "app" })).toBe(0);
    const state = emptyState();
    state.applications.lonely = appRecord("lonely", []);
    const lonely = new QueryProcessor({ caller: {} as ModelCaller, metrics: new FrontendMetrics({ queueDepths: () => new Map(), replicaCounts: () => new Map() }), state: () => state });
    expect(JSON.parse(lonely.answerNowJson(lonely.prepare("lonely", { input: [1] }))!)).toMatchObject({ query_id: 0, output: -1, default: true });
  });
});
