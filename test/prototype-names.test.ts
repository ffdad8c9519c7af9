/**
 * Names are data: `constructor`, `__proto__`, `toString` and friends as input types, application,
 * model and version names, uids and weights keys, through the admin operations (pure functions, no
 * processes) and an in-process cluster end to end. Valid names work; invalid ones get a clear 400
 * or 404; nothing answers 500, and every state stays consistent and loadable.
 * The parts that start nothing are in test/unit/prototype-names.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startInProcessCluster, sumHandler, type InProcessCluster } from "./support/cluster-in-process.js";

/** As a plain string: TypeScript itself types `record.constructor` as Object's Function. */
const CONSTRUCTOR: string = "constructor";

const app = (name: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ name, input_type: "doubles", default_output: "-1", latency_slo_micros: 100000, ...extra });
const model = (name: string, version: string, inputType = "doubles") => JSON.stringify({
  model_name: name, model_version: version, labels: [], input_type: inputType,
  container_name: "c", model_data_path: "p", batch_size: -1,
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
