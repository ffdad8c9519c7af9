/**
 * Shadow versions without servers: the admin operations and their place in the state, the mirror's
 * decisions (sampling, the live answer first, the in-flight bound, comparison, latencies on an
 * injected clock), the per-interval recorder and the daemon's sums over frontends.
 * Through the real CLI, daemon, frontend and replicas: test/shadow-e2e.test.ts.
 */
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { deleteVersionedModel, setModelVersion, type WriteOperation } from "../../runtime/management/operations.js";
import { getShadowStatus, setShadow } from "../../runtime/management/shadow-operations.js";
import { ShadowStatsStore } from "../../runtime/management/shadow-stats-store.js";
import { dict } from "../../runtime/shared/dict.js";
import {
  emptyHistogram, histogramPercentile, latencyBucket, SHADOW_LATENCY_BOUNDS_MS, type ShadowConfig, type ShadowOutcome, type ShadowSample,
} from "../../runtime/shared/shadow.js";
import { describeViolation, stateViolations } from "../../runtime/shared/state-invariants.js";
import { type ClusterState, ClusterStateSchema, type ReplicaRecord } from "../../runtime/shared/state.js";
import type { CallOutcome, ModelRef } from "../../runtime/frontend/model-caller.js";
import { compareWithLive, ShadowMirror } from "../../runtime/frontend/shadow-mirror.js";
import { ShadowRecorder } from "../../runtime/frontend/shadow-recorder.js";
import { consistent, replicaRecord, versionRecord } from "../support/state-fixtures.js";
import { refusal } from "../support/admin-refusal.js";
import { stateAfter } from "../support/write-outcome.js";

/** Applies a write like the store does: the next state must be consistent and load back as it is. */
function apply(state: ClusterState, op: WriteOperation, body: unknown, replicas: ReplicaRecord[] = []): { state: ClusterState; text: string } {
  const outcome = op(state, JSON.stringify(body), replicas);
  const next = stateAfter(state, outcome);
  if (!next) return { state, text: outcome.text };
  expect(stateViolations(next).map(describeViolation)).toEqual([]);
  const reloaded = ClusterStateSchema.parse(JSON.parse(JSON.stringify(next)));
  return { state: { ...reloaded, revision: state.revision + 1 }, text: outcome.text };
}

/** `consistent()` (m: versions 1 and 2, current 2) with a version 3, replicas of every version connected. */
function cluster(): { state: ClusterState; replicas: ReplicaRecord[] } {
  const state = consistent();
  state.models.m!.versions["3"] = versionRecord("m", "3");
  state.revision = 7;
  return { state, replicas: ["1", "2", "3"].map((v, i) => replicaRecord("m", v, i)) };
}

describe("the shadow setting (admin operations)", () => {
  it("sets a shadow with the revision that set it, keeps it for the same setting, and ends it", () => {
    const { state, replicas } = cluster();
    const set = apply(state, setShadow, { model_name: "m", model_version: "1", percent: 30 }, replicas);
    expect(set.text).toBe("Shadowing m:2 with version '1' on 30% of its live queries");
    expect({ ...set.state.shadows!.m }).toEqual({ model_version: "1", percent: 30, since_revision: 8 });
    // The same setting again changes nothing (its figures go on); another percent starts afresh.
    expect(setShadow(set.state, JSON.stringify({ model_name: "m", model_version: "1", percent: 30 }), replicas).next).toBeUndefined();
    const all = apply(set.state, setShadow, { model_name: "m", model_version: "1" }, replicas);
    expect(all.state.shadows!.m).toMatchObject({ percent: 100, since_revision: 9 });
    const off = apply(all.state, setShadow, { model_name: "m", off: true });
    expect(off.text).toMatch(/Ended the shadow of m:1/);
    expect(off.state.shadows ?? {}).toEqual({});
  });

  it("refuses what cannot be shadowed, with a 400 that says why", () => {
    const { state, replicas } = cluster();
    const set = (body: unknown, withReplicas = replicas) => refusal(() => setShadow(state, JSON.stringify(body), withReplicas));
    expect(set({ model_name: "m", model_version: "9" })).toMatch(/version '9' does not exist/);
    expect(set({ model_name: "m", model_version: "2" })).toMatch(/is the current version/);
    expect(set({ model_name: "m", model_version: "1" }, [replicaRecord("m", "2", 0)])).toMatch(/m:1' has no connected replica/);
    const strings = cluster().state;
    strings.models.m!.versions["1"] = versionRecord("m", "1", "strings");
    expect(refusal(() => setShadow(strings, JSON.stringify({ model_name: "m", model_version: "1" }), replicas)))
      .toMatch(/takes 'strings' and the current version '2' takes 'doubles'/);
    for (const percent of [0, 101, -5]) {
      expect(set({ model_name: "m", model_version: "1", percent })).toMatch(/^percent must be a number above 0 and at most 100, got/);
    }
    expect(set({ model_name: "m", model_version: "1", percent: "50" })).toMatch(/percent/);
    expect(set({ model_name: "m" })).toMatch(/model_version is required/);
    expect(set({ model_name: "m", off: true })).toMatch(/has no shadow version to end/);
    expect(set({ model_name: "m", off: true, percent: 5 })).toMatch(/takes no settings/);
    for (const name of ["nope", "__proto__", "constructor"]) {
      expect(set({ model_name: name, model_version: "1" })).toMatch(/No model with name/);
      expect(refusal(() => getShadowStatus({ state, replicas }, JSON.stringify({ model_name: name })))).toMatch(/No model with name/);
    }
    // NaN is not JSON: it arrives as null, which the body's schema refuses.
    expect(refusal(() => setShadow(state, `{"model_name": "m", "model_version": "1", "percent": NaN}`, replicas))).toMatch(/not valid JSON/);
  });

  it("keeps names like __proto__ and constructor as ordinary models", () => {
    const state = cluster().state;
    for (const name of ["__proto__", "constructor"]) {
      state.models[name] = { name, current_version: "a", versions: dict([["a", versionRecord(name, "a")], ["b", versionRecord(name, "b")]]) };
    }
    const replicas = ["__proto__", "constructor"].map((n, i) => replicaRecord(n, "b", i));
    let next = apply(state, setShadow, { model_name: "__proto__", model_version: "b" }, replicas).state;
    next = apply(next, setShadow, { model_name: "constructor", model_version: "b", percent: 1 }, replicas).state;
    expect(Object.keys(next.shadows!).sort()).toEqual(["__proto__", "constructor"]);
    const status = getShadowStatus({ state: next, replicas }, JSON.stringify({ model_name: "__proto__" }));
    expect(status).toMatchObject({ kind: "json", value: { model_name: "__proto__", current_version: "a", shadow: { model_version: "b" } } });
  });

  it("ends the shadow when its version is made current or deleted; the invariants refuse a stale one", () => {
    const { state, replicas } = cluster();
    const shadowed = apply(state, setShadow, { model_name: "m", model_version: "1" }, replicas).state;
    expect(apply(shadowed, setModelVersion, { model_name: "m", model_version: "1" }).state.shadows ?? {}).toEqual({});
    expect(apply(shadowed, deleteVersionedModel, { model_name: "m", model_version: "1" }).state.shadows ?? {}).toEqual({});
    // Another version made current keeps the shadow, which now compares with that one.
    expect(apply(shadowed, setModelVersion, { model_name: "m", model_version: "3" }).state.shadows?.m?.model_version).toBe("1");
    const broken = cluster().state;
    broken.shadows = dict([["m", { model_version: "2", percent: 5, since_revision: 1 }], ["gone", { model_version: "1", percent: 5, since_revision: 1 }]]);
    expect(stateViolations(broken).map(describeViolation)).toEqual([
      "shadows.m: shadows version '2', which is the current version",
      "shadows.gone: shadows version 'gone:1', which does not exist",
    ]);
  });
});

describe("latency histograms", () => {
  it("buckets latencies and reads percentiles within a bucket", () => {
    expect(latencyBucket(0)).toBe(0);
    expect(latencyBucket(0.1)).toBe(0);
    expect(latencyBucket(1e9)).toBe(SHADOW_LATENCY_BOUNDS_MS.length);
    const h = emptyHistogram();
    for (let i = 0; i < 98; i++) h[latencyBucket(5)]!++;
    h[latencyBucket(300)]! += 2;
    expect(histogramPercentile(h, 0.5)).toBeGreaterThanOrEqual(5);
    expect(histogramPercentile(h, 0.5)).toBeLessThan(5 * 1.25);
    expect(histogramPercentile(h, 0.99)).toBeGreaterThanOrEqual(300);
    expect(histogramPercentile(h, 0.99)).toBeLessThan(300 * 1.25);
    expect(histogramPercentile(emptyHistogram(), 0.5)).toBeNull();
  });
});

/** A mirror over a scripted state and caller, on a manual clock and event loop. */
function mirrorRig(options: { percent?: number; maxInFlight?: number; draws?: number[] } = {}) {
  const state = cluster().state;
  state.shadows = dict([["m", { model_version: "1", percent: options.percent ?? 100, since_revision: 8 }]]);
  let now = 1_000;
  const deferred: Array<() => void> = [];
  const calls: Array<{ model: ModelRef; deadline: number; answer(outcome: CallOutcome): void }> = [];
  const records: Array<{ version: string; outcome: ShadowOutcome; latency?: { shadowMs: number; liveMs: number } }> = [];
  const draws = [...(options.draws ?? [])];
  const mirror = new ShadowMirror({
    state: () => state,
    call: (model, _type, _input, deadline) => new Promise((resolve) => calls.push({ model, deadline, answer: resolve })),
    sink: { record: (shadow, since, outcome, latency) => { expect(since).toBe(8); records.push({ version: shadow.version, outcome, latency }); } },
    now: () => now,
    random: () => draws.shift() ?? 0,
    maxInFlight: options.maxInFlight,
    defer: (run) => deferred.push(run),
  });
  const live = (output: string): CallOutcome => ({ kind: "output", output });
  const copy = (output = "42", liveMs = 3) => {
    const shadow = mirror.shadowOf({ name: "m", version: "2" });
    expect(shadow).toBeDefined();
    mirror.mirror({ name: "m", version: "2" }, shadow!, "doubles", Buffer.from("x"), live(output), liveMs, 500);
  };
  const runDeferred = () => deferred.splice(0).forEach((run) => run());
  return { state, mirror, calls, records, copy, runDeferred, advance: (ms: number) => (now += ms), live };
}

describe("the shadow mirror", () => {
  it("copies only answers of a shadowed model's current version", () => {
    const { mirror, state } = mirrorRig();
    expect(mirror.shadowOf({ name: "m", version: "2" })).toMatchObject({ model_version: "1" });
    expect(mirror.shadowOf({ name: "m", version: "1" })).toBeUndefined(); // the shadow itself, or a pinned old version
    expect(mirror.shadowOf({ name: "m", version: "3" })).toBeUndefined();
    expect(mirror.shadowOf({ name: "constructor", version: "2" })).toBeUndefined();
    state.models.m!.versions["1"] = versionRecord("m", "1", "strings"); // as if the current version had changed to another input type
    expect(mirror.shadowOf({ name: "m", version: "2" })).toBeUndefined();
    state.models.m!.versions["1"] = versionRecord("m", "1");
    delete state.shadows;
    expect(mirror.shadowOf({ name: "m", version: "2" })).toBeUndefined();
  });

  it("sends the copy only after the live answer went its way, and compares the outputs", async () => {
    const { calls, records, copy, runDeferred, advance, mirror } = mirrorRig();
    copy("42", 3);
    // Nothing is sent on the live answer's turn: the copy waits for the deferred run.
    expect(calls).toHaveLength(0);
    expect(mirror.pending).toBe(1);
    runDeferred();
    expect(calls.map((c) => c.model)).toEqual([{ name: "m", version: "1" }]);
    expect(calls[0]!.deadline).toBe(1_000 + 500); // the live call's budget, from the copy's start
    advance(250);
    calls[0]!.answer({ kind: "output", output: "42" });
    await Promise.resolve();
    expect(records).toEqual([{ version: "1", outcome: "agree", latency: { shadowMs: 250, liveMs: 3 } }]);
    expect(mirror.pending).toBe(0);
  });

  it("tells disagreement, errors and timeouts apart", () => {
    expect(compareWithLive("1", { kind: "output", output: "1" })).toBe("agree");
    expect(compareWithLive("1", { kind: "output", output: "1.0" })).toBe("disagree");
    expect(compareWithLive("1", { kind: "timeout" })).toBe("timeout");
    for (const outcome of [{ kind: "failed", reason: "boom" }, { kind: "unavailable" }, { kind: "shed", retryAfterSeconds: 1 }] as CallOutcome[]) {
      expect(compareWithLive("1", outcome)).toBe("error");
    }
  });

  it("does not copy default answers, and samples by percent", () => {
    const { mirror, calls, copy, runDeferred } = mirrorRig({ percent: 30, draws: [0.29, 0.3, 0.95, 0.1] });
    const shadow = mirror.shadowOf({ name: "m", version: "2" })!;
    mirror.mirror({ name: "m", version: "2" }, shadow, "doubles", Buffer.from("x"), { kind: "timeout" }, 3, 500);
    for (let i = 0; i < 4; i++) copy();
    runDeferred();
    expect(calls).toHaveLength(2); // draws 0.29 and 0.1 are under 30%
  });

  it("bounds the copies in flight: beyond, they are skipped and counted, and the bound frees as copies finish", async () => {
    const { calls, records, copy, runDeferred, mirror } = mirrorRig({ maxInFlight: 2 });
    for (let i = 0; i < 5; i++) copy();
    runDeferred();
    expect(calls).toHaveLength(2);
    expect(mirror.pending).toBe(2);
    expect(records.map((r) => r.outcome)).toEqual(["skipped", "skipped", "skipped"]);
    calls[0]!.answer({ kind: "timeout" });
    await Promise.resolve();
    expect(mirror.pending).toBe(1);
    copy();
    runDeferred();
    expect(calls).toHaveLength(3);
    expect(records.map((r) => r.outcome)).toEqual(["skipped", "skipped", "skipped", "timeout"]);
    expect(records[3]!.latency).toBeUndefined(); // only answered copies have latencies
  });
});

describe("shadow figures", () => {
  const sample = (over: Partial<ShadowSample> & { agree?: number; disagree?: number }): ShadowSample => {
    const shadowLatency = emptyHistogram();
    const liveLatency = emptyHistogram();
    shadowLatency[latencyBucket(200)] = (over.agree ?? 0) + (over.disagree ?? 0);
    liveLatency[latencyBucket(2)] = (over.agree ?? 0) + (over.disagree ?? 0);
    return {
      model_name: "m", model_version: "1", since_revision: 8,
      counts: { agree: over.agree ?? 0, disagree: over.disagree ?? 0, error: 1, timeout: 0, skipped: 2 },
      shadow_latency: shadowLatency, live_latency: liveLatency, ...over,
    };
  };

  it("the recorder closes an interval per setting, and counts in Prometheus series", async () => {
    const registry = new Registry();
    const recorder = new ShadowRecorder(registry);
    const shadow = { name: "m", version: "1" };
    recorder.record(shadow, 8, "agree", { shadowMs: 200, liveMs: 2 });
    recorder.record(shadow, 8, "disagree", { shadowMs: 200, liveMs: 2 });
    recorder.record(shadow, 8, "skipped");
    const [taken, ...rest] = recorder.take();
    expect(rest).toEqual([]);
    expect(taken).toMatchObject({ model_name: "m", model_version: "1", since_revision: 8, counts: { agree: 1, disagree: 1, skipped: 1, error: 0, timeout: 0 } });
    expect(histogramPercentile(taken!.shadow_latency, 0.5)).toBeGreaterThanOrEqual(200);
    expect(recorder.take()).toEqual([]);
    const text = await registry.metrics();
    expect(text).toContain('clipper_shadow_queries_total{model="m",version="1",outcome="agree"} 1');
    expect(text).toContain('clipper_shadow_queries_total{model="m",version="1",outcome="skipped"} 1');
    expect(text).toMatch(/clipper_shadow_latency_seconds_count\{model="m",version="1",role="shadow"\} 2/);
  });

  it("the daemon sums frontends' samples of the current setting only, and starts afresh with a new one", () => {
    const { state } = cluster();
    const setting: ShadowConfig = { model_version: "1", percent: 100, since_revision: 8 };
    state.shadows = dict([["m", setting]]);
    const store = new ShadowStatsStore();
    expect(store.figures("m", setting)).toMatchObject({ compared: 0, agreement: null, shadow_p50_ms: null });
    store.add([sample({ agree: 6, disagree: 2 })], state); // frontend A
    store.add([sample({ agree: 1, disagree: 1 })], state); // frontend B
    store.add([sample({ agree: 50, since_revision: 3 }), sample({ agree: 50, model_name: "constructor" })], state); // stale or unknown: dropped
    const figures = store.figures("m", setting);
    expect(figures).toMatchObject({ compared: 10, agreement: 0.7, counts: { agree: 7, disagree: 3, error: 2, skipped: 4, timeout: 0 } });
    expect(figures.shadow_p50_ms).toBeGreaterThanOrEqual(200);
    expect(figures.live_p99_ms).toBeLessThan(3);
    const next: ShadowConfig = { ...setting, since_revision: 9 };
    state.shadows = dict([["m", next]]);
    store.add([], state);
    expect(store.figures("m", next).compared).toBe(0);
    expect(store.figures("m", setting).compared).toBe(0); // the old setting's totals are forgotten
  });
});
