/**
 * Autoscaling's configuration through the admin operations (pure functions, as the daemon runs
 * them), its place in the state (invariants, older state files), and the bounded event log.
 * Through the daemon's HTTP API and the CLI: test/autoscale-cli.test.ts.
 */
import { describe, expect, it } from "vitest";
import { AutoscaleEventLog } from "../../runtime/autoscaler/event-log.js";
import { getAutoscaling, setAutoscaling } from "../../runtime/management/autoscale-operations.js";
import { deleteVersionedModel, getAllModels, type WriteOperation } from "../../runtime/management/operations.js";
import { MAX_AUTOSCALE_REPLICAS } from "../../runtime/shared/autoscaling.js";
import { dict } from "../../runtime/shared/dict.js";
import { describeViolation, stateViolations } from "../../runtime/shared/state-invariants.js";
import { type ClusterState, ClusterStateSchema } from "../../runtime/shared/state.js";
import { MAX_REPLICAS } from "../../src/managers/common/replicas.js";
import { consistent } from "../support/state-fixtures.js";
import { refusal } from "../support/admin-refusal.js";
import { stateAfter } from "../support/write-outcome.js";

/** Applies a write like the store does: the next state must be consistent and load back as it is. */
function apply(state: ClusterState, op: WriteOperation, body: unknown): { state: ClusterState; text: string; event?: unknown } {
  const outcome = op(state, JSON.stringify(body));
  const next = stateAfter(state, outcome);
  if (!next) return { state, text: outcome.text, event: outcome.event };
  expect(stateViolations(next).map(describeViolation)).toEqual([]);
  const reloaded = ClusterStateSchema.parse(JSON.parse(JSON.stringify(next)));
  expect(JSON.stringify(reloaded)).toBe(JSON.stringify(next));
  return { state: { ...reloaded, revision: state.revision + 1 }, text: outcome.text, event: outcome.event };
}


const read = (state: ClusterState, body: unknown = {}) => getAutoscaling({ state, replicas: [] }, JSON.stringify(body));

describe("autoscaling configuration", () => {
  it("is stored per version with defaults filled in, listed, and shown with the model", () => {
    const { state, text, event } = apply(consistent(), setAutoscaling, { model_name: "m", min_replicas: 1, max_replicas: 4 });
    expect(text).toBe("Set autoscaling of m:2: min 1, max 4, target queue 4 per replica, scale-down delay 30 s");
    expect(event).toMatchObject({ kind: "config", model_name: "m", model_version: "2", from: 1, to: 4 });
    const config = { min_replicas: 1, max_replicas: 4, target_queue_per_replica: 4, scale_down_delay_s: 30 };
    expect(read(state)).toEqual({ kind: "json", value: [{ model_name: "m", model_version: "2", autoscaling: config }] });
    const models = getAllModels({ state, replicas: [] }, JSON.stringify({ verbose: true }));
    expect(models.kind === "json" && models.value).toEqual([
      expect.not.objectContaining({ autoscaling: expect.anything() }),
      expect.objectContaining({ model_version: "2", autoscaling: config }),
    ]);

    const tuned = apply(state, setAutoscaling, {
      model_name: "m", model_version: "1", min_replicas: 0, max_replicas: 64, target_queue_per_replica: 2.5, scale_down_delay_s: 0,
    }).state;
    expect(read(tuned, { model_name: "m" })).toMatchObject({ value: [{ model_version: "1" }, { model_version: "2" }] });
    // The same settings again change nothing (no new revision, no event).
    const again = setAutoscaling(state, JSON.stringify({ model_name: "m", min_replicas: 1, max_replicas: 4 }));
    expect(again.next).toBeUndefined();
    expect(again.event).toBeUndefined();
  });

  it("is switched off per version, and goes with a deleted version", () => {
    let state = apply(consistent(), setAutoscaling, { model_name: "m", model_version: "1", min_replicas: 1, max_replicas: 2 }).state;
    const off = apply(state, setAutoscaling, { model_name: "m", model_version: "1", off: true });
    expect(off.text).toMatch(/Switched autoscaling of m:1 off/);
    expect(off.event).toMatchObject({ kind: "off", model_version: "1" });
    expect(off.state.autoscaling ?? {}).toEqual({});
    expect(setAutoscaling(off.state, JSON.stringify({ model_name: "m", off: true }))).toEqual({ text: "Autoscaling of m:2 is already off" });

    state = apply(state, deleteVersionedModel, { model_name: "m", model_version: "1" }).state;
    expect(state.autoscaling ?? {}).toEqual({});
    expect(read(state)).toEqual({ kind: "json", value: [] });
  });

  it("refuses bad numbers and unknown models with a clear 400", () => {
    const state = consistent();
    const set = (body: Record<string, unknown>) => refusal(() => setAutoscaling(state, JSON.stringify({ model_name: "m", ...body })));
    expect(set({ max_replicas: 4 })).toMatch(/min_replicas is required \(or send "off": true/);
    expect(set({ min_replicas: 5, max_replicas: 4 })).toBe("min_replicas (5) must not be above max_replicas (4)");
    expect(set({ min_replicas: 1, max_replicas: 65 })).toBe("max_replicas must be a whole number from 1 to 64, got 65");
    expect(set({ min_replicas: 0, max_replicas: 0 })).toMatch(/max_replicas must be a whole number from 1/);
    expect(set({ min_replicas: -1, max_replicas: 2 })).toMatch(/min_replicas must be a whole number from 0/);
    expect(set({ min_replicas: 1.5, max_replicas: 2 })).toMatch(/min_replicas must be a whole number/);
    expect(set({ min_replicas: 1, max_replicas: 2, target_queue_per_replica: 0 })).toMatch(/target_queue_per_replica must be a number above 0/);
    expect(set({ min_replicas: 1, max_replicas: 2, scale_down_delay_s: 3601 })).toMatch(/scale_down_delay_s must be a whole number from 0 to 3600/);
    expect(set({ min_replicas: "1", max_replicas: 2 })).toMatch(/^Error parsing JSON: the value of 'min_replicas' is invalid/);
    expect(set({ off: true, max_replicas: 2 })).toBe(`"off": true takes no settings; drop max_replicas`);
    expect(set({ model_version: "9", min_replicas: 1, max_replicas: 2 })).toBe("model with name 'm' and version '9' does not exist");
    expect(refusal(() => setAutoscaling(state, "[1]"))).toMatch(/^Error parsing JSON: the body must be a JSON object/);
    const noCurrent = consistent();
    noCurrent.models.m!.current_version = null;
    expect(refusal(() => setAutoscaling(noCurrent, JSON.stringify({ model_name: "m", min_replicas: 1, max_replicas: 2 }))))
      .toMatch(/has no current version: name the version/);
  });

  it("treats prototype names as the names of models that do not exist", () => {
    const state = consistent();
    for (const key of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      expect(refusal(() => setAutoscaling(state, JSON.stringify({ model_name: key, min_replicas: 1, max_replicas: 2 }))))
        .toBe(`No model with name '${key}' exists.`);
      expect(refusal(() => setAutoscaling(state, JSON.stringify({ model_name: "m", model_version: key, min_replicas: 1, max_replicas: 2 }))))
        .toMatch(/does not exist/);
      expect(read(state, { model_name: key })).toEqual({ kind: "json", value: [] });
    }
  });

  it("keeps the state's invariants, and older state files load as they were", () => {
    const older = JSON.parse(JSON.stringify(consistent()));
    const loaded = ClusterStateSchema.parse(older);
    expect(loaded.autoscaling ?? {}).toEqual({});
    expect(stateViolations(loaded)).toEqual([]);

    const broken = consistent();
    broken.autoscaling = dict([["m", dict([["9", { min_replicas: 3, max_replicas: 2, target_queue_per_replica: 4, scale_down_delay_s: 30 }]])]]);
    broken.autoscaling.gone = dict();
    expect(stateViolations(broken).map(describeViolation)).toEqual([
      "autoscaling.m.9: configures version 'm:9', which does not exist",
      "autoscaling.m.9: min_replicas 3 is above max_replicas 2",
      "autoscaling.gone: an autoscaling record must configure at least one version",
    ]);
  });

  it("has the managers' replica bound", () => {
    expect(MAX_AUTOSCALE_REPLICAS).toBe(MAX_REPLICAS);
  });
});

describe("the autoscaler event log", () => {
  const event = (reason: string) => ({ kind: "scale_up" as const, model_name: "m", model_version: "1", from: 1, to: 2, reason });

  it("numbers and stamps events, pages by sequence number, and stays bounded", () => {
    let now = Date.UTC(2026, 0, 1);
    const log = new AutoscaleEventLog(3, () => now);
    expect(log.page()).toEqual({ events: [], next_seq: 0, missed: 0 });
    for (let i = 1; i <= 5; i++) {
      log.record(event(`r${i}`));
      now += 1000;
    }
    const all = log.page();
    expect(all.events.map((e) => [e.seq, e.reason])).toEqual([[3, "r3"], [4, "r4"], [5, "r5"]]);
    expect(all.events[0]!.at).toBe("2026-01-01T00:00:02.000Z");
    expect(all).toMatchObject({ next_seq: 5, missed: 2 });
    expect(log.page(3)).toMatchObject({ events: [{ seq: 4 }, { seq: 5 }], next_seq: 5, missed: 0 });
    expect(log.page(5)).toEqual({ events: [], next_seq: 5, missed: 0 });
    expect(log.page(0, 1)).toMatchObject({ events: [{ seq: 3 }], next_seq: 3 });
    // A reader that stopped at 1 missed 2 (dropped by the bound).
    expect(log.page(1)).toMatchObject({ missed: 1, events: [{ seq: 3 }, { seq: 4 }, { seq: 5 }] });
  });

  it("reads from the start for a reader of an earlier daemon instance", () => {
    const log = new AutoscaleEventLog();
    log.record(event("fresh"));
    expect(log.page(500)).toMatchObject({ events: [{ seq: 1, reason: "fresh" }], next_seq: 1 });
  });
});
