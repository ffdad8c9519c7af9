/**
 * The query path's synchronous fast path (QueryProcessor.answerNow): a query the prediction cache
 * answers is answered on the tick its body ends. It must answer and count exactly as the
 * asynchronous path does — for a body sent in several pieces, for input_batch, for a pinned
 * version, and for bad bodies — in a real frontend (in-process cluster, real HTTP and RPC).
 */
import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { metricValue } from "../bench/lib/metrics.js";
import { addLinkedModel, startInProcessCluster, sumHandler, type InProcessCluster } from "./support/cluster-in-process.js";

describe("cache hits answered synchronously", () => {
  let c: InProcessCluster | undefined;
  afterEach(async () => {
    await c?.close();
    c = undefined;
  });

  async function setup(): Promise<{ cluster: InProcessCluster; asked: number[] }> {
    const asked: number[] = [];
    const cluster = await startInProcessCluster({ cacheBytes: 1 << 20, frontendMaxBody: 4096 });
    c = cluster;
    await addLinkedModel(cluster);
    await cluster.addContainer("m", "1", "doubles", (batch) => {
      asked.push(batch.inputs.length);
      return sumHandler(batch);
    });
    return { cluster, asked };
  }

  /** POSTs `pieces` as one body, each piece written on its own after a pause (so they arrive as separate chunks). */
  function postInPieces(cluster: InProcessCluster, path: string, pieces: string[], chunked = false): Promise<{ status: number; body: any }> {
    const length = pieces.reduce((n, p) => n + Buffer.byteLength(p), 0);
    return new Promise((resolve, reject) => {
      const req = request(`${cluster.frontend.queryUrl}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(chunked ? {} : { "content-length": String(length) }) },
      }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      });
      req.on("error", reject);
      req.on("socket", (socket) => socket.setNoDelay(true));
      void (async () => {
        for (const piece of pieces) {
          req.write(piece);
          await new Promise((r) => setTimeout(r, 20));
        }
        req.end();
      })();
    });
  }

  async function counters(cluster: InProcessCluster) {
    const text = await (await fetch(`${cluster.frontend.queryUrl}/metrics`)).text();
    return {
      hits: metricValue(text, "clipper_cache_hits_total", { model: "m:1" }),
      misses: metricValue(text, "clipper_cache_misses_total", { model: "m:1" }),
      requests: metricValue(text, "clipper_app_requests_total", { app: "app" }),
      observed: metricValue(text, "clipper_app_request_latency_seconds_count", { app: "app" }),
      defaults: metricValue(text, "clipper_app_default_outputs_total", { app: "app" }),
    };
  }

  const answerOf = (body: Record<string, unknown>) => ({ ...body, query_id: undefined });

  it("answers a hit as the model did, whole or in pieces, and counts it as a hit, a query and a latency", async () => {
    const { cluster, asked } = await setup();
    const first = await cluster.predict("app", { input: [1, 2, 3] });
    expect(first).toMatchObject({ status: 200, body: { output: 6, default: false } });
    expect(await counters(cluster)).toEqual({ hits: 0, misses: 1, requests: 1, observed: 1, defaults: 0 });

    const whole = await cluster.predict("app", { input: [1, 2, 3] });
    const pieces = await postInPieces(cluster, "/app/predict", ["{\"inp", "ut\": [1, 2", ", 3]}"]);
    const chunked = await postInPieces(cluster, "/app/predict", ["{\"input\":", "[1,2,3]}"], true);
    for (const answer of [whole, pieces, chunked]) {
      expect(answer.status).toBe(200);
      expect(answerOf(answer.body)).toEqual(answerOf(first.body));
    }
    // Query ids keep counting up, one per answer, whichever path answered.
    expect([whole, pieces, chunked].map((a) => a.body.query_id)).toEqual([1, 2, 3]);
    expect(asked).toEqual([1]);
    expect(await counters(cluster)).toEqual({ hits: 3, misses: 1, requests: 4, observed: 4, defaults: 0 });
  });

  it("gives input_batch and a pinned version the asynchronous path's answers and counts", async () => {
    const { cluster, asked } = await setup();
    await cluster.predict("app", { input: [2, 2] });
    // One input in a batch: the fast path; two: the asynchronous path, each input a hit.
    const one = await cluster.predict("app", { input_batch: [[2, 2]] });
    const two = await cluster.predict("app", { input_batch: [[2, 2], [2, 2]] });
    expect(one.body).toMatchObject({ output: 4, default: false });
    expect(two.body.batch_predictions.map(answerOf)).toEqual([answerOf(one.body), answerOf(one.body)]);
    const pinned = await cluster.predict("app", { input: [2, 2], version: "1" });
    expect(answerOf(pinned.body)).toEqual(answerOf(one.body));
    expect(asked).toEqual([1]);
    expect(await counters(cluster)).toEqual({ hits: 4, misses: 1, requests: 5, observed: 5, defaults: 0 });

    // A pinned version that does not exist: Clipper's 400, on the fast path as on the slow one.
    const missing = await cluster.predict("app", { input: [2, 2], version: "9" });
    const missingBatch = await cluster.predict("app", { input_batch: [[2, 2], [2, 2]], version: "9" });
    for (const answer of [missing, missingBatch]) {
      expect(answer).toEqual({ status: 400, ms: answer.ms, body: { error: "Query processing error", cause: "Requested version: 9 does not exist for model: m" } });
    }
    expect(await counters(cluster)).toEqual({ hits: 4, misses: 1, requests: 5, observed: 5, defaults: 0 });
  });

  it("refuses bad bodies for a cached input as before, and keeps answering hits after them", async () => {
    const { cluster } = await setup();
    await cluster.predict("app", { input: [5] });
    const before = await counters(cluster);

    const broken = await postInPieces(cluster, "/app/predict", ["{\"input\": [5]", ", oops}"]);
    expect(broken.status).toBe(400);
    expect(broken.body.error).toBe("Json error");
    const notUtf8 = await new Promise<number>((resolve, reject) => {
      const req = request(`${cluster.frontend.queryUrl}/app/predict`, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]));
    });
    expect(notUtf8).toBe(400);
    const wrongType = await cluster.predict("app", { input: ["five"] });
    expect(wrongType).toMatchObject({ status: 400, body: { error: "Json error" } });
    const both = await cluster.predict("app", { input: [5], input_batch: [[5]] });
    expect(both).toMatchObject({ status: 400, body: { error: "Json error" } });
    const unknownApp = await cluster.predict("nope", { input: [5] });
    expect(unknownApp).toMatchObject({ status: 404, body: { error: "Unknown application" } });
    const tooLarge = await postInPieces(cluster, "/app/predict", [`{"input": [5], "pad": "${"x".repeat(3000)}`, `${"x".repeat(3000)}"}`], true);
    expect(tooLarge).toMatchObject({ status: 413, body: { error: "Payload too large" } });

    // Nothing of that was answered or counted as a query or a hit.
    expect(await counters(cluster)).toEqual(before);
    expect((await cluster.predict("app", { input: [5] })).body).toMatchObject({ output: 5, default: false });
    expect(await counters(cluster)).toEqual({ ...before, hits: before.hits + 1, requests: before.requests + 1, observed: before.observed + 1 });
  });
});
