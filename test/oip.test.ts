/**
 * The Open Inference Protocol v2 on the query port, through a real management daemon, frontend
 * and RPC v3 containers (test/support/cluster-in-process.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BATCH_ERROR_PREFIX } from "../runtime/rpc/codec.js";
import { decodeInput } from "../runtime/shared/input-types.js";
import { startInProcessCluster, sumHandler, type InProcessCluster } from "./support/cluster-in-process.js";

let c: InProcessCluster;

interface Reply {
  status: number;
  body: any;
  contentType: string | null;
  ms: number;
}

async function oip(method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<Reply> {
  const started = performance.now();
  const res = await fetch(`${c.frontend.queryUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text), contentType: res.headers.get("content-type"), ms: performance.now() - started };
}

const infer = (model: string, body: unknown, version?: string) =>
  oip("POST", `/v2/models/${model}${version === undefined ? "" : `/versions/${version}`}/infer`, body);

/** Every error is `{"error": "<text>"}` and nothing else, as JSON. */
function expectError(reply: Reply, status: number, text?: string | RegExp): void {
  expect(reply.status, JSON.stringify(reply.body)).toBe(status);
  expect(reply.contentType).toContain("application/json");
  expect(Object.keys(reply.body)).toEqual(["error"]);
  expect(typeof reply.body.error).toBe("string");
  if (text !== undefined) expect(reply.body.error).toMatch(text);
}

async function addModel(name: string, version: string, inputType = "doubles", batchSize = -1): Promise<void> {
  await c.admin.postText("/admin/add_model", {
    model_name: name, model_version: version, labels: [], input_type: inputType,
    container_name: "NO_CONTAINER", model_data_path: "x", batch_size: batchSize,
  });
  await c.waitForConfig((f) => f.state()?.models[name]?.versions[version] !== undefined);
}

async function addApp(name: string, sloMicros: number, model: string): Promise<void> {
  await c.admin.postText("/admin/add_app", { name, input_type: "doubles", default_output: "-1", latency_slo_micros: sloMicros });
  await c.admin.postText("/admin/add_model_links", { app_name: name, model_names: [model] });
  await c.waitForConfig((f) => Boolean(f.state()?.applications[name]?.linked_models.includes(model)));
}

/** Answers each input with the JSON of what the container received, decoded for its input type. */
const echoHandler = (batch: Parameters<typeof sumHandler>[0]) =>
  batch.inputs.map((raw) => {
    const value = decodeInput(batch.inputType, raw);
    return JSON.stringify(Buffer.isBuffer(value) ? { bytes: value.toString("hex") } : { got: value });
  });

beforeAll(async () => {
  c = await startInProcessCluster({ replicaTimeoutMs: 2_000, frontendMaxBody: 64 * 1024 });
  await addModel("sum", "1", "doubles");
  await c.addContainer("sum", "1", "doubles", sumHandler);
});
afterAll(async () => {
  await c?.close();
});

describe("server endpoints", () => {
  it("answers server metadata, liveness and readiness", async () => {
    const meta = await oip("GET", "/v2");
    expect(meta.status).toBe(200);
    expect(meta.body).toEqual({ name: "clipper", version: expect.any(String), extensions: [] });
    expect(meta.body.version).not.toBe("unknown");
    expect((await oip("GET", "/v2/")).status).toBe(200);
    expect(await oip("GET", "/v2/health/live")).toMatchObject({ status: 200, body: { live: true } });
    expect(await oip("GET", "/v2/health/ready")).toMatchObject({ status: 200, body: { ready: true } });
  });

  it("answers unknown paths and wrong methods with JSON errors", async () => {
    expectError(await oip("GET", "/v2/nothing/here"), 404, /no Open Inference Protocol endpoint/);
    expectError(await oip("GET", "/v2/models/sum/explain"), 404);
    expectError(await oip("GET", "/v2/models/sum/infer"), 405, /accepts POST/);
    expectError(await oip("POST", "/v2/models/sum", {}), 405, /accepts GET/);
    expectError(await oip("PUT", "/v2/health/live"), 405);
    expectError(await oip("GET", "/v2/models/%E0%A4%A"), 400, /URL encoding/);
  });

  it("leaves Clipper's routes to an application named v2", async () => {
    await addApp("v2", 5_000_000, "sum");
    const reply = await c.predict("v2", { input: [1, 2] });
    expect(reply).toMatchObject({ status: 200, body: { output: 3, default: false } });
  });
});

describe("model metadata and readiness", () => {
  it("derives tensor metadata from each input type", async () => {
    const expected: Record<string, { datatype: string; shape: number[] }> = {
      doubles: { datatype: "FP64", shape: [-1, -1] },
      floats: { datatype: "FP32", shape: [-1, -1] },
      integers: { datatype: "INT32", shape: [-1, -1] },
      strings: { datatype: "BYTES", shape: [-1] },
      bytes: { datatype: "BYTES", shape: [-1] },
    };
    for (const [type, input] of Object.entries(expected)) {
      await addModel(`meta-${type}`, "1", type);
      const meta = await oip("GET", `/v2/models/meta-${type}`);
      expect(meta.status).toBe(200);
      expect(meta.body).toEqual({
        name: `meta-${type}`, versions: ["1"], platform: "clipper",
        inputs: [{ name: "input", ...input }], outputs: [{ name: "output", datatype: "BYTES", shape: [-1] }],
      });
    }
  });

  it("lists versions, answers a pinned version, and 404s unknown models and versions", async () => {
    await addModel("meta-v", "1", "doubles");
    await addModel("meta-v", "2", "integers");
    const all = await oip("GET", "/v2/models/meta-v");
    expect(all.body.versions).toEqual(["1", "2"]);
    expect(all.body.inputs[0].datatype).toBe("INT32"); // the current version, 2
    const pinned = await oip("GET", "/v2/models/meta-v/versions/1");
    expect(pinned.body).toMatchObject({ name: "meta-v", versions: ["1"], inputs: [{ datatype: "FP64" }] });
    expectError(await oip("GET", "/v2/models/nope"), 404, "unknown model 'nope'");
    expectError(await oip("GET", "/v2/models/meta-v/versions/9"), 404, "model 'meta-v' has no version '9'");
    expectError(await oip("GET", "/v2/models/nope/ready"), 404);
    expectError(await infer("nope", { inputs: [] }), 404, "unknown model 'nope'");
  });

  it("is ready when a replica of the version is connected, else 400", async () => {
    await addModel("rdy", "1");
    expectError(await oip("GET", "/v2/models/rdy/ready"), 400, /not ready: no replica is connected/);
    await c.addContainer("rdy", "1", "doubles", sumHandler);
    expect(await oip("GET", "/v2/models/rdy/ready")).toMatchObject({ status: 200, body: { name: "rdy", version: "1", ready: true } });
    await addModel("rdy", "2");
    // The current version (2) has no replica; version 1 still does.
    expectError(await oip("GET", "/v2/models/rdy/ready"), 400, /version '2' is not ready/);
    expect((await oip("GET", "/v2/models/rdy/versions/1/ready")).status).toBe(200);
    expectError(await oip("GET", "/v2/models/rdy/versions/7/ready"), 404);
    // Inference on a version with no replica: 503.
    expectError(await infer("rdy", { inputs: [{ name: "x", shape: [1], datatype: "FP64", data: [1] }] }), 503, /no connected replica/);
  });
});

describe("inference: tensors in", () => {
  it("splits FP64 [n, d] into n inputs, flat or nested, and echoes the id", async () => {
    const flat = await infer("sum", { id: "q1", inputs: [{ name: "input", shape: [2, 3], datatype: "FP64", data: [1, 2, 3, 4, 5, 6] }] });
    expect(flat.status).toBe(200);
    expect(flat.body).toEqual({
      model_name: "sum", model_version: "1", id: "q1",
      outputs: [{ name: "output", datatype: "FP64", shape: [2], data: [6, 15] }],
    });
    const nested = await infer("sum", { inputs: [{ name: "input", shape: [2, 3], datatype: "FP64", data: [[1, 2, 3], [4, 5, 6]] }] });
    expect(nested.body.outputs[0].data).toEqual([6, 15]);
    expect(nested.body.id).toBeUndefined();
    const deep = await infer("sum", { inputs: [{ name: "input", shape: [2, 2, 2], datatype: "FP64", data: [[[1, 1], [1, 1]], [[2, 2], [2, 2]]] }] });
    expect(deep.body.outputs[0]).toMatchObject({ shape: [2], data: [4, 8] });
    const one = await infer("sum", { inputs: [{ name: "input", shape: [3], datatype: "FP64", data: [1, 2, 3] }] });
    expect(one.body.outputs[0]).toMatchObject({ datatype: "FP64", shape: [1], data: [6] });
    const oneRow = await infer("sum", { inputs: [{ name: "input", shape: [1, 3], datatype: "FP64", data: [[1, 2, 3]] }] });
    expect(oneRow.body.outputs[0]).toMatchObject({ shape: [1], data: [6] });
  });

  it("converts FP32 and integer data for a doubles model", async () => {
    const fp32 = await infer("sum", { inputs: [{ name: "input", shape: [1, 2], datatype: "FP32", data: [0.5, 0.25] }] });
    expect(fp32.body.outputs[0].data).toEqual([0.8]); // sumHandler answers toFixed(1)
    const int = await infer("sum", { inputs: [{ name: "input", shape: [2, 1], datatype: "INT64", data: [7, 8] }] });
    expect(int.body.outputs[0].data).toEqual([7, 8]);
    const bool = await infer("sum", { inputs: [{ name: "input", shape: [3], datatype: "BOOL", data: [true, false, true] }] });
    expect(bool.body.outputs[0].data).toEqual([2]);
  });

  it("sends float32 to a floats model", async () => {
    await addModel("fl", "1", "floats");
    await c.addContainer("fl", "1", "floats", echoHandler);
    const reply = await infer("fl", { inputs: [{ name: "input", shape: [1, 2], datatype: "FP32", data: [0.5, 1.1] }] });
    expect(reply.status).toBe(200);
    // Each output is {"got": [...]}, not a number: BYTES with the container's strings.
    expect(reply.body.outputs[0].datatype).toBe("BYTES");
    expect(JSON.parse(reply.body.outputs[0].data[0]).got).toEqual([0.5, Math.fround(1.1)]);
    expectError(await infer("fl", { inputs: [{ name: "input", shape: [1], datatype: "FP64", data: [1e300] }] }), 400, /float32/);
  });

  it("sends int32 to an integers model and refuses what does not fit", async () => {
    await addModel("ints", "1", "integers");
    await c.addContainer("ints", "1", "integers", sumHandler);
    for (const datatype of ["INT32", "INT64", "UINT8", "INT8"]) {
      const reply = await infer("ints", { inputs: [{ name: "input", shape: [2, 2], datatype, data: [1, 2, 3, 4] }] });
      expect(reply.body.outputs[0], datatype).toMatchObject({ datatype: "FP64", shape: [2], data: [3, 7] });
    }
    expectError(await infer("ints", { inputs: [{ name: "input", shape: [1], datatype: "INT64", data: [2 ** 40] }] }), 400, /int32/);
    expectError(await infer("ints", { inputs: [{ name: "input", shape: [1], datatype: "INT32", data: [2 ** 31] }] }), 400, /range of INT32/);
    expectError(await infer("ints", { inputs: [{ name: "input", shape: [1], datatype: "INT32", data: [1.5] }] }), 400, /not an integer/);
    expectError(await infer("ints", { inputs: [{ name: "input", shape: [1], datatype: "FP32", data: [1] }] }), 400, /datatype FP32, but the model takes integers/);
    expectError(await infer("ints", { inputs: [{ name: "input", shape: [1], datatype: "UINT8", data: [256] }] }), 400, /range of UINT8/);
  });

  it("sends BYTES elements to a strings model, one input per element", async () => {
    await addModel("str", "1", "strings");
    await c.addContainer("str", "1", "strings", (batch) => batch.inputs.map((raw) => raw.toString("utf8").toUpperCase()));
    const reply = await infer("str", { inputs: [{ name: "text", shape: [3], datatype: "BYTES", data: ["cat", "dog", "émû"] }] });
    expect(reply.status).toBe(200);
    expect(reply.body.outputs).toEqual([{ name: "output", datatype: "BYTES", shape: [3], data: ["CAT", "DOG", "ÉMÛ"] }]);
    const column = await infer("str", { inputs: [{ name: "text", shape: [2, 1], datatype: "BYTES", data: [["a"], ["b"]] }] });
    expect(column.body.outputs[0].data).toEqual(["A", "B"]);
    const b64 = await infer("str", {
      inputs: [{ name: "text", shape: [1], datatype: "BYTES", data: [Buffer.from("hi").toString("base64")], parameters: { content_type: "base64" } }],
    });
    expect(b64.body.outputs[0].data).toEqual(["HI"]);
    expectError(await infer("str", { inputs: [{ name: "t", shape: [1, 2], datatype: "BYTES", data: ["a", "b"] }] }), 400, /one string per input/);
    expectError(await infer("str", { inputs: [{ name: "t", shape: [1], datatype: "FP64", data: [1] }] }), 400, /takes strings/);
    expectError(await infer("str", { inputs: [{ name: "t", shape: [1], datatype: "BYTES", data: [5] }] }), 400, /not a JSON string/);
    expectError(await infer("sum", { inputs: [{ name: "t", shape: [1], datatype: "BYTES", data: ["1"] }] }), 400, /takes doubles/);
  });

  it("sends BYTES to a bytes model as UTF-8, or decoded with content_type base64", async () => {
    await addModel("raw", "1", "bytes");
    await c.addContainer("raw", "1", "bytes", echoHandler);
    const utf8 = await infer("raw", { inputs: [{ name: "b", shape: [1], datatype: "BYTES", data: ["AQI="] }] });
    expect(JSON.parse(utf8.body.outputs[0].data[0])).toEqual({ bytes: Buffer.from("AQI=").toString("hex") });
    const b64 = await infer("raw", { inputs: [{ name: "b", shape: [1], datatype: "BYTES", data: ["AQI="], parameters: { content_type: "base64" } }] });
    expect(JSON.parse(b64.body.outputs[0].data[0])).toEqual({ bytes: "0102" });
    expectError(await infer("raw", { inputs: [{ name: "b", shape: [1], datatype: "BYTES", data: ["@@"], parameters: { content_type: "base64" } }] }), 400, /base64/);
  });

  it("refuses malformed requests with 400 and a message", async () => {
    const t = (extra: Record<string, unknown>) => ({ inputs: [{ name: "input", shape: [2, 2], datatype: "FP64", data: [1, 2, 3, 4], ...extra }] });
    expectError(await infer("sum", t({ data: [1, 2, 3] })), 400, "inputs[0].data has 3 elements but shape [2, 2] needs 4");
    expectError(await infer("sum", t({ data: [[1, 2], [3]] })), 400, /data\[1\] has 1 elements/);
    expectError(await infer("sum", t({ data: [[1, 2], [3, 4], [5, 6]] })), 400, /3 entries but dimension 0/);
    expectError(await infer("sum", t({ data: [[1, 2], 3, 4] })), 400, /mixes arrays and values/);
    expectError(await infer("sum", t({ shape: [2, -1] })), 400, /shape must be an array of non-negative integers/);
    expectError(await infer("sum", t({ shape: [0, 2], data: [] })), 400, /no elements/);
    expectError(await infer("sum", t({ datatype: "FP128" })), 400, /datatype must be one of/);
    expectError(await infer("sum", t({ data: [1, 2, "3", 4] })), 400, /element 2 \("3"\) is not a finite JSON number/);
    expectError(await infer("sum", t({ name: 5 })), 400, /name/);
    expectError(await infer("sum", t({ data: undefined })), 400, /data is missing/);
    expectError(await infer("sum", t({ parameters: { binary_data_size: 16 } })), 400, /binary tensor data extension/);
    expectError(await infer("sum", t({ parameters: { shared_memory_region: "r" } })), 400, /shared memory/);
    const two = { inputs: [t({}).inputs[0], { ...t({}).inputs[0], name: "other" }] };
    expectError(await infer("sum", two), 400, "a Clipper model takes one input tensor; the request has 2");
    expectError(await infer("sum", { inputs: [] }), 400, /non-empty array/);
    expectError(await infer("sum", {}), 400, /"inputs"/);
    expectError(await infer("sum", [1]), 400, /JSON object/);
    expectError(await infer("sum", "{not json"), 400, /not valid JSON/);
    expectError(await infer("sum", { ...t({}), id: 5 }), 400, /"id" must be a string/);
    expectError(await infer("sum", { ...t({}), outputs: [{ name: "probabilities" }] }), 400, /one output, named "output"/);
    expectError(await infer("sum", { inputs: [{ name: "input", shape: [20_000], datatype: "FP64", data: new Array(20_000).fill(1.5) }] }), 413);
  });
});

describe("inference: outputs, versions, queues and deadlines", () => {
  it("answers FP64 [n, k] for numeric arrays, BYTES otherwise, and strings on request", async () => {
    await addModel("vec", "1");
    await c.addContainer("vec", "1", "doubles", (batch) =>
      batch.inputs.map((raw) => {
        const xs = decodeInput("doubles", raw) as number[];
        return xs[0] === 0 ? "zero" : JSON.stringify([xs[0], xs[0]! * 2]);
      }));
    const arrays = await infer("vec", { inputs: [{ name: "input", shape: [2, 1], datatype: "FP64", data: [1, 2] }] });
    expect(arrays.body.outputs[0]).toEqual({ name: "output", datatype: "FP64", shape: [2, 2], data: [1, 2, 2, 4] });
    const mixed = await infer("vec", { inputs: [{ name: "input", shape: [2, 1], datatype: "FP64", data: [1, 0] }] });
    expect(mixed.body.outputs[0]).toEqual({ name: "output", datatype: "BYTES", shape: [2], data: ["[1,2]", "zero"] });
    const asText = await infer("sum", {
      inputs: [{ name: "input", shape: [1, 2], datatype: "FP64", data: [1, 2] }],
      outputs: [{ name: "output", parameters: { content_type: "str", binary_data: true } }],
    });
    expect(asText.body.outputs[0]).toEqual({ name: "output", datatype: "BYTES", shape: [1], data: ["3.0"] });
  });

  it("serves a pinned version and the current one", async () => {
    await addModel("pin", "1");
    await c.addContainer("pin", "1", "doubles", (batch) => batch.inputs.map(() => "\"v1\""));
    await addModel("pin", "2");
    await c.addContainer("pin", "2", "doubles", (batch) => batch.inputs.map(() => "\"v2\""));
    const body = { inputs: [{ name: "input", shape: [1], datatype: "FP64", data: [1] }] };
    const current = await infer("pin", body);
    expect(current.body).toMatchObject({ model_name: "pin", model_version: "2", outputs: [{ datatype: "BYTES", data: ["\"v2\""] }] });
    const pinned = await infer("pin", body, "1");
    expect(pinned.body).toMatchObject({ model_version: "1", outputs: [{ data: ["\"v1\""] }] });
    expectError(await infer("pin", body, "3"), 404, "model 'pin' has no version '3'");
  });

  it("puts each row of a request through the version's shared queue, where replicas see batches", async () => {
    await addModel("q", "1");
    const sizes: number[] = [];
    await c.addContainer("q", "1", "doubles", async (batch) => {
      sizes.push(batch.inputs.length);
      await new Promise((r) => setTimeout(r, 20));
      return sumHandler(batch) as string[];
    });
    const rows = Array.from({ length: 8 }, (_, i) => [i, i]);
    const reply = await infer("q", { inputs: [{ name: "input", shape: [8, 2], datatype: "FP64", data: rows }] });
    expect(reply.body.outputs[0]).toEqual({ name: "output", datatype: "FP64", shape: [8], data: rows.map(([a, b]) => a! + b!) });
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(8);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    expect(sizes.length).toBeLessThan(8);
    const metrics = await (await fetch(`${c.frontend.queryUrl}/metrics`)).text();
    expect(metrics).toMatch(/clipper_oip_infer_requests_total\{model="q:1",code="200"\} 1/);
    expect(metrics).toMatch(/clipper_model_batch_size_count\{model="q:1"\} \d/);
  });

  it("fails the whole request with 500 when the model fails a row", async () => {
    await addModel("bad", "1");
    await c.addContainer("bad", "1", "doubles", (batch) =>
      batch.inputs.map((raw) => (raw.readDoubleLE(0) === 2 ? `${BATCH_ERROR_PREFIX}ValueError: no twos` : "1.0")));
    const reply = await infer("bad", { inputs: [{ name: "input", shape: [3, 1], datatype: "FP64", data: [1, 2, 3] }] });
    expectError(reply, 500, "model 'bad' version '1' failed on row 1: ValueError: no twos");
  });

  it("answers 503 at the smallest SLO of the applications linking the model", async () => {
    await addModel("slow", "1");
    await c.addContainer("slow", "1", "doubles", async (batch) => {
      await new Promise((r) => setTimeout(r, 1_500));
      return batch.inputs.map(() => "1.0");
    });
    await addApp("slow-a", 5_000_000, "slow");
    await addApp("slow-b", 150_000, "slow");
    const linked = await infer("slow", { inputs: [{ name: "input", shape: [2, 1], datatype: "FP64", data: [1, 2] }] });
    expectError(linked, 503, /did not answer 2 of 2 rows within its deadline of 150 ms \(the smallest SLO/);
    expect(linked.ms).toBeLessThan(1_000);
  });

  it("answers 503 at --oip-timeout-ms (default 1000) for a model no application links", async () => {
    await addModel("slow2", "1");
    await c.addContainer("slow2", "1", "doubles", async (batch) => {
      await new Promise((r) => setTimeout(r, 2_500));
      return batch.inputs.map(() => "1.0");
    });
    const reply = await infer("slow2", { inputs: [{ name: "input", shape: [1], datatype: "FP64", data: [1] }] });
    expectError(reply, 503, /within its deadline of 1000 ms \(the frontend's --oip-timeout-ms\)/);
    expect(reply.ms).toBeGreaterThan(900);
    expect(reply.ms).toBeLessThan(2_000);
  });
});
