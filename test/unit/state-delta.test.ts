import { describe, expect, it } from "vitest";
import { cloneData, dict } from "../../runtime/shared/dict.js";
import { LinkIndex } from "../../runtime/shared/link-index.js";
import { applyStateDelta, diffStates, parseStateDelta, StateDeltaError } from "../../runtime/shared/state-delta.js";
import { emptyState, type AppRecord, type ClusterState } from "../../runtime/shared/state.js";

function app(name: string, linked: string[] = []): AppRecord {
  return { name, input_type: "doubles", default_output: "-1", latency_slo_micros: 100_000, linked_models: linked };
}

function stateWith(names: string[]): ClusterState {
  const state = emptyState();
  for (const name of names) state.applications[name] = app(name);
  state.models["m"] = {
    name: "m", current_version: "1",
    versions: dict([["1", { model_name: "m", model_version: "1", labels: [], input_type: "doubles", container_name: "c", model_data_path: "", batch_size: -1 }]]),
  };
  return state;
}

/** What a delta carries over the wire and back. */
function overTheWire(prev: ClusterState, next: ClusterState) {
  return parseStateDelta(JSON.parse(JSON.stringify({ revision: next.revision, base: prev.revision, changes: diffStates(prev, next) })));
}

describe("state deltas", () => {
  it("carry only the entries a write changed, and applying them gives the written state", () => {
    const prev = stateWith(["a", "b", "constructor", "__proto__"]);
    const next = { ...prev, revision: 1, applications: dict(prev.applications) };
    next.applications["a"] = app("a", ["m"]);
    delete next.applications["b"];
    next.applications["toString"] = app("toString");
    next.query_log = dict([["__proto__", { sample: 0.5, max_mb: 10 }]]);
    const delta = overTheWire(prev, next);
    expect(delta.changes.map((c) => `${c.field}:${"key" in c ? c.key : ""}:${c.value === undefined ? "-" : "+"}`).sort())
      .toEqual(["applications:a:+", "applications:b:-", "applications:toString:+", "query_log:__proto__:+"]);
    const copy = cloneData(prev);
    applyStateDelta(copy, delta);
    expect(JSON.parse(JSON.stringify(copy))).toEqual(JSON.parse(JSON.stringify(next)));
    expect(Object.getPrototypeOf(copy.applications)).toBeNull();
    expect(Object.hasOwn(copy.query_log!, "__proto__")).toBe(true);
  });

  it("count a copied but equal record as no change", () => {
    const prev = stateWith(["a"]);
    const next = { ...cloneData(prev), revision: 1 };
    expect(diffStates(prev, next)).toEqual([]);
  });

  it("replace and remove whole fields", () => {
    const prev = stateWith([]);
    const next = { ...prev, revision: 1, api_keys: [] };
    const copy = cloneData(prev);
    applyStateDelta(copy, overTheWire(prev, next));
    expect(copy.api_keys).toEqual([]);
    applyStateDelta(copy, overTheWire(next, { ...next, revision: 2, api_keys: undefined }));
    expect(copy).not.toHaveProperty("api_keys");
    expect(copy.revision).toBe(2);
  });

  it("refuse a delta for another revision, an unknown field and a value its schema refuses", () => {
    const state = stateWith([]);
    expect(() => applyStateDelta(state, { revision: 3, base: 2, changes: [] })).toThrow(StateDeltaError);
    expect(() => parseStateDelta({ revision: 1, base: 0, changes: [{ field: "revision", value: 9 }] })).toThrow(/unknown field/);
    expect(() => parseStateDelta({ revision: 1, base: 0, changes: [{ field: "applications", key: "a", value: { name: 1 } }] })).toThrow(StateDeltaError);
    expect(() => parseStateDelta({ revision: 1, base: 0, changes: [{ field: "applications", value: app("a") }] })).toThrow(/needs a key/);
    expect(() => parseStateDelta({ revision: 1, base: 1, changes: [] })).toThrow(StateDeltaError);
    expect(() => parseStateDelta("nope")).toThrow(StateDeltaError);
  });

  it("keep a link index in step, and take a delta back whole", () => {
    const state = stateWith(["a"]);
    const links = LinkIndex.of(state);
    const before = JSON.stringify(state);
    const undo = applyStateDelta(state, {
      revision: 1, base: 0,
      changes: [
        { field: "applications", key: "__proto__", value: app("__proto__", ["m"]) },
        { field: "applications", key: "a" },
        { field: "query_log", key: "x", value: { sample: 1, max_mb: 1 } },
      ],
    }, links);
    expect(links.appsLinking("m")).toEqual(["__proto__"]);
    expect(state.revision).toBe(1);
    undo();
    expect(JSON.stringify(state)).toBe(before);
    expect(state).not.toHaveProperty("query_log");
    expect(links.appsLinking("m")).toEqual([]);
  });
});
