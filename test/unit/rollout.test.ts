/**
 * Gated rollouts without servers: the step/gate state machine, the daemon's driver on an injected
 * clock over an in-memory store, the admin operations and their refusals, and the frontends' split.
 * Through the real CLI, daemon, frontend and replicas: test/rollout-e2e.test.ts.
 */
import { describe, expect, it } from "vitest";
import type { AutoscaleEventInput } from "../../runtime/shared/autoscaling.js";
import { failedGates, judgeStep, RolloutDriver } from "../../runtime/management/rollout-driver.js";
import { abortRollout, startRollout } from "../../runtime/management/rollout-operations.js";
import { deleteVersionedModel, setModelVersion, type WriteOperation } from "../../runtime/management/operations.js";
import { getShadowStatus, setShadow } from "../../runtime/management/shadow-operations.js";
import type { Change } from "../../runtime/management/store.js";
import { liveVersionOf } from "../../runtime/frontend/policies/common.js";
import type { Rollout } from "../../runtime/shared/rollout.js";
import { emptyCounts, emptyHistogram, latencyBucket, shadowFigures, type ShadowFigures } from "../../runtime/shared/shadow.js";
import { describeViolation, stateViolations } from "../../runtime/shared/state-invariants.js";
import { type ClusterState, ClusterStateSchema, type ReplicaRecord } from "../../runtime/shared/state.js";
import { consistent, replicaRecord, versionRecord } from "../support/state-fixtures.js";
import { refusal } from "../support/admin-refusal.js";
import { stateAfter } from "../support/write-outcome.js";

/** Figures of `agree`+`disagree` answered copies all at `latencyMs`, plus failed ones. */
function figures(agree: number, disagree = 0, failed = 0, latencyMs = 5): ShadowFigures {
  const counts = { ...emptyCounts(), agree, disagree, error: failed };
  const latency = emptyHistogram();
  latency[latencyBucket(latencyMs)] = agree + disagree;
  return shadowFigures(counts, latency, emptyHistogram());
}

const rollout = (over: Partial<Rollout> = {}): Rollout => ({
  from_version: "2", to_version: "3", steps: [1, 10, 50, 100], step: 0, step_s: 10, min_queries: 20,
  gates: { max_p99_ms: 50, min_agreement: 0.9, max_default_rate: 0.1 }, phase: "running", ...over,
});

describe("the step verdict", () => {
  it("waits for the step's time and its queries, then goes on, and promotes after the step before 100", () => {
    const good = figures(30);
    expect(judgeStep(rollout(), good, { elapsedMs: 9_999, queries: 30 })).toEqual({ kind: "wait" });
    // A quiet step is not judged on nothing.
    expect(judgeStep(rollout(), good, { elapsedMs: 60_000, queries: 19 })).toEqual({ kind: "wait" });
    expect(judgeStep(rollout(), good, { elapsedMs: 10_000, queries: 20 })).toEqual({ kind: "advance" });
    expect(judgeStep(rollout({ step: 1 }), good, { elapsedMs: 10_000, queries: 20 })).toEqual({ kind: "advance" });
    expect(judgeStep(rollout({ step: 2 }), good, { elapsedMs: 10_000, queries: 20 })).toEqual({ kind: "promote" });
  });

  it("rolls back on each gate, naming it", () => {
    const at = { elapsedMs: 10_000, queries: 40 };
    expect(judgeStep(rollout(), figures(40, 0, 0, 400), at)).toMatchObject({ kind: "rollback", reason: expect.stringMatching(/^gate failed at 1%: p99 latency [\d.]+ ms is above the gate of 50 ms$/) });
    expect(judgeStep(rollout(), figures(30, 10), at)).toMatchObject({ reason: expect.stringMatching(/agreement 0.750 is below the gate of 0.9/) });
    expect(judgeStep(rollout(), figures(30, 0, 10), at)).toMatchObject({ reason: expect.stringMatching(/default rate 0.250 .* above the gate of 0.1/) });
    // No answered copy: latency and agreement are unknown, which fails their gates.
    expect(failedGates({ max_p99_ms: 50, min_agreement: 0.5 }, figures(0, 0, 25))).toEqual([
      "p99 latency unknown: none of its 25 copies answered (gate 50 ms)", "agreement unknown: none of its 25 copies answered (gate 0.5)",
    ]);
    expect(failedGates({}, figures(0, 0, 25))).toEqual([]);
  });
});

/** `consistent()` (m: versions 1 and 2, current 2) with a version 3, replicas of every version connected. */
function cluster(name = "m"): { state: ClusterState; replicas: ReplicaRecord[] } {
  const base = consistent();
  const state = ClusterStateSchema.parse(JSON.parse(JSON.stringify(base)));
  const model = base.models.m!;
  state.models = Object.create(null) as ClusterState["models"];
  state.models[name] = { ...model, name, versions: Object.assign(Object.create(null), {
    "1": versionRecord(name, "1"), "2": versionRecord(name, "2"), "3": versionRecord(name, "3"),
  }) };
  state.applications.a!.linked_models = [name];
  state.revision = 7;
  return { state, replicas: ["1", "2", "3"].map((v, i) => replicaRecord(name, v, i)) };
}

/** Applies a write like the store does: the next state must be consistent and load back as it is. */
function apply(state: ClusterState, op: WriteOperation, body: unknown, replicas: ReplicaRecord[] = []) {
  const outcome = op(state, JSON.stringify(body), replicas);
  const next = stateAfter(state, outcome);
  if (!next) return { state, text: outcome.text, event: outcome.event };
  expect(stateViolations(next).map(describeViolation)).toEqual([]);
  const reloaded = ClusterStateSchema.parse(JSON.parse(JSON.stringify(next)));
  return { state: { ...reloaded, revision: state.revision + 1 }, text: outcome.text, event: outcome.event };
}

describe("starting and aborting a rollout (admin operations)", () => {
  for (const name of ["m", "__proto__", "constructor"]) {
    it(`starts one on a fresh shadow of the new version and rolls it back on abort (model '${name}')`, () => {
      const { state, replicas } = cluster(name);
      const started = apply(state, startRollout, { model_name: name, model_version: "3", steps: [5, 100], max_p99_ms: 20 }, replicas);
      expect(started.text).toBe(`Rolling out ${name}:3 over 2 through 5%, 100%`);
      expect(started.event).toMatchObject({ kind: "rollout_start", model_name: name, to: 5 });
      expect({ ...started.state.shadows![name] }).toEqual({ model_version: "3", percent: 100, since_revision: 8 });
      expect(started.state.rollouts![name]).toMatchObject({ from_version: "2", to_version: "3", step: 0, phase: "running", gates: { max_p99_ms: 20 } });
      expect(Object.getPrototypeOf(started.state.rollouts)).toBeNull();
      // Its shadow is the rollout's: set_shadow leaves it alone while it runs.
      expect(refusal(() => setShadow(started.state, JSON.stringify({ model_name: name, off: true })))).toMatch(/rollout .* is running/);
      const aborted = apply(started.state, abortRollout, { model_name: name });
      expect(aborted.event).toMatchObject({ kind: "rollout_rolled_back", from: 5, to: 0, reason: "aborted through the admin API" });
      expect(aborted.state.models[name]!.current_version).toBe("2");
      expect(aborted.state.shadows ?? {}).toEqual({});
      expect(aborted.state.rollouts![name]).toMatchObject({ phase: "rolled_back", reason: "aborted through the admin API" });
      const status = getShadowStatus({ state: aborted.state, replicas }, JSON.stringify({ model_name: name }));
      expect(status.kind === "json" && status.value).toMatchObject({ rollout: { phase: "rolled_back", percent: 0, progress: null } });
      expect(refusal(() => abortRollout(aborted.state, JSON.stringify({ model_name: name })))).toMatch(/has no rollout running/);
    });
  }

  it("refuses what cannot be rolled out, with a 400 that says why", () => {
    const { state, replicas } = cluster();
    const start = (body: Record<string, unknown>, s = state) => refusal(() => startRollout(s, JSON.stringify({ model_name: "m", model_version: "3", ...body }), replicas));
    expect(start({ model_name: "nope" })).toMatch(/No model with name 'nope'/);
    expect(start({ model_name: "__proto__" })).toMatch(/No model with name '__proto__'/);
    expect(start({ model_version: "9" })).toMatch(/version '9' does not exist/);
    expect(start({ model_version: "2" })).toMatch(/is the current version/);
    expect(refusal(() => startRollout(state, JSON.stringify({ model_name: "m", model_version: "3" }), []))).toMatch(/no connected replica/);
    expect(start({ steps: [10, 5, 100] })).toMatch(/steps must increase, got 10 then 5/);
    expect(start({ steps: [0, 100] })).toMatch(/whole percent from 1 to 100, got 0/);
    expect(start({ steps: [1, 101] })).toMatch(/got 101/);
    expect(start({ steps: [1, 50] })).toMatch(/the last step must be 100/);
    expect(start({ steps: [100] })).toMatch(/at least one step below 100/);
    expect(start({ steps: [1.5, 100] })).toMatch(/whole percent/);
    expect(start({ step_s: 0 })).toMatch(/step_s must be/);
    expect(start({ min_queries: 0.5 })).toMatch(/min_queries must be/);
    expect(start({ max_p99_ms: -1 })).toMatch(/bad gate: max_p99_ms/);
    expect(start({ min_agreement: 1.5 })).toMatch(/bad gate: min_agreement/);
    expect(start({ max_default_rate: -0.1 })).toMatch(/bad gate: max_default_rate/);
    const running = apply(state, startRollout, { model_name: "m", model_version: "3" }, replicas).state;
    expect(start({ model_version: "1" }, running)).toMatch(/A rollout of 'm' to version '3' is already running/);
  });

  it("ends a running rollout when its versions change outside it", () => {
    const { state, replicas } = cluster();
    const running = apply(state, startRollout, { model_name: "m", model_version: "3" }, replicas).state;
    const byHand = apply(running, setModelVersion, { model_name: "m", model_version: "3" });
    expect(byHand.state.rollouts!.m).toMatchObject({ phase: "promoted", reason: "set-version 3 made version '3' current" });
    const third = apply(running, setModelVersion, { model_name: "m", model_version: "1" });
    expect(third.state.rollouts!.m).toMatchObject({ phase: "rolled_back" });
    expect(third.state.shadows ?? {}).toEqual({});
    const deleted = apply(running, deleteVersionedModel, { model_name: "m", model_version: "3" });
    expect(deleted.state.rollouts!.m).toMatchObject({ phase: "rolled_back", reason: "deleting version 3 changed the versions it rolls out between" });
    expect(deleted.event).toMatchObject({ kind: "rollout_rolled_back" });
  });
});

/** The daemon's store as the driver sees it: serialized updates, each checked and numbered. */
function memoryDaemon(initial: ClusterState) {
  let state = initial;
  let copies: ShadowFigures = figures(0);
  let now = 1_000_000;
  const events: AutoscaleEventInput[] = [];
  const deps = {
    state: () => state,
    update: async (change: (current: ClusterState) => Change<AutoscaleEventInput[]>) => {
      const outcome = change(state);
      const next = stateAfter(state, outcome);
      const result = outcome.result;
      if (next) {
        expect(stateViolations(next).map(describeViolation)).toEqual([]);
        state = { ...ClusterStateSchema.parse(JSON.parse(JSON.stringify(next))), revision: state.revision + 1 };
      }
      return result;
    },
    figures: () => copies,
    recordEvent: (e: AutoscaleEventInput) => void events.push(e),
    now: () => now,
  };
  return {
    deps, events,
    get state() { return state; },
    advance(ms: number) { now += ms; },
    see(f: ShadowFigures) { copies = f; },
  };
}

describe("the rollout driver (injected clock, no servers)", () => {
  it("walks the steps on good figures, one per elapsed step with enough queries, and makes the version current", async () => {
    const { state, replicas } = cluster();
    const daemon = memoryDaemon(apply(state, startRollout, { model_name: "m", model_version: "3", steps: [1, 10, 100], step_s: 5, min_queries: 10 }, replicas).state);
    const driver = new RolloutDriver(daemon.deps);
    await driver.tick(); // takes the step up: its clock starts now
    expect(driver.progress("m")).toEqual({ step_elapsed_s: 0, step_queries: 0 });
    daemon.see(figures(9));
    daemon.advance(5_000);
    await driver.tick();
    expect(daemon.state.rollouts!.m!.step).toBe(0); // time is up, but 9 of 10 queries
    daemon.see(figures(10));
    await driver.tick();
    expect(daemon.state.rollouts!.m!.step).toBe(1);
    expect(daemon.events).toEqual([{ kind: "rollout_step", model_name: "m", model_version: "3", from: 1, to: 10, reason: "every gate held at 1%" }]);
    await driver.tick(); // the new step starts with the 10 copies already seen
    daemon.advance(5_000);
    daemon.see(figures(19));
    await driver.tick();
    expect(daemon.state.rollouts!.m!.phase).toBe("running");
    daemon.see(figures(20));
    await driver.tick();
    expect(daemon.state.models.m!.current_version).toBe("3");
    expect(daemon.state.shadows ?? {}).toEqual({});
    expect(daemon.state.rollouts!.m).toMatchObject({ phase: "promoted", reason: "every gate held through 1%, 10%" });
    expect(daemon.events.at(-1)).toMatchObject({ kind: "rollout_promoted", from: 10, to: 100 });
  });

  it("rolls back by itself when a gate fails, with the reason in the state and the event", async () => {
    const { state, replicas } = cluster();
    const daemon = memoryDaemon(apply(state, startRollout, { model_name: "m", model_version: "3", step_s: 1, min_queries: 5, max_p99_ms: 50 }, replicas).state);
    const driver = new RolloutDriver(daemon.deps);
    await driver.tick();
    daemon.see(figures(5, 0, 0, 300));
    daemon.advance(1_000);
    await driver.tick();
    expect(daemon.state.models.m!.current_version).toBe("2");
    expect(daemon.state.rollouts!.m).toMatchObject({ phase: "rolled_back", reason: expect.stringMatching(/^gate failed at 1%: p99 latency [\d.]+ ms is above the gate of 50 ms$/) });
    expect(daemon.events).toEqual([expect.objectContaining({ kind: "rollout_rolled_back", from: 1, to: 0 })]);
    expect(liveVersionOf({ rollouts: daemon.state.rollouts, rolloutPoint: () => 0 }, daemon.state.models.m!)).toBe("2");
  });

  it("after a restart of the daemon (a new driver, figures afresh) starts the step in force over", async () => {
    const { state, replicas } = cluster();
    const daemon = memoryDaemon(apply(state, startRollout, { model_name: "m", model_version: "3", step_s: 10, min_queries: 5 }, replicas).state);
    await new RolloutDriver(daemon.deps).tick();
    daemon.see(figures(50));
    daemon.advance(9_000);
    const restarted = new RolloutDriver(daemon.deps);
    daemon.see(figures(0));
    await restarted.tick();
    daemon.see(figures(5));
    daemon.advance(9_000);
    await restarted.tick();
    expect(daemon.state.rollouts!.m!.step).toBe(0); // 9 s of the restarted step, not 18
    daemon.advance(1_000);
    await restarted.tick();
    expect(daemon.state.rollouts!.m!.step).toBe(1);
  });
});

describe("the frontends' split", () => {
  it("sends the step's share of points to the new version while the old one is current", () => {
    const { state, replicas } = cluster();
    const running = apply(state, startRollout, { model_name: "m", model_version: "3", steps: [10, 100] }, replicas).state;
    const model = running.models.m!;
    const at = (point: number) => liveVersionOf({ rollouts: running.rollouts, rolloutPoint: () => point }, model);
    expect([at(0), at(0.0999), at(0.1), at(0.99)]).toEqual(["3", "3", "2", "2"]);
    expect(liveVersionOf({ rollouts: undefined, rolloutPoint: () => 0 }, model)).toBe("2");
    // The current version changed since: the split no longer applies.
    expect(liveVersionOf({ rollouts: running.rollouts, rolloutPoint: () => 0 }, { ...model, current_version: "1" })).toBe("1");
  });
});
