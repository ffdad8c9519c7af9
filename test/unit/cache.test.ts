/**
 * The prediction cache without a server: storage and its byte bound, the model caller's shared calls
 * and deadlines (fake timers), invalidation, and the --cache-bytes flag the supervisor passes on.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { Registry } from "prom-client";
import { CacheMetrics } from "../../runtime/frontend/cache-metrics.js";
import type { Dispatcher, PredictTask } from "../../runtime/frontend/dispatcher.js";
import { ModelCaller, type CallOutcome, type ModelRef } from "../../runtime/frontend/model-caller.js";
import { defaultInputHash, ENTRY_OVERHEAD_BYTES, PredictionCache, type ModelCall } from "../../runtime/frontend/prediction-cache.js";
import type { ClusterState, ModelVersionRecord } from "../../runtime/shared/state.js";
import { pino } from "pino";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SupervisorConfigSchema } from "../../src/managers/local/schemas.js";
import { Supervisor } from "../../src/managers/local/supervisor.js";
import { DEFAULT_CLUSTER_OPTIONS } from "../../src/connection.js";

const M: ModelRef = { name: "m", version: "1" };
const bytes = (...xs: number[]) => Buffer.from(xs);

/** A dispatcher stand-in that records submissions; the test answers tasks itself. */
function fakeDispatcher(replicas = 1): { dispatcher: Dispatcher; tasks: PredictTask[] } {
  const tasks: PredictTask[] = [];
  const fake = {
    liveReplicaCount: () => replicas,
    submit: (_name: string, _version: string, task: PredictTask) => {
      tasks.push(task);
      return true;
    },
    retryAfterSeconds: () => 1,
  };
  return { dispatcher: fake as unknown as Dispatcher, tasks };
}

/** A model call that answers at once and counts how often it ran. */
function countingModel(answer: (input: Buffer) => CallOutcome = (i) => ({ kind: "output", output: `out:${i.toString("hex")}` })) {
  const seen: Buffer[] = [];
  const make = (input: Buffer): ModelCall => () => {
    seen.push(input);
    return Promise.resolve(answer(input));
  };
  return { seen, make };
}

function record(name: string, version: string, extra: Partial<ModelVersionRecord> = {}): ModelVersionRecord {
  return {
    model_name: name, model_version: version, labels: [], input_type: "bytes",
    container_name: "c", model_data_path: "p", batch_size: -1, ...extra,
  };
}

function state(revision: number, versions: ModelVersionRecord[]): ClusterState {
  const models: ClusterState["models"] = {};
  for (const v of versions) {
    const model = (models[v.model_name] ??= { name: v.model_name, current_version: v.model_version, versions: {} });
    model.versions[v.model_version] = v;
  }
  return { revision, applications: {}, models };
}

async function metricValue(registry: Registry, name: string, model?: string): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (metric?.values ?? []) as Array<{ value: number; labels: Record<string, string | number> }>;
  return values.find((v) => model === undefined || v.labels.model === model)?.value ?? 0;
}

afterEach(() => {
  vi.useRealTimers();
});

describe("prediction cache: storage", () => {
  it("stays within its byte bound, evicting the least recently used entry", async () => {
    const registry = new Registry();
    let cache!: PredictionCache;
    const metrics = new CacheMetrics(registry, () => ({ bytes: cache.bytes, entries: cache.entries, maxBytes: cache.maxBytes }));
    // Each entry: 8 input bytes + 8-char output and 19-char key (2 bytes a char) + overhead = 222 bytes.
    cache = new PredictionCache({ maxBytes: 1500, observer: metrics });
    const model = countingModel((i) => ({ kind: "output", output: i.toString("hex").slice(0, 8) }));
    const input = (n: number) => Buffer.alloc(8, n);
    for (let n = 0; n < 4; n++) {
      await cache.call(M, "bytes", input(n), Infinity, model.make(input(n)));
      expect(await metricValue(registry, "clipper_cache_bytes")).toBeLessThanOrEqual(1500);
    }
    expect(cache.entries).toBe(4);
    // Touch input 0 so input 1 is now the least recently used, then go past the bound.
    await cache.call(M, "bytes", input(0), Infinity, model.make(input(0)));
    expect(model.seen).toHaveLength(4);
    for (let n = 4; n < 12; n++) {
      await cache.call(M, "bytes", input(n), Infinity, model.make(input(n)));
      expect(cache.bytes).toBeLessThanOrEqual(1500);
      expect(await metricValue(registry, "clipper_cache_bytes")).toBeLessThanOrEqual(1500);
    }
    expect(await metricValue(registry, "clipper_cache_evictions_total", "m:1")).toBeGreaterThan(0);
    expect(await metricValue(registry, "clipper_cache_entries")).toBe(cache.entries);
    expect(await metricValue(registry, "clipper_cache_max_bytes")).toBe(1500);

    // A fresh cache shows the order: with room for N, the (N+1)th insert drops the least recent.
    const small = new PredictionCache({ maxBytes: 1500 });
    const m2 = countingModel((i) => ({ kind: "output", output: i.toString("hex").slice(0, 8) }));
    const call = (n: number) => small.call(M, "bytes", input(n), Infinity, m2.make(input(n)));
    let fit = 0;
    while (small.entries === fit) await call(fit++); // fills until an insert evicts
    const capacity = small.entries; // entries after the first eviction
    expect(capacity).toBe(fit - 1);
    m2.seen.length = 0;
    await call(0); // the oldest was evicted: a miss
    expect(m2.seen).toHaveLength(1);
    await call(fit - 1); // the newest is still there: a hit
    expect(m2.seen).toHaveLength(1);
  });

  it("does not store an entry larger than the whole bound", async () => {
    const cache = new PredictionCache({ maxBytes: ENTRY_OVERHEAD_BYTES + 100 });
    const model = countingModel(() => ({ kind: "output", output: "x".repeat(500) }));
    const input = bytes(1, 2, 3);
    await cache.call(M, "bytes", input, Infinity, model.make(input));
    await cache.call(M, "bytes", input, Infinity, model.make(input));
    expect(model.seen).toHaveLength(2);
    expect(cache.bytes).toBe(0);
  });

  it("never answers one input with another's output, even when their keys collide", async () => {
    const cache = new PredictionCache({ maxBytes: 1 << 20, hash: () => 7 });
    const model = countingModel();
    const a = bytes(1, 1, 1);
    const b = bytes(2, 2, 2);
    const ask = (x: Buffer) => cache.call(M, "bytes", x, Infinity, model.make(x));
    expect(await ask(a)).toEqual({ kind: "output", output: "out:010101" });
    expect(await ask(b)).toEqual({ kind: "output", output: "out:020202" });
    expect(await ask(a)).toEqual({ kind: "output", output: "out:010101" });
    expect(await ask(a)).toEqual({ kind: "output", output: "out:010101", cached: true }); // now a hit
    expect(model.seen.map((x) => x.toString("hex"))).toEqual(["010101", "020202", "010101"]);
    // Colliding inputs in flight at once do not share a call either.
    const [ra, rb] = await Promise.all([ask(bytes(3)), ask(bytes(4))]);
    expect(ra).toEqual({ kind: "output", output: "out:03" });
    expect(rb).toEqual({ kind: "output", output: "out:04" });
  });

  it("keys by model version and input type as well as the input", async () => {
    const cache = new PredictionCache({ maxBytes: 1 << 20 });
    const model = countingModel();
    const x = bytes(9);
    await cache.call(M, "bytes", x, Infinity, model.make(x));
    await cache.call({ name: "m", version: "2" }, "bytes", x, Infinity, model.make(x));
    await cache.call(M, "strings", x, Infinity, model.make(x));
    await cache.call(M, "bytes", x, Infinity, model.make(x));
    expect(model.seen).toHaveLength(3);
  });

  it("keeps model versions and input types apart when every key collides, in storage, in flight and on invalidation", async () => {
    const cache = new PredictionCache({ maxBytes: 1 << 20, hash: () => 7 });
    const model = countingModel();
    const x = bytes(9);
    const M2: ModelRef = { name: "m", version: "2" };
    const ask = (ref: ModelRef, type: "bytes" | "strings") => cache.call(ref, type, x, Infinity, model.make(x));
    // At once: all three in flight, none may join another's call.
    await Promise.all([ask(M, "bytes"), ask(M2, "bytes"), ask(M, "strings")]);
    expect(model.seen).toHaveLength(3);
    // One slot per key: the last stored holds it, and only its own query hits.
    expect(cache.lookup(M, "strings", x)).toEqual({ kind: "output", output: "out:09", cached: true });
    expect(cache.lookup(M, "bytes", x)).toBeUndefined();
    expect(cache.lookup(M2, "bytes", x)).toBeUndefined();
    await ask(M, "bytes");
    expect(cache.lookup(M2, "bytes", x)).toBeUndefined(); // same input and type, another version
    expect(cache.lookup(M, "strings", x)).toBeUndefined();
    await ask(M2, "bytes");
    expect(cache.invalidate("m", "1")).toBe(0); // the slot is version 2's now
    expect(cache.lookup(M2, "bytes", x)).toEqual({ kind: "output", output: "out:09", cached: true });
    expect(cache.invalidate("m", "2")).toBe(1);
    expect(cache.entries).toBe(0);
  });

  it("starts over when its hash seeds run out, and still answers each version only its own outputs", async () => {
    const cache = new PredictionCache({ maxBytes: 1 << 20, maxSeeds: 2 });
    const x = bytes(5);
    const ask = (version: string) => cache.call({ name: "m", version }, "bytes", x, Infinity, async () => ({ kind: "output", output: `v${version}` }));
    await ask("1");
    await ask("2");
    expect(cache.entries).toBe(2);
    await ask("3"); // a third seed: everything goes, then version 3 is stored
    expect(cache.entries).toBe(1);
    expect(cache.lookup({ name: "m", version: "1" }, "bytes", x)).toBeUndefined();
    expect(cache.lookup({ name: "m", version: "3" }, "bytes", x)).toEqual({ kind: "output", output: "v3", cached: true });
    await ask("1"); // seeded again, next to version 3
    expect(cache.lookup({ name: "m", version: "1" }, "bytes", x)).toEqual({ kind: "output", output: "v1", cached: true });
    expect(cache.lookup({ name: "m", version: "3" }, "bytes", x)).toEqual({ kind: "output", output: "v3", cached: true });
  });

  it("hashes into safe integers that tell apart seeds, single bytes, lengths and word order", () => {
    const inputs = [bytes(), bytes(0), bytes(0, 0), bytes(0, 0, 0, 0), bytes(0, 0, 0, 0, 0), bytes(1, 0, 0, 0), bytes(0, 0, 0, 1),
      bytes(1, 2, 3, 4, 5, 6, 7, 8), bytes(5, 6, 7, 8, 1, 2, 3, 4), Buffer.alloc(2000), Buffer.alloc(2001), Buffer.alloc(2000, 1)];
    const seen = new Set<number>();
    for (const seed of [0, 1, 1 << 19]) {
      for (const input of inputs) {
        const h = defaultInputHash(seed, input);
        expect(Number.isSafeInteger(h) && h >= 0).toBe(true);
        expect(defaultInputHash(seed, Buffer.from(input))).toBe(h); // a function of the bytes, not the buffer
        seen.add(h);
      }
    }
    expect(seen.size).toBe(3 * inputs.length);
    // A view into a larger buffer at an odd offset hashes as its own bytes.
    const pooled = Buffer.from([9, 1, 2, 3, 4, 5, 6, 7, 8]).subarray(1);
    expect(defaultInputHash(0, pooled)).toBe(defaultInputHash(0, bytes(1, 2, 3, 4, 5, 6, 7, 8)));
  });

  it("forgets the answers of one replica (a banned one) and keeps the others'", async () => {
    const cache = new PredictionCache({ maxBytes: 1 << 20 });
    const from = (replica: string, output: string): ModelCall => async () => ({ kind: "output", output, replica });
    await cache.call(M, "bytes", bytes(1), Infinity, from("liar", "666"));
    await cache.call(M, "bytes", bytes(2), Infinity, from("liar", "666"));
    await cache.call(M, "bytes", bytes(3), Infinity, from("honest", "3"));
    expect(cache.evictReplica("liar")).toBe(2);
    expect(cache.entries).toBe(1);
    const fresh = countingModel();
    expect(await cache.call(M, "bytes", bytes(1), Infinity, fresh.make(bytes(1)))).toMatchObject({ output: "out:01" });
    expect(await cache.call(M, "bytes", bytes(3), Infinity, fresh.make(bytes(3)))).toMatchObject({ output: "3" });
    expect(fresh.seen).toHaveLength(1);
    expect(cache.evictReplica("nobody")).toBe(0);
  });

  it("keeps its own copy of the input (a caller reusing its buffer cannot corrupt an entry)", async () => {
    const cache = new PredictionCache({ maxBytes: 1 << 20 });
    const model = countingModel();
    const x = bytes(5, 5);
    await cache.call(M, "bytes", x, Infinity, model.make(bytes(5, 5)));
    x.fill(6);
    expect(await cache.call(M, "bytes", bytes(5, 5), Infinity, model.make(bytes(5, 5)))).toEqual({ kind: "output", output: "out:0505", cached: true });
    expect(model.seen).toHaveLength(1);
  });

  it("caches large inputs (digest-keyed) with the same equality check", async () => {
    const cache = new PredictionCache({ maxBytes: 1 << 20 });
    const model = countingModel(() => ({ kind: "output", output: "big" }));
    const big = Buffer.alloc(150_000, 7);
    await cache.call(M, "bytes", big, Infinity, model.make(big));
    await cache.call(M, "bytes", Buffer.from(big), Infinity, model.make(big));
    const other = Buffer.from(big);
    other[149_999] = 8;
    await cache.call(M, "bytes", other, Infinity, model.make(other));
    expect(model.seen).toHaveLength(2);
  });

  it("refuses a bound that is not a positive integer (0 means: no cache at all)", () => {
    expect(() => new PredictionCache({ maxBytes: 0 })).toThrow(RangeError);
    expect(() => new PredictionCache({ maxBytes: -1 })).toThrow(RangeError);
  });
});

describe("prediction cache through the model caller", () => {
  it("shares one dispatcher submission between identical calls in flight, then answers hits without it", async () => {
    const { dispatcher, tasks } = fakeDispatcher();
    const registry = new Registry();
    let cache!: PredictionCache;
    const metrics = new CacheMetrics(registry, () => ({ bytes: cache.bytes, entries: cache.entries, maxBytes: cache.maxBytes }));
    cache = new PredictionCache({ maxBytes: 1 << 20, observer: metrics });
    const caller = new ModelCaller({ dispatcher, cache });
    const deadline = performance.now() + 10_000;
    const first = caller.call(M, "doubles", bytes(1, 2), deadline);
    const second = caller.call(M, "doubles", bytes(1, 2), deadline);
    expect(tasks).toHaveLength(1);
    tasks[0]!.resolve({ ok: true, output: "3.0" });
    expect(await first).toEqual({ kind: "output", output: "3.0" });
    expect(await second).toEqual({ kind: "output", output: "3.0" });
    expect(await caller.call(M, "doubles", bytes(1, 2), deadline)).toEqual({ kind: "output", output: "3.0", cached: true });
    expect(tasks).toHaveLength(1);
    expect(await metricValue(registry, "clipper_cache_misses_total", "m:1")).toBe(1);
    expect(await metricValue(registry, "clipper_cache_inflight_joins_total", "m:1")).toBe(1);
    expect(await metricValue(registry, "clipper_cache_hits_total", "m:1")).toBe(1);
  });

  it("answers a hit without a timer or the dispatcher, and not for a version scaled to zero", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const { dispatcher, tasks } = fakeDispatcher();
    const cache = new PredictionCache({ maxBytes: 1 << 20, now: () => Date.now() });
    const caller = new ModelCaller({ dispatcher, cache, now: () => Date.now() });
    const pending = caller.call(M, "bytes", bytes(7), Date.now() + 100);
    tasks[0]!.resolve({ ok: true, output: "seven" });
    await pending;
    // No timers are advanced: the answer arrives on promise resolution alone.
    expect(await caller.call(M, "bytes", bytes(7), Date.now() + 100)).toEqual({ kind: "output", output: "seven", cached: true });
    expect(tasks).toHaveLength(1);
    // With no replica the version has no model, so Clipper's "no connected models" wins over the cache.
    const noReplica = new ModelCaller({ dispatcher: fakeDispatcher(0).dispatcher, cache, now: () => Date.now() });
    expect(await noReplica.call(M, "bytes", bytes(7), Date.now() + 100)).toEqual({ kind: "unavailable" });
  });

  it("lets a joiner with an earlier deadline time out while the shared call goes on for the starter", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const now = () => Date.now();
    const { dispatcher, tasks } = fakeDispatcher();
    const cache = new PredictionCache({ maxBytes: 1 << 20, now });
    const caller = new ModelCaller({ dispatcher, cache, now });
    const t0 = now();
    const settledAt: Record<string, number> = {};
    const starter = caller.call(M, "bytes", bytes(1), t0 + 100).then((o) => ((settledAt.starter = now()), o));
    const joiner = caller.call(M, "bytes", bytes(1), t0 + 50).then((o) => ((settledAt.joiner = now()), o));
    expect(tasks).toHaveLength(1);
    expect(tasks[0]!.deadline).toBe(t0 + 100); // submitted under the starter's deadline
    await vi.advanceTimersByTimeAsync(50);
    expect(await joiner).toEqual({ kind: "timeout" });
    expect(settledAt.joiner).toBe(t0 + 50);
    expect(settledAt.starter).toBeUndefined();
    await vi.advanceTimersByTimeAsync(30);
    tasks[0]!.resolve({ ok: true, output: "late but in time" });
    expect(await starter).toEqual({ kind: "output", output: "late but in time" });
    expect(settledAt.starter).toBe(t0 + 80);
    expect(tasks).toHaveLength(1);
  });

  it("never holds a joiner past its deadline, nor submits a second call for it", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const now = () => Date.now();
    const { dispatcher, tasks } = fakeDispatcher();
    const cache = new PredictionCache({ maxBytes: 1 << 20, now });
    const caller = new ModelCaller({ dispatcher, cache, now });
    const t0 = now();
    const settledAt: number[] = [];
    const starter = caller.call(M, "bytes", bytes(2), t0 + 100).then((o) => (settledAt.push(now()), o));
    await vi.advanceTimersByTimeAsync(10);
    const late = caller.call(M, "bytes", bytes(2), t0 + 300).then((o) => (settledAt.push(now()), o));
    const expired = caller.call(M, "bytes", bytes(2), t0 - 1).then((o) => (settledAt.push(now()), o));
    await vi.advanceTimersByTimeAsync(0);
    expect(await expired).toEqual({ kind: "timeout" }); // a deadline already past: answered at once
    await vi.advanceTimersByTimeAsync(90);
    expect(await starter).toEqual({ kind: "timeout" });
    expect(await late).toEqual({ kind: "timeout" }); // the shared call ran out at the starter's deadline
    expect(Math.max(...settledAt)).toBeLessThanOrEqual(t0 + 100);
    expect(tasks).toHaveLength(1);
    tasks[0]!.resolve({ ok: true, output: "too late" }); // ignored: the task was settled
    // A timeout is not cached: the next identical query is a new call.
    const again = caller.call(M, "bytes", bytes(2), now() + 100);
    expect(tasks).toHaveLength(2);
    tasks[1]!.resolve({ ok: true, output: "two" });
    expect(await again).toEqual({ kind: "output", output: "two" });
  });

  it("does not cache failures, timeouts or unavailable answers", async () => {
    const { dispatcher, tasks } = fakeDispatcher();
    const cache = new PredictionCache({ maxBytes: 1 << 20 });
    const caller = new ModelCaller({ dispatcher, cache });
    const failing = caller.call(M, "bytes", bytes(3), performance.now() + 10_000);
    tasks[0]!.resolve({ ok: false, reason: "ValueError" });
    expect(await failing).toEqual({ kind: "failed", reason: "ValueError" });
    const retry = caller.call(M, "bytes", bytes(3), performance.now() + 10_000);
    expect(tasks).toHaveLength(2);
    tasks[1]!.resolve({ ok: true, output: "ok" });
    expect(await retry).toEqual({ kind: "output", output: "ok" });

    const down = new ModelCaller({ dispatcher: fakeDispatcher(0).dispatcher, cache });
    expect(await down.call(M, "bytes", bytes(4), performance.now() + 10_000)).toEqual({ kind: "unavailable" });
    expect(cache.entries).toBe(1);

    // Shed at admission (the dispatcher refused the task): shared with a joiner, not stored.
    const shedding = fakeDispatcher();
    shedding.dispatcher.submit = (_n: string, _v: string, task: PredictTask) => (shedding.tasks.push(task), false);
    // A refusal is answered at the deadline (model-caller.ts): timers that fire at once, not 10 s of waiting.
    const immediate = { setTimeout: (callback: () => void) => setImmediate(callback), clearTimeout: (handle: unknown) => clearImmediate(handle as NodeJS.Immediate) };
    const busy = new ModelCaller({ dispatcher: shedding.dispatcher, cache, timers: immediate });
    const shed = await Promise.all([0, 1].map(() => busy.call(M, "bytes", bytes(6), performance.now() + 10_000)));
    expect(shed.map((o) => o.kind)).toEqual(["shed", "shed"]);
    await busy.call(M, "bytes", bytes(6), performance.now() + 10_000);
    expect(shedding.tasks).toHaveLength(2);
    expect(cache.entries).toBe(1);

    const model = countingModel(() => ({ kind: "timeout" }));
    await cache.call(M, "bytes", bytes(5), Infinity, model.make(bytes(5)));
    await cache.call(M, "bytes", bytes(5), Infinity, model.make(bytes(5)));
    expect(model.seen).toHaveLength(2);
    expect(cache.entries).toBe(1);
  });

  it("without a cache, every call is its own submission", async () => {
    const { dispatcher, tasks } = fakeDispatcher();
    const caller = new ModelCaller({ dispatcher });
    const a = caller.call(M, "bytes", bytes(1), performance.now() + 10_000);
    const b = caller.call(M, "bytes", bytes(1), performance.now() + 10_000);
    expect(tasks).toHaveLength(2);
    for (const t of tasks) t.resolve({ ok: true, output: "x" });
    await Promise.all([a, b]);
    const c = caller.call(M, "bytes", bytes(1), performance.now() + 10_000);
    expect(tasks).toHaveLength(3);
    tasks[2]!.resolve({ ok: true, output: "x" });
    await c;
  });
});

describe("prediction cache: invalidation", () => {
  it("drops a version's entries on invalidate, and nothing else", async () => {
    const registry = new Registry();
    let cache!: PredictionCache;
    const metrics = new CacheMetrics(registry, () => ({ bytes: cache.bytes, entries: cache.entries, maxBytes: cache.maxBytes }));
    cache = new PredictionCache({ maxBytes: 1 << 20, observer: metrics });
    const model = countingModel();
    const v2: ModelRef = { name: "m", version: "2" };
    const other: ModelRef = { name: "m:1", version: "x" }; // a label prefix look-alike
    for (const ref of [M, v2, other]) await cache.call(ref, "bytes", bytes(1), Infinity, model.make(bytes(1)));
    await cache.call(M, "bytes", bytes(2), Infinity, model.make(bytes(2)));
    expect(cache.invalidate("m", "1")).toBe(2);
    expect(await metricValue(registry, "clipper_cache_invalidated_entries_total", "m:1")).toBe(2);
    model.seen.length = 0;
    for (const ref of [M, v2, other]) await cache.call(ref, "bytes", bytes(1), Infinity, model.make(bytes(1)));
    expect(model.seen).toHaveLength(1); // only m:1 was asked again
  });

  it("drops entries when a version leaves the configuration or is registered again", async () => {
    const cache = new PredictionCache({ maxBytes: 1 << 20 });
    const model = countingModel();
    const ask = (ref: ModelRef) => cache.call(ref, "bytes", bytes(1), Infinity, model.make(bytes(1)));
    const a1 = record("a", "1");
    const b1 = record("b", "1");
    cache.reconcile(state(1, [a1, b1]));
    await ask({ name: "a", version: "1" });
    await ask({ name: "b", version: "1" });
    expect(cache.entries).toBe(2);

    // Same records in a new snapshot (parsed afresh: new objects, same content): nothing dropped.
    cache.reconcile(state(2, [{ ...a1 }, { ...b1 }]));
    expect(cache.entries).toBe(2);

    // a:1 deleted.
    cache.reconcile(state(3, [b1]));
    expect(cache.entries).toBe(1);
    await ask({ name: "b", version: "1" });
    expect(model.seen).toHaveLength(2);

    // b:1 deleted and registered again between two snapshots we saw (its record changed).
    cache.reconcile(state(4, [a1, record("b", "1", { model_data_path: "p2" })]));
    expect(cache.entries).toBe(0);
    await ask({ name: "b", version: "1" });
    expect(model.seen).toHaveLength(3);
  });

  it("on a delta compares only the changed models' versions, and falls back to the whole state after a gap", async () => {
    const cache = new PredictionCache({ maxBytes: 1 << 20 });
    const model = countingModel();
    const ask = (name: string, version: string) => cache.call({ name, version }, "bytes", bytes(1), Infinity, model.make(bytes(1)));
    const a1 = record("a", "1");
    const b1 = record("b", "1");
    const before = state(1, [a1, b1]);
    cache.reconcile(before);
    await ask("a", "1");
    await ask("b", "1");
    // Delta 1 -> 2 names model a (version 2 added, version 1 the same record parsed afresh): nothing dropped.
    const a2 = state(2, [{ ...a1 }, record("a", "2"), b1]);
    cache.reconcileModels(a2, new Map([["a", before.models.a]]));
    expect(cache.entries).toBe(2);
    // Delta 2 -> 3: a:1 registered again with another record; b unnamed, so untouched.
    const a3 = state(3, [record("a", "1", { model_data_path: "p2" }), record("a", "2"), b1]);
    cache.reconcileModels(a3, new Map([["a", a2.models.a]]));
    expect(cache.entries).toBe(1);
    await ask("b", "1");
    expect(model.seen).toHaveLength(2);
    // Delta 3 -> 4: model b deleted.
    cache.reconcileModels(state(4, [record("a", "1", { model_data_path: "p2" })]), new Map([["b", a3.models.b]]));
    expect(cache.entries).toBe(0);
    await ask("a", "1");
    expect(cache.entries).toBe(1);
    // A revision that does not follow: reconciled against the whole state (revision gap: all dropped).
    cache.reconcileModels(state(9, [record("a", "1", { model_data_path: "p2" })]), new Map());
    expect(cache.entries).toBe(0);
  });

  it("drops everything when snapshots were missed (a revision gap)", async () => {
    const cache = new PredictionCache({ maxBytes: 1 << 20 });
    const model = countingModel();
    const a1 = record("a", "1");
    cache.reconcile(state(1, [a1]));
    await cache.call({ name: "a", version: "1" }, "bytes", bytes(1), Infinity, model.make(bytes(1)));
    await cache.call({ name: "b", version: "1" }, "bytes", bytes(1), Infinity, model.make(bytes(1)));
    let answer!: (o: CallOutcome) => void;
    const inFlight = cache.call({ name: "a", version: "1" }, "bytes", bytes(2), Infinity, () => new Promise((r) => (answer = r)));
    cache.reconcile(state(5, [a1])); // same record, but 2..4 were never seen: it may have been re-registered
    expect(cache.entries).toBe(0);
    expect(cache.inFlight).toBe(0);
    answer({ kind: "output", output: "from before" });
    await inFlight;
    expect(cache.entries).toBe(0); // the detached call's answer is not stored
  });

  it("does not store the answer of a call that was in flight when its version was invalidated", async () => {
    const { dispatcher, tasks } = fakeDispatcher();
    const cache = new PredictionCache({ maxBytes: 1 << 20 });
    const caller = new ModelCaller({ dispatcher, cache });
    const deadline = performance.now() + 10_000;
    const old = caller.call(M, "bytes", bytes(1), deadline);
    cache.invalidate("m", "1");
    const fresh = caller.call(M, "bytes", bytes(1), deadline); // does not join the old call
    expect(tasks).toHaveLength(2);
    tasks[0]!.resolve({ ok: true, output: "old" });
    expect(await old).toEqual({ kind: "output", output: "old" });
    expect(cache.entries).toBe(0);
    tasks[1]!.resolve({ ok: true, output: "new" });
    expect(await fresh).toEqual({ kind: "output", output: "new" });
    expect(await caller.call(M, "bytes", bytes(1), deadline)).toEqual({ kind: "output", output: "new", cached: true });
    expect(tasks).toHaveLength(2);
  });
});

describe("--cache-bytes from ClusterOptions to the frontend", () => {
  function frontendArgv(cacheBytes: number | undefined): string[] {
    const options = { ...DEFAULT_CLUSTER_OPTIONS, cluster: "c", cacheBytes };
    const config = SupervisorConfigSchema.parse({ cluster: "c", clusterDir: join(tmpdir(), "clipper-cache-argv"), options });
    return new Supervisor(config, { log: pino({ level: "silent" }), exit: () => undefined }).frontendArgv();
  }

  it("passes the bound (64 MiB by default, 0 to disable) as --cache-bytes", () => {
    expect(DEFAULT_CLUSTER_OPTIONS.cacheBytes).toBe(64 * 1024 * 1024);
    const argv = frontendArgv(0);
    expect(argv[argv.indexOf("--cache-bytes") + 1]).toBe("0");
    const dflt = frontendArgv(DEFAULT_CLUSTER_OPTIONS.cacheBytes);
    expect(dflt[dflt.indexOf("--cache-bytes") + 1]).toBe(String(64 * 1024 * 1024));
    expect(frontendArgv(undefined)).not.toContain("--cache-bytes"); // the frontend's own default applies
    expect(() => SupervisorConfigSchema.parse({
      cluster: "c", clusterDir: join(tmpdir(), "x"), options: { ...DEFAULT_CLUSTER_OPTIONS, cacheBytes: -1 },
    })).toThrow();
  });
});
