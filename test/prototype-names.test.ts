/**
 * Names are data: `constructor`, `__proto__`, `toString` and friends as input types, application,
 * model and version names, uids and weights keys, through the admin operations (pure functions, no
 * processes) and an in-process cluster end to end. Valid names work; invalid ones get a clear 400
 * or 404; nothing answers 500, and every state stays consistent and loadable.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminError } from "../runtime/management/errors.js";
import {
  addApp, addModel, addModelLinks, deleteApp, deleteModelLinks, deleteVersionedModel, getApplication, getLinkedModels,
  getModel, getState, setModelVersion, type WriteOperation,
} from "../runtime/management/operations.js";
import { getPolicyState, setAppPolicy, updatePolicyState } from "../runtime/management/policy-operations.js";
import { canonicalInputType } from "../runtime/shared/input-types.js";
import { stateViolations } from "../runtime/shared/state-invariants.js";
import { type ClusterState, ClusterStateSchema, emptyState } from "../runtime/shared/state.js";
import { parsePolicySpec } from "../src/policy-spec.js";
import { startInProcessCluster, sumHandler, type InProcessCluster } from "./support/cluster-in-process.js";

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
  const { next } = op(state, typeof body === "string" ? body : JSON.stringify(body));
  if (!next) return state;
  expect(stateViolations(next)).toEqual([]);
  const reloaded = ClusterStateSchema.parse(JSON.parse(JSON.stringify(next)));
  expect(JSON.stringify(reloaded)).toBe(JSON.stringify(next));
  return { ...reloaded, revision: state.revision + 1 };
}

/** The 400 an operation throws, or a failure when it throws anything else (a 500 in the daemon). */
function refusal(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(AdminError);
    expect((err as AdminError).status).toBe(400);
    return (err as AdminError).message;
  }
  throw new Error("expected a 400");
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

describe("prototype names in a running cluster", () => {
  let cluster: InProcessCluster;
  beforeAll(async () => {
    cluster = await startInProcessCluster();
  });
  afterAll(() => cluster.close());

  const post = async (path: string, body: unknown) => {
    const res = await fetch(cluster.management.url + path, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  };

  it("answers 400 to a prototype input type and keeps accepting writes", async () => {
    for (const key of ["constructor", "__proto__", "toString", "valueOf"]) {
      const res = await post("/admin/add_app", JSON.parse(app("bad", { input_type: key })));
      expect(res.status).toBe(400);
      expect(res.text).toMatch(/^Invalid input type/);
    }
    expect((await post("/admin/add_app", JSON.parse(app("fine")))).status).toBe(200);
  });

  it("registers, links, serves and deletes `constructor` end to end, and 404s names that do not exist", async () => {
    for (const path of ["/constructor/predict", "/__proto__/predict", "/toString/predict", "/hasOwnProperty/update"]) {
      const res = await fetch(cluster.frontend.queryUrl + path, { method: "POST", headers: { "content-type": "application/json" }, body: '{"input":[1]}' });
      expect(res.status, path).toBe(404);
    }
    for (const name of ["toString", "constructor", "__proto__"]) {
      const res = await fetch(`${cluster.frontend.queryUrl}/v2/models/${name}/infer`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ inputs: [{ name: "x", shape: [1], datatype: "FP64", data: [1] }] }),
      });
      expect(res.status, name).toBe(404);
    }

    expect((await post("/admin/add_app", JSON.parse(app("constructor")))).status).toBe(200);
    await cluster.addContainer("constructor", "constructor", "doubles", sumHandler);
    expect((await post("/admin/add_model", JSON.parse(model("constructor", "constructor")))).status).toBe(200);
    expect((await post("/admin/add_model_links", { app_name: "constructor", model_names: ["constructor"] })).status).toBe(200);
    await cluster.waitForConfig((f) => f.state()?.applications[CONSTRUCTOR]?.linked_models.length === 1);
    expect((await cluster.predict("constructor", { input: [1, 2, 3] })).body).toMatchObject({ output: 6, default: false });

    const infer = await fetch(`${cluster.frontend.queryUrl}/v2/models/constructor/infer`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ inputs: [{ name: "x", shape: [1, 2], datatype: "FP64", data: [2, 3] }] }),
    });
    expect(infer.status).toBe(200);

    expect((await post("/admin/set_app_policy", { name: "constructor", policy: { name: "canary", weights: { constructor: 1 } } })).status).toBe(200);
    await cluster.waitForConfig((f) => f.state()?.applications[CONSTRUCTOR]?.policy?.name === "canary");
    expect((await cluster.predict("constructor", { input: [4] })).body).toMatchObject({ output: 4, default: false, version: "constructor" });

    // Replicas of unregistered models and versions named like prototype properties disturb nothing.
    await cluster.addContainer("constructor", "tostring", "doubles", sumHandler);
    await cluster.addContainer("__proto__", "valueOf", "doubles", sumHandler);
    await cluster.addContainer("toString", "constructor", "doubles", sumHandler);
    expect((await cluster.predict("constructor", { input: [5] })).body).toMatchObject({ output: 5, default: false });

    expect((await post("/admin/delete_app", { name: "constructor" })).status).toBe(200);
    expect((await post("/admin/delete_versioned_model", { model_name: "constructor", model_version: "constructor" })).status).toBe(200);
    expect((await post("/admin/add_app", JSON.parse(app("after")))).status).toBe(200);
  });
});
