/**
 * Names are data: `constructor`, `__proto__`, `toString` and friends as input types, application,
 * model and version names through the admin operations (pure functions) and the CLI's policy specs.
 * The in-process cluster end to end is in test/prototype-names.test.ts.
 */
import { describe, expect, it } from "vitest";
import {
  addApp, addModel, addModelLinks, deleteApp, deleteModelLinks, deleteVersionedModel, getApplication, getLinkedModels,
  getModel, getState, setModelVersion, type WriteOperation,
} from "../../runtime/management/operations.js";
import { getPolicyState, setAppPolicy, updatePolicyState } from "../../runtime/management/policy-operations.js";
import { canonicalInputType } from "../../runtime/shared/input-types.js";
import { stateViolations } from "../../runtime/shared/state-invariants.js";
import { type ClusterState, ClusterStateSchema, emptyState } from "../../runtime/shared/state.js";
import { parsePolicySpec } from "../../src/policy-spec.js";
import { refusal } from "../support/admin-refusal.js";
import { stateAfter } from "../support/write-outcome.js";

/** As a plain string: TypeScript itself types `record.constructor` as Object's Function. */
const CONSTRUCTOR: string = "constructor";
const PROTOTYPE_KEYS = ["constructor", "__proto__", "toString", "valueOf", "hasOwnProperty", "isPrototypeOf", "__defineGetter__"];

const app = (name: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ name, input_type: "doubles", default_output: "-1", latency_slo_micros: 100000, ...extra });
const model = (name: string, version: string, inputType = "doubles") => JSON.stringify({
  model_name: name, model_version: version, labels: [], input_type: inputType,
  container_name: "c", model_data_path: "p", batch_size: -1,
});

/** Applies a write like the store does: the next state must be consistent and load back as it is. */
function apply(state: ClusterState, op: WriteOperation, body: unknown): ClusterState {
  const next = stateAfter(state, op(state, typeof body === "string" ? body : JSON.stringify(body)));
  if (!next) return state;
  expect(stateViolations(next)).toEqual([]);
  const reloaded = ClusterStateSchema.parse(JSON.parse(JSON.stringify(next)));
  expect(JSON.stringify(reloaded)).toBe(JSON.stringify(next));
  return { ...reloaded, revision: state.revision + 1 };
}


describe("prototype names through the admin operations", () => {
  it("are not input types", () => {
    for (const key of PROTOTYPE_KEYS) {
      expect(canonicalInputType(key)).toBeUndefined();
      expect(refusal(() => addApp(emptyState(), app("a", { input_type: key })))).toMatch(/^Invalid input type/);
      expect(refusal(() => addModel(emptyState(), model("m", "1", key)))).toMatch(/^Invalid input type/);
    }
    expect(canonicalInputType("Ints")).toBe("integers");
  });

  it("refuses the ones the name rule refuses with a clear 400, never a crash", () => {
    let state = apply(emptyState(), addApp, app("a"));
    state = apply(state, addModel, model("m", "1"));
    for (const key of PROTOTYPE_KEYS.filter((k) => k !== "constructor")) {
      expect(refusal(() => addApp(state, app(key)))).toMatch(/must consist of lower case/);
      expect(refusal(() => addModel(state, model(key, "1")))).toMatch(/must consist of lower case/);
      expect(refusal(() => addModel(state, model("m", key)))).toMatch(/must consist of lower case/);
      expect(refusal(() => deleteApp(state, JSON.stringify({ name: key })))).toBe(`Application '${key}' does not exist`);
      expect(refusal(() => addModelLinks(state, JSON.stringify({ app_name: key, model_names: ["m"] })))).toMatch(/No app with name/);
      expect(refusal(() => addModelLinks(state, JSON.stringify({ app_name: "a", model_names: [key] })))).toMatch(/No model with name/);
      expect(refusal(() => deleteModelLinks(state, JSON.stringify({ app_name: key, model_names: [] })))).toMatch(/No app with name/);
      expect(refusal(() => setModelVersion(state, JSON.stringify({ model_name: key, model_version: "1" })))).toMatch(/nonexistent model/);
      expect(refusal(() => setModelVersion(state, JSON.stringify({ model_name: "m", model_version: key })))).toMatch(/non-existent version/);
      expect(refusal(() => deleteVersionedModel(state, JSON.stringify({ model_name: key, model_version: key })))).toMatch(/does not exist/);
      expect(refusal(() => setAppPolicy(state, JSON.stringify({ name: key, policy: { name: "default" } })))).toMatch(/does not exist/);
      expect(refusal(() => updatePolicyState(state, JSON.stringify({ app_name: key, weights: {} })))).toMatch(/No application/);
      expect(refusal(() => getLinkedModels({ state, replicas: [] }, JSON.stringify({ app_name: key })))).toMatch(/No application/);
      expect(refusal(() => getState({ state, replicas: [] }, JSON.stringify({ app_name: key, uid: 0 })))).toMatch(/No application/);
      expect(getApplication({ state, replicas: [] }, JSON.stringify({ name: key }))).toEqual({ kind: "json", value: {} });
      expect(getModel({ state, replicas: [] }, JSON.stringify({ model_name: key, model_version: key }))).toEqual({ kind: "json", value: {} });
    }
  });

  it("serves `constructor` as an ordinary application, model and version name", () => {
    let state = emptyState();
    expect(refusal(() => deleteApp(state, JSON.stringify({ name: "constructor" })))).toBe("Application 'constructor' does not exist");
    state = apply(state, addModel, model("m", "1"));
    // An inherited property is no version: the current version never points at one.
    for (const key of PROTOTYPE_KEYS) {
      expect(refusal(() => setModelVersion(state, JSON.stringify({ model_name: "m", model_version: key }))))
        .toBe(`Cannot set non-existent version '${key}' for model with name 'm'`);
    }
    expect(getApplication({ state, replicas: [] }, JSON.stringify({ name: "constructor" }))).toEqual({ kind: "json", value: {} });
    state = apply(state, addApp, app("constructor", { policy: { name: "exp3" } }));
    state = apply(state, addModel, model("constructor", "constructor"));
    state = apply(state, addModel, model("constructor", "1"));
    state = apply(state, addModelLinks, { app_name: "constructor", model_names: ["constructor", "m"] });
    state = apply(state, setModelVersion, { model_name: "constructor", model_version: "constructor" });
    expect(state.models[CONSTRUCTOR]!.current_version).toBe("constructor");
    expect(getLinkedModels({ state, replicas: [] }, JSON.stringify({ app_name: "constructor" }))).toEqual({ kind: "json", value: ["constructor", "m"] });

    // Weights keyed by prototype names, per uid `__proto__`: stored as entries, prototypes untouched.
    state = apply(state, updatePolicyState, { app_name: "constructor", uid: "__proto__", weights: { constructor: 2, m: 0.5 } });
    state = apply(state, updatePolicyState, { app_name: "constructor", uid: "constructor", weights: { constructor: 1 } });
    expect(Object.keys(state.policy_state![CONSTRUCTOR]!)).toEqual(["__proto__", "constructor"]);
    expect(Object.getPrototypeOf(state.policy_state![CONSTRUCTOR]!)).toBeNull();
    const one = getPolicyState({ state, replicas: [] }, JSON.stringify({ app_name: "constructor", uid: "__proto__" }));
    expect(JSON.parse(JSON.stringify(one))).toEqual({
      kind: "json", value: { app_name: "constructor", policy: "exp3", weights: { ["__proto__"]: { constructor: 2, m: 0.5 } } },
    });
    const none = getPolicyState({ state, replicas: [] }, JSON.stringify({ app_name: "constructor", uid: "toString" }));
    expect(JSON.parse(JSON.stringify(none)).value.weights).toEqual({});

    // A canary over versions named like prototype properties.
    state = apply(state, deleteModelLinks, { app_name: "constructor", model_names: ["m"] });
    state = apply(state, setAppPolicy, { name: "constructor", policy: { name: "canary", weights: { constructor: 9, "1": 1 } } });
    expect(Object.getPrototypeOf((state.applications[CONSTRUCTOR]!.policy as { weights: object }).weights)).toBeNull();

    // Deleting the last version of a linked model is refused; unlinked, it goes.
    state = apply(state, deleteVersionedModel, { model_name: "constructor", model_version: "1" });
    expect(refusal(() => deleteVersionedModel(state, JSON.stringify({ model_name: "constructor", model_version: "constructor" }))))
      .toMatch(/last version of model 'constructor': application 'constructor' links it/);
    state = apply(state, deleteModelLinks, { app_name: "constructor", model_names: ["constructor"] });
    state = apply(state, deleteVersionedModel, { model_name: "constructor", model_version: "constructor" });
    expect(Object.keys(state.models)).toEqual(["m"]);
    state = apply(state, deleteApp, { name: "constructor" });
    expect(Object.keys(state.applications)).toEqual([]);
    expect(state.policy_state).toEqual({});
    expect(({} as Record<string, unknown>).m).toBeUndefined(); // no prototype was polluted on the way
  });
});

describe("prototype names in the CLI's policy specs", () => {
  it("are canary versions like any other", () => {
    const spec = parsePolicySpec("canary:constructor=9,__proto__=1");
    expect(JSON.parse(JSON.stringify(spec))).toEqual({ name: "canary", weights: { constructor: 9, ["__proto__"]: 1 } });
    expect(() => parsePolicySpec("canary:constructor=9,constructor=1")).toThrow(/appears twice/);
  });
});
