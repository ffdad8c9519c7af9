import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BATCH_ERROR_PREFIX } from "../runtime/rpc/codec.js";
import { NO_CONNECTED_MODELS, SLO_MISSED } from "../runtime/frontend/query-processor.js";
import { startInProcessCluster, sumHandler, waitFor, type InProcessCluster } from "./support/cluster-in-process.js";

let c: InProcessCluster;

async function addApp(name: string, sloMicros = 5_000_000, inputType = "doubles", defaultOutput = "-1.0"): Promise<void> {
  await c.admin.postText("/admin/add_app", { name, input_type: inputType, default_output: defaultOutput, latency_slo_micros: sloMicros });
}

async function addModel(name: string, version: string, batchSize = -1, inputType = "doubles"): Promise<void> {
  await c.admin.postText("/admin/add_model", {
    model_name: name, model_version: version, labels: [], input_type: inputType,
    container_name: "NO_CONTAINER", model_data_path: "x", batch_size: batchSize,
  });
}

async function link(app: string, model: string): Promise<void> {
  await c.admin.postText("/admin/add_model_links", { app_name: app, model_names: [model] });
}

/** Waits until the frontend's configuration shows the app linked to a model with a current version. */
async function settled(app: string, model: string, version: string): Promise<void> {
  await c.waitForConfig((f) => {
    const s = f.state();
    return Boolean(s?.applications[app]?.linked_models.includes(model) && s.models[model]?.current_version === version);
  });
}

beforeAll(async () => {
  c = await startInProcessCluster({ replicaTimeoutMs: 2_000, frontendMaxBody: 64 * 1024 });
});
afterAll(async () => {
  await c?.close();
});

describe("query API shapes (Clipper's, as recorded)", () => {
  it("answers the default with Clipper's explanation when no replica is connected", async () => {
    await addApp("a1", 100_000);
    await addModel("m", "1");
    await link("a1", "m");
    await settled("a1", "m", "1");
    const one = await c.predict("a1", { input: [1.0] });
    expect(one.status).toBe(200);
    expect(one.body).toEqual({ query_id: expect.any(Number), output: -1.0, default: true, default_explanation: NO_CONNECTED_MODELS });
    const two = await c.predict("a1", { input_batch: [[1.0], [2.0]] });
    expect(two.body.batch_predictions).toHaveLength(2);
    expect(two.body.batch_predictions[1]).toMatchObject({ output: -1.0, default: true, default_explanation: NO_CONNECTED_MODELS });
    const single = await c.predict("a1", { input_batch: [[1.0]] });
    expect(single.body).toMatchObject({ output: -1.0, default: true });
    expect(single.body.batch_predictions).toBeUndefined();
  });

  it("rejects bad queries with JSON errors and status codes", async () => {
    const unknown = await c.predict("nope", { input: [1] });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toBeTruthy();
    const malformed = await c.predict("a1", "{not json");
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toBe("Json error");
    const mistyped = await c.predict("a1", { input: "text" });
    expect(mistyped).toMatchObject({ status: 400, body: { error: "Json error" } });
    const noInput = await c.predict("a1", { foo: 1 });
    expect(noInput).toMatchObject({ status: 400, body: { error: "Json error" } });
    const badVersion = await c.predict("a1", { input: [1.0], version: "9" });
    expect(badVersion).toMatchObject({
      status: 400, body: { error: "Query processing error", cause: "Requested version: 9 does not exist for model: m" },
    });
    const huge = await c.predict("a1", { input: new Array(20_000).fill(1.5) });
    expect(huge.status).toBe(413);
    const health = await fetch(`${c.frontend.queryUrl}/health`);
    expect(health.status).toBe(200);
  });

  it("embeds JSON-looking outputs as JSON and others as strings; accepts integer literals for doubles", async () => {
    await c.addContainer("m", "1", "doubles", (batch) => {
      const sums = sumHandler(batch) as string[];
      return batch.inputs.map((raw, i) => (raw.readDoubleLE(0) === 7 ? "cat" : sums[i]!));
    });
    const sum = await c.predict("a1", { input: [1, 2, 3] });
    expect(sum.body).toEqual({ query_id: expect.any(Number), output: 6.0, default: false });
    const label = await c.predict("a1", { input: [7] });
    expect(label.body).toMatchObject({ output: "cat", default: false });
    const batch = await c.predict("a1", { input_batch: [[1, 1], [2, 2], [3, 3]] });
    expect(batch.body.batch_predictions.map((p: { output: number }) => p.output)).toEqual([2, 4, 6]);
  });
});

describe("queues, batches and deadlines", () => {
  it("honours a model's fixed batch size and shares one queue between replicas", async () => {
    await addApp("fixed", 5_000_000);
    await addModel("fixed-m", "1", 2);
    await link("fixed", "fixed-m");
    await settled("fixed", "fixed-m", "1");
    const seen: Array<{ replica: number; size: number }> = [];
    const slow = (replica: number) => async (batch: Parameters<typeof sumHandler>[0]) => {
      seen.push({ replica, size: batch.inputs.length });
      await new Promise((r) => setTimeout(r, 30));
      return sumHandler(batch) as string[];
    };
    await c.addContainer("fixed-m", "1", "doubles", slow(0));
    await c.addContainer("fixed-m", "1", "doubles", slow(1));
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => c.predict("fixed", { input: [i] })));
    expect(replies.map((r) => r.body.output)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(Math.max(...seen.map((s) => s.size))).toBeLessThanOrEqual(2);
    expect(new Set(seen.map((s) => s.replica)).size).toBe(2);
    expect(seen.some((s) => s.size === 2)).toBe(true);
  });

  it("answers the default output at the SLO when the model is slower", async () => {
    await addApp("slow", 100_000, "doubles", "\"too slow\"");
    await addModel("slow-m", "1");
    await link("slow", "slow-m");
    await settled("slow", "slow-m", "1");
    await c.addContainer("slow-m", "1", "doubles", async (batch) => {
      await new Promise((r) => setTimeout(r, 600));
      return batch.inputs.map(() => "1.0");
    });
    const reply = await c.predict("slow", { input: [1] });
    expect(reply.body).toMatchObject({ output: "too slow", default: true, default_explanation: SLO_MISSED });
    expect(reply.ms).toBeLessThan(450);
  });

  it("fails a batch the model could not predict at once, with the reason, instead of waiting for the SLO", async () => {
    await addApp("err", 5_000_000);
    await addModel("err-m", "1");
    await link("err", "err-m");
    await settled("err", "err-m", "1");
    await c.addContainer("err-m", "1", "doubles", (batch) => batch.inputs.map(() => `${BATCH_ERROR_PREFIX}ValueError: bad input`));
    const reply = await c.predict("err", { input: [1] });
    expect(reply.body).toMatchObject({ output: -1.0, default: true });
    expect(reply.body.default_explanation).toContain("ValueError: bad input");
    expect(reply.ms).toBeLessThan(2_000);
  });

  it("re-queues a batch whose replica dies to a live replica", async () => {
    await addApp("requeue", 5_000_000);
    await addModel("rq", "1", 1);
    await link("requeue", "rq");
    await settled("requeue", "rq", "1");
    let doomedGotBatch = false;
    const doomed = await c.addContainer("rq", "1", "doubles", async () => {
      doomedGotBatch = true;
      void doomed.stop(); // dies holding the batch: it never answers
      return new Promise<string[]>(() => undefined);
    });
    const pending = c.predict("requeue", { input: [4, 5] });
    await waitFor(() => doomedGotBatch, 5_000, "the doomed replica to receive the batch");
    await c.addContainer("rq", "1", "doubles", sumHandler);
    const reply = await pending;
    expect(reply.body).toMatchObject({ output: 9, default: false });
    const metrics = await (await fetch(`${c.frontend.queryUrl}/metrics`)).text();
    expect(metrics).toMatch(/clipper_model_requeued_queries_total\{model="rq:1"\} 1/);
  });

  it("pins versions and serves the current one after a roll forward and back", async () => {
    await addApp("ver", 5_000_000);
    await addModel("vm", "1");
    await link("ver", "vm");
    await c.addContainer("vm", "1", "doubles", () => ["\"v1\""]);
    await addModel("vm", "2");
    await c.addContainer("vm", "2", "doubles", () => ["\"v2\""]);
    await settled("ver", "vm", "2");
    expect((await c.predict("ver", { input: [1] })).body.output).toBe("v2");
    expect((await c.predict("ver", { input: [1], version: "1" })).body.output).toBe("v1");
    await c.admin.postText("/admin/set_model_version", { model_name: "vm", model_version: "1" });
    await settled("ver", "vm", "1");
    expect((await c.predict("ver", { input: [1] })).body.output).toBe("v1");
  });
});

describe("resilience and metrics", () => {
  it("exposes Prometheus text with per-application and per-model series", async () => {
    const res = await fetch(`${c.frontend.queryUrl}/metrics`);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    expect(text).toMatch(/clipper_app_requests_total\{app="a1"\} \d+/);
    expect(text).toMatch(/clipper_app_default_outputs_total\{app="slow",reason="slo_missed"\} 1/);
    expect(text).toContain("clipper_model_batch_size_bucket");
    expect(text).toMatch(/clipper_model_replicas\{model="fixed-m:1"\} 2/);
  });

  it("reports connected replicas to the management daemon", async () => {
    await waitFor(async () => {
      const all = await c.admin.postJson<string[]>("/admin/get_all_containers", { verbose: false });
      return all.includes("fixed-m:1:0") && all.includes("fixed-m:1:1");
    }, 5_000, "get_all_containers to list the replicas");
  });

  it("keeps serving on the last known configuration while the management daemon is down", async () => {
    await c.management.close();
    const reply = await c.predict("a1", { input: [1, 2, 3] });
    expect(reply.body).toMatchObject({ output: 6.0, default: false });
  });
});
