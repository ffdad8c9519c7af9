/**
 * The frontend's own copy of the configuration (runtime/frontend/frontend-config.ts): what a delta
 * reports as changed, the index of which applications link each model (batch budgets), and records
 * replaced rather than changed under a reader that holds one.
 */
import { describe, expect, it } from "vitest";
import { FrontendConfig } from "../../runtime/frontend/frontend-config.js";
import { dict } from "../../runtime/shared/dict.js";
import type { StateDelta } from "../../runtime/shared/state-delta.js";
import { emptyState, type AppRecord } from "../../runtime/shared/state.js";
import { appRecord, versionRecord } from "../support/state-fixtures.js";

const app = (name: string, linked: string[], sloMicros: number): AppRecord => ({ ...appRecord(name, linked), latency_slo_micros: sloMicros });

function start(): FrontendConfig {
  const state = emptyState();
  state.revision = 1;
  state.applications.a = app("a", ["m"], 40_000);
  state.applications.b = app("b", ["m", "n"], 10_000);
  state.models.m = { name: "m", current_version: "1", versions: dict([["1", versionRecord("m", "1")]]) };
  const config = new FrontendConfig();
  config.replace(state);
  return config;
}

describe("the frontend's configuration copy", () => {
  it("indexes the tightest SLO per model from a snapshot and keeps it through deltas", () => {
    const config = start();
    expect(config.tightestSloMicros("m")).toBe(10_000);
    expect(config.tightestSloMicros("n")).toBe(10_000);
    expect(config.tightestSloMicros("lonely")).toBeUndefined();

    // b unlinks m and loosens; c links n tighter.
    const delta: StateDelta = { revision: 2, base: 1, changes: [
      { field: "applications", key: "b", value: app("b", ["n"], 90_000) },
      { field: "applications", key: "c", value: app("c", ["n"], 5_000) },
    ] };
    const change = config.apply(delta);
    expect(change.snapshot).toBe(false);
    expect([...change.apps.keys()]).toEqual(["b", "c"]);
    expect(change.apps.get("b")?.latency_slo_micros).toBe(10_000); // the record before
    expect(change.apps.get("c")).toBeUndefined(); // new
    expect([...FrontendConfig.affectedModels(change)].sort()).toEqual(["m", "n"]);
    expect(config.tightestSloMicros("m")).toBe(40_000);
    expect(config.tightestSloMicros("n")).toBe(5_000);

    const removed = config.apply({ revision: 3, base: 2, changes: [{ field: "applications", key: "a" }, { field: "applications", key: "c" }] });
    expect([...FrontendConfig.affectedModels(removed)].sort()).toEqual(["m", "n"]);
    expect(config.tightestSloMicros("m")).toBeUndefined();
    expect(config.tightestSloMicros("n")).toBe(90_000);
  });

  it("names models, policy state, query logs and API keys a delta changed, and nothing else", () => {
    const config = start();
    const change = config.apply({ revision: 2, base: 1, changes: [
      { field: "models", key: "m", value: { name: "m", current_version: "1", versions: dict() } },
      { field: "policy_state", key: "a", value: dict([["*", dict([["m", 1]])]]) },
      { field: "query_log", key: "b", value: { sample: 0.5, max_mb: 10 } },
      { field: "autoscaling", key: "m", value: dict() },
    ] });
    expect([...change.models.keys()]).toEqual(["m"]);
    expect(Object.keys(change.models.get("m")!.versions)).toEqual(["1"]);
    expect([...change.policyStates]).toEqual(["a"]);
    expect([...change.queryLogs]).toEqual(["b"]);
    expect(change.apiKeys).toBe(false);
    expect(change.apps.size).toBe(0);
    expect(config.apply({ revision: 3, base: 2, changes: [{ field: "api_keys", value: [] }] }).apiKeys).toBe(true);
  });

  it("replaces records: one held across a change stays whole, as it was", () => {
    const config = start();
    const held = config.state!.applications.a!;
    const heldLinks = [...held.linked_models];
    config.apply({ revision: 2, base: 1, changes: [{ field: "applications", key: "a", value: app("a", ["n"], 1_000) }] });
    expect(held.linked_models).toEqual(heldLinks);
    expect(held.latency_slo_micros).toBe(40_000);
    expect(config.state!.applications.a!.linked_models).toEqual(["n"]);
  });

  it("refuses a delta from another base and one before any snapshot, changing nothing", () => {
    const config = start();
    expect(() => config.apply({ revision: 6, base: 5, changes: [{ field: "applications", key: "a" }] })).toThrow(/revision 5/);
    expect(config.state!.revision).toBe(1);
    expect(Object.keys(config.state!.applications)).toEqual(["a", "b"]);
    expect(config.tightestSloMicros("m")).toBe(10_000);
    expect(() => new FrontendConfig().apply({ revision: 1, base: 0, changes: [] })).toThrow(/before any snapshot/);
  });
});
