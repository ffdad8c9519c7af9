/**
 * The autoscaler loop and its signals, with an in-memory admin source and scaler and a scripted
 * clock: aggregation over frontends (stale samples ignored), routing by current version, a scale-up
 * under sustained queueing and the slow way back down, failures that record nothing and stop
 * nothing; replica counts asked for through the admin API, applied once each and race-free. The loop
 * hosted by a real supervisor is in test/autoscale-e2e.test.ts.
 */
import { describe, expect, it } from "vitest";
import { type AutoscaleEventInput, type AutoscalingConfig, scaleRequestCompletion } from "../../runtime/shared/autoscaling.js";
import type { LiveStats, LiveStatsSample } from "../../runtime/shared/live-stats.js";
import { AutoscaleLoop, type AutoscaleSource } from "../../src/autoscaler/loop.js";
import { firstReadyAt, versionSignals } from "../../src/autoscaler/signals.js";
import { ScaleRequests } from "../../runtime/management/scale-requests.js";
import { dict } from "../../runtime/shared/dict.js";
import { consistent } from "../support/state-fixtures.js";

const T0 = 1_800_000_000_000;

function sample(at: number, queue: number, replicas: number, answers = { model: 10, shed: 0, default: [] as { reason: string; count: number }[] }, p99: number | null = 50): LiveStatsSample {
  return {
    at, interval_ms: 2000,
    apps: [{ app: "app", requests_per_s: 5, p50_ms: 20, p99_ms: p99, slo_ms: 2000, answers }],
    versions: [{
      model_name: "m", model_version: "1", queue_depth: queue, cache_hits: 0, cache_misses: 0,
      replicas: Array.from({ length: replicas }, (_, i) => ({ replica_id: i, batch_size: 1, batch_cap: 1 })),
    }],
  };
}

const stats = (...frontends: LiveStatsSample[][]): LiveStats => ({
  interval_ms: 2000, frontends: frontends.map((samples, i) => ({ frontend_id: `f${i}`, samples })),
});

describe("firstReadyAt", () => {
  it("is the earliest sample at or after the scale that shows a replica, over every frontend", () => {
    const s = stats(
      [sample(T0 - 2000, 0, 1), sample(T0, 0, 0), sample(T0 + 2000, 0, 0), sample(T0 + 4000, 0, 1)],
      [sample(T0 + 1000, 0, 0), sample(T0 + 3000, 0, 1), sample(T0 + 5000, 0, 1)],
    );
    expect(firstReadyAt(s, "m", "1", T0)).toBe(T0 + 3000);
    expect(firstReadyAt(s, "m", "2", T0)).toBeUndefined();
    expect(firstReadyAt(s, "m", "1", T0 + 6000)).toBeUndefined();
  });
});

describe("versionSignals", () => {
  it("adds queues over frontends, takes the best-connected count, and ignores stale samples", () => {
    const s = versionSignals({
      model: "m", version: "1", apps: [{ name: "app", sloMs: 2000 }], replicas: 2, now: T0,
      stats: stats([sample(T0 - 1000, 6, 2)], [sample(T0 - 500, 4, 1)], [sample(T0 - 60_000, 100, 9)]),
    });
    expect(s).toMatchObject({ at: T0, replicas: 2, readyReplicas: 2, queueDepth: 10, requestsPerS: 10, degradedShare: 0, p99Ms: 50, sloMs: 2000 });
  });

  it("counts shed and default answers of the routed apps only as degraded", () => {
    const degraded = sample(T0, 0, 1, { model: 6, shed: 2, default: [{ reason: "slo_missed", count: 2 }] });
    const routed = versionSignals({ model: "m", version: "1", apps: [{ name: "app", sloMs: 100 }], replicas: 1, now: T0, stats: stats([degraded]) });
    expect(routed.degradedShare).toBeCloseTo(0.4);
    const notRouted = versionSignals({ model: "m", version: "1", apps: [], replicas: 1, now: T0, stats: stats([degraded]) });
    expect(notRouted).toMatchObject({ degradedShare: 0, requestsPerS: 0 });
    expect(notRouted.sloMs).toBeUndefined();
  });

  it("counts answers from the prediction cache as served, not degraded (older frontends send no cache count)", () => {
    const withCache = sample(T0, 0, 1, { model: 2, cache: 4, shed: 2, default: [{ reason: "slo_missed", count: 2 }] } as never);
    const s = versionSignals({ model: "m", version: "1", apps: [{ name: "app", sloMs: 100 }], replicas: 1, now: T0, stats: stats([withCache]) });
    expect(s.degradedShare).toBeCloseTo(0.4);
  });
});

/**
 * A cluster in memory: one autoscaled version whose queue the test sets. Replicas connect as soon
 * as they are asked for, unless the test holds the connected count (`setConnected`).
 */
function cluster(config: AutoscalingConfig, current = true, initialReplicas = 1) {
  let now = T0;
  let queue = 0;
  let replicas = initialReplicas;
  let connected: number | undefined;
  let autoscaled = true;
  const events: AutoscaleEventInput[] = [];
  let failScale = false;
  const source: AutoscaleSource = {
    autoscaled: async () => (autoscaled ? [{ model: "m", version: "1", current, config }] : []),
    applications: async () => [{ name: "app", sloMs: 2000, linkedModels: ["m"] }],
    liveStats: async () => stats([sample(now, queue, connected ?? replicas)]),
    recordEvent: async (e) => void events.push(e),
  };
  const loop = new AutoscaleLoop({
    source,
    scaler: {
      getNumReplicas: async () => replicas,
      setNumReplicas: async (_n, _v, r) => {
        if (failScale) throw new Error("the supervisor is busy");
        replicas = r;
      },
    },
    now: () => now,
  });
  /** Runs one round a second for `seconds` seconds. */
  const run = async (seconds: number) => {
    for (let i = 0; i < seconds; i++) {
      now += 1000;
      await loop.tick();
    }
  };
  return {
    loop, events, run,
    setQueue: (q: number) => (queue = q),
    setConnected: (n: number | undefined) => (connected = n),
    setAutoscaled: (on: boolean) => (autoscaled = on),
    replicas: () => replicas,
    failScaling: (fail: boolean) => (failScale = fail),
  };
}

const CONFIG: AutoscalingConfig = { min_replicas: 1, max_replicas: 4, target_queue_per_replica: 2, scale_down_delay_s: 5 };

describe("AutoscaleLoop", () => {
  it("scales up several replicas at once under sustained queueing, then back down one at a time", async () => {
    const c = cluster(CONFIG);
    c.setQueue(16);
    await c.run(1);
    expect(c.replicas()).toBe(1); // not sustained yet
    await c.run(3);
    expect(c.replicas()).toBe(4);
    expect(c.events).toHaveLength(1);
    expect(c.events[0]).toMatchObject({ kind: "scale_up", model_name: "m", model_version: "1", from: 1, to: 4 });
    expect(c.events[0]!.reason).toMatch(/waiting/);

    c.setQueue(0);
    await c.run(4);
    expect(c.replicas()).toBe(4); // the scale-down delay has not passed
    await c.run(60);
    expect(c.replicas()).toBe(1);
    expect(c.events.filter((e) => e.kind === "scale_down").map((e) => [e.from, e.to])).toEqual([[4, 3], [3, 2], [2, 1]]);
  });

  it("a version that is not current gets no application traffic: its queue alone decides", async () => {
    const c = cluster(CONFIG, false);
    c.setQueue(0);
    await c.run(30);
    expect(c.events).toEqual([]);
    expect(c.replicas()).toBe(1);
  });

  it("a scale that fails records no event and the next round tries again", async () => {
    const c = cluster(CONFIG);
    c.setQueue(16);
    c.failScaling(true);
    await c.run(4);
    expect(c.replicas()).toBe(1);
    expect(c.events).toEqual([]);
    c.failScaling(false);
    await c.run(10);
    expect(c.replicas()).toBe(4);
    expect(c.events.map((e) => e.kind)).toEqual(["scale_up"]);
  });

  it("brings a version below its minimum up at once", async () => {
    const c = cluster({ ...CONFIG, min_replicas: 2 });
    await c.run(1);
    expect(c.replicas()).toBe(2);
    expect(c.events[0]).toMatchObject({ kind: "scale_up", from: 1, to: 2 });
  });
});

/**
 * Manual requests end to end in memory: the daemon's own ScaleRequests (as the server runs it) behind
 * the loop's source, a scaler that counts replicas per version, one clock for both.
 */
function requestCluster() {
  let now = T0;
  const state = consistent();
  const events: AutoscaleEventInput[] = [];
  const requests = new ScaleRequests((e) => void events.push(e), () => now);
  const replicas = new Map<string, number>([["m:1", 1], ["m:2", 1]]);
  let beforeComplete: (() => void) | undefined;
  let failScale: string | undefined;
  const source: AutoscaleSource = {
    autoscaled: async () => [],
    applications: async () => [],
    liveStats: async () => stats(),
    recordEvent: async (e) => void events.push(e),
    scaleRequests: async () => requests.list(state),
    completeScaleRequest: async (request, outcome) => {
      beforeComplete?.();
      requests.complete(JSON.stringify(scaleRequestCompletion(request, outcome)));
    },
  };
  const loop = new AutoscaleLoop({
    source, now: () => now,
    scaler: {
      getNumReplicas: async (n, v) => replicas.get(`${n}:${v}`) ?? 0,
      setNumReplicas: async (n, v, r) => {
        if (failScale) throw new Error(failScale);
        replicas.set(`${n}:${v}`, r);
      },
    },
  });
  const ask = (body: Record<string, unknown>) => requests.request(state, JSON.stringify({ model_name: "m", ...body })).request;
  return {
    loop, requests, state, events, replicas, ask,
    advance: (ms: number) => (now += ms),
    beforeComplete: (f: (() => void) | undefined) => (beforeComplete = f),
    failScaling: (message: string | undefined) => (failScale = message),
    pending: () => requests.list(state),
  };
}

describe("AutoscaleLoop applying replica counts asked for through the admin API", () => {
  it("applies a request on its next round and records what it did", async () => {
    const c = requestCluster();
    const r = c.ask({ num_replicas: 3 });
    expect(r).toMatchObject({ model_name: "m", model_version: "2", num_replicas: 3 });
    await c.loop.tick();
    expect(c.replicas.get("m:2")).toBe(3);
    expect(c.pending()).toEqual([]);
    expect(c.events.map((e) => [e.kind, e.from, e.to, e.reason])).toEqual([
      ["manual", undefined, 3, "requested 3 replicas through the admin API"],
      ["manual", 1, 3, "applied the request for 3 replicas"],
    ]);
    // Applied once: the next rounds change nothing.
    await c.loop.tick();
    expect(c.events).toHaveLength(2);
  });

  it("keeps a newer request that arrives while an older one is applied, and applies it next round", async () => {
    const c = requestCluster();
    c.ask({ model_version: "1", num_replicas: 4 });
    // The second click lands between the loop's scaling and its report of the first.
    c.beforeComplete(() => {
      c.beforeComplete(undefined);
      c.ask({ model_version: "1", num_replicas: 0 });
    });
    await c.loop.tick();
    expect(c.replicas.get("m:1")).toBe(4);
    expect(c.pending().map((p) => p.num_replicas)).toEqual([0]);
    await c.loop.tick();
    expect(c.replicas.get("m:1")).toBe(0);
    expect(c.pending()).toEqual([]);
    expect(c.events.filter((e) => e.from !== undefined).map((e) => [e.from, e.to])).toEqual([[4, 0]]);
  });

  it("two requests in a row: the last one wins; a loop that restarts mid-way applies it again harmlessly", async () => {
    const c = requestCluster();
    const first = c.ask({ model_version: "1", num_replicas: 2 });
    c.ask({ model_version: "1", num_replicas: 5 });
    expect(c.pending().map((p) => p.num_replicas)).toEqual([5]);
    // A completion of the replaced request (an old loop finishing late) clears nothing.
    expect(c.requests.complete(JSON.stringify(scaleRequestCompletion(first, { from: 1 })))).toEqual({ completed: false });
    // A loop that scaled and died before reporting: the request is still pending, a new loop applies it again.
    c.beforeComplete(() => {
      throw new Error("loop killed");
    });
    await c.loop.tick();
    expect(c.replicas.get("m:1")).toBe(5);
    expect(c.pending()).toHaveLength(1);
    c.beforeComplete(undefined);
    const restarted = new AutoscaleLoop({
      source: (c.loop as unknown as { options: { source: AutoscaleSource } }).options.source,
      scaler: { getNumReplicas: async () => c.replicas.get("m:1")!, setNumReplicas: async (_n, _v, r) => void c.replicas.set("m:1", r) },
    });
    await restarted.tick();
    expect(c.replicas.get("m:1")).toBe(5);
    expect(c.pending()).toEqual([]);
  });

  it("reports a failed scale as an event and does not retry it", async () => {
    const c = requestCluster();
    c.failScaling("no deployment of m:2 in cluster default");
    c.ask({ num_replicas: 2 });
    await c.loop.tick();
    expect(c.pending()).toEqual([]);
    expect(c.events.at(-1)).toMatchObject({ kind: "manual", to: 2, reason: "could not apply the request for 2 replicas: no deployment of m:2 in cluster default" });
    expect(c.events.at(-1)!.from).toBeUndefined();
  });

  it("drops a request no loop applied within the TTL, or whose version became autoscaled", async () => {
    const c = requestCluster();
    c.ask({ model_version: "1", num_replicas: 2 });
    c.advance(c.requests.ttlMs + 1);
    expect(c.pending()).toEqual([]);
    expect(c.events.at(-1)!.reason).toMatch(/^dropped the request for 2 replicas: no autoscaler loop applied it within 60 s/);

    c.ask({ model_version: "2", num_replicas: 3 });
    c.state.autoscaling = dict([["m", dict([["2", CONFIG]])]]);
    await c.loop.tick();
    expect(c.replicas.get("m:2")).toBe(1);
    expect(c.events.at(-1)!.reason).toBe("dropped the request for 3 replicas: the version is autoscaled now");
  });

  it("a source that cannot list requests (an older daemon) does not stop the autoscaler", async () => {
    const logged: string[] = [];
    const loop = new AutoscaleLoop({
      source: {
        autoscaled: async () => [], applications: async () => [], liveStats: async () => stats(), recordEvent: async () => undefined,
        scaleRequests: async () => {
          throw new Error("404: No admin endpoint at /admin/get_scale_requests");
        },
      },
      scaler: { getNumReplicas: async () => 1, setNumReplicas: async () => undefined },
      log: (message) => void logged.push(message),
    });
    await loop.tick();
    await loop.tick();
    expect(logged).toEqual(["autoscaler could not apply scale requests"]);
  });
});

describe("AutoscaleLoop: the first replica after a scale from zero", () => {
  const FROM_ZERO: AutoscalingConfig = { min_replicas: 0, max_replicas: 2, target_queue_per_replica: 2, scale_down_delay_s: 5 };

  it("records how long the first replica took to connect, once", async () => {
    const c = cluster(FROM_ZERO, true, 0);
    c.setConnected(0);
    c.setQueue(3);
    await c.run(1); // T0+1 s: the scale from zero
    expect(c.events).toEqual([expect.objectContaining({ kind: "scale_up", from: 0, to: 2 })]);
    await c.run(2);
    expect(c.events).toHaveLength(1); // asked for, not connected yet
    c.setConnected(1);
    await c.run(1); // T0+4 s: the live stats show it
    expect(c.events.slice(1)).toEqual([{
      kind: "first_replica", model_name: "m", model_version: "1", start_ms: 3000,
      reason: "first replica of m:1 ready 3.0 s after the scale from zero",
    }]);
    await c.run(3);
    expect(c.events.filter((e) => e.kind === "first_replica")).toHaveLength(1);
  });

  it("records nothing for a scale-up that did not start from zero", async () => {
    const c = cluster({ ...FROM_ZERO, max_replicas: 4 });
    c.setQueue(16);
    await c.run(10);
    expect(c.replicas()).toBe(4);
    expect(c.events.map((e) => e.kind)).toEqual(["scale_up"]);
  });

  it("forgets a start from zero when the version stops being autoscaled before its replica connects", async () => {
    const c = cluster(FROM_ZERO, true, 0);
    c.setConnected(0);
    c.setQueue(1);
    await c.run(1);
    c.setAutoscaled(false);
    await c.run(1);
    c.setConnected(1);
    c.setAutoscaled(true);
    await c.run(2);
    expect(c.events.map((e) => e.kind)).toEqual(["scale_up"]);
  });
});
