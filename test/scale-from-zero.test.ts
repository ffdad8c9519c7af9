/**
 * Scale from zero through a real management daemon and query frontend, with replicas speaking RPC v3
 * (in process): a query for a version autoscaled with min 0 and no replica waits for the first one,
 * is counted in the version's queue depth in the live stats meanwhile (what the autoscaler reads),
 * and is answered by the replica once it connects; with no replica by the SLO it gets the default
 * output with the starting-from-zero reason, counted apart in the answers by source. A version at
 * zero that is not autoscaled answers "no connected models" at once. Attacks: 50 clients racing on a
 * cold version, a replica that connects and dies at once, the app unlinked while queries wait.
 * Also: the cache answering repeats at zero, the Open Inference Protocol, and the daemon's checks
 * on the loop's first_replica event.
 * The replicas here are started by the test; the supervisor's loop starting them is in
 * test/scale-from-zero-e2e.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NO_CONNECTED_MODELS } from "../runtime/frontend/query-processor.js";
import { LIVE_STATS_PATH, LiveStatsSchema } from "../runtime/shared/live-stats.js";
import { AUTOSCALER_EVENTS_PATH, AutoscaleEventPageSchema, RECORD_AUTOSCALER_EVENT_PATH } from "../runtime/shared/autoscaling.js";
import type { ContainerRpcClient } from "../runtime/container-node/rpc-client.js";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { LiveStatsReporter } from "../runtime/frontend/live-stats-reporter.js";
import { startInProcessCluster, sumHandler, waitFor, type InProcessCluster } from "./support/cluster-in-process.js";

/** An application linked to a new model version with no replica; autoscaled with min 0 unless `autoscaled` is false. */
async function coldVersionOf(c: InProcessCluster, model: string, sloMs: number, autoscaled = true): Promise<string> {
  const app = `${model}-app`;
  await c.admin.postText("/admin/add_app", { name: app, input_type: "doubles", default_output: "-1", latency_slo_micros: sloMs * 1000 });
  await c.admin.postText("/admin/add_model", {
    model_name: model, model_version: "1", labels: [], input_type: "doubles", container_name: "c", model_data_path: "p", batch_size: -1,
  });
  await c.admin.postText("/admin/add_model_links", { app_name: app, model_names: [model] });
  if (autoscaled) await c.admin.postText("/admin/set_autoscaling", { model_name: model, model_version: "1", min_replicas: 0, max_replicas: 2 });
  await c.waitForConfig((f) => {
    const state = f.state();
    return state !== undefined && Object.hasOwn(state.applications, app) && state.applications[app]!.linked_models.includes(model) &&
      (!autoscaled || Object.hasOwn(state.autoscaling ?? {}, model));
  });
  return app;
}

/** The newest live stats sample the daemon holds from the cluster's frontend. */
async function latestSampleOf(c: InProcessCluster) {
  const stats = await c.admin.getValidated(LIVE_STATS_PATH, LiveStatsSchema);
  return stats.frontends[0]?.samples.at(-1);
}

describe("queries for a version at zero", { timeout: 60_000 }, () => {
  let c: InProcessCluster;

  beforeAll(async () => {
    c = await startInProcessCluster({ liveStatsIntervalMs: 200 });
  });
  afterAll(async () => {
    await c?.close();
  });

  const coldVersion = (model: string, sloMs: number, autoscaled = true) => coldVersionOf(c, model, sloMs, autoscaled);
  const latestSample = () => latestSampleOf(c);
  const queueDepth = async (model: string) => (await latestSample())?.versions.find((v) => v.model_name === model)?.queue_depth ?? 0;

  it("records the loop's first_replica event as it records decisions, and refuses a malformed one with 400", async () => {
    const record = (body: unknown) => fetch(c.management.url + RECORD_AUTOSCALER_EVENT_PATH, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    const event = { kind: "first_replica", model_name: "m", model_version: "1", start_ms: 2400, reason: "first replica of m:1 ready 2.4 s after the scale from zero" };
    for (const bad of [
      { ...event, start_ms: -1 }, { ...event, start_ms: "2400" }, { ...event, start_ms: 1e12 }, { ...event, from: 0 },
      { kind: "first_replica", model_name: "m", model_version: "1", reason: "no time" }, { ...event, kind: "warm" },
    ]) {
      const res = await record(bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
    }
    expect((await record(event)).status).toBe(200);
    const page = AutoscaleEventPageSchema.parse(await (await fetch(c.management.url + AUTOSCALER_EVENTS_PATH)).json());
    expect(page.events.filter((e) => e.kind === "first_replica")).toEqual([expect.objectContaining(event)]);
  });

  it("answers 'no connected models' at once for a version that is not autoscaled from zero", async () => {
    const app = await coldVersion("plain", 5_000, false);
    const r = await c.predict(app, { input: [1, 2] });
    expect(r.body).toMatchObject({ default: true, output: -1, default_explanation: NO_CONNECTED_MODELS });
    expect(r.ms).toBeLessThan(1_000);
  });

  it("holds a query until the first replica connects, counting it in the live stats, and answers it from the model", async () => {
    const app = await coldVersion("cold", 15_000);
    const pending = c.predict(app, { input: [1, 2] });
    await waitFor(async () => (await queueDepth("cold")) === 1, 5_000, "the waiting query in the live stats");
    await c.addContainer("cold", "1", "doubles", sumHandler);
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ default: false, output: 3 });
    await waitFor(async () => (await queueDepth("cold")) === 0, 5_000, "the queue to empty in the live stats");
  });

  it("answers the default output with the starting-from-zero reason when no replica connects within the SLO", async () => {
    const app = await coldVersion("tiny", 150);
    const r = await c.predict(app, { input: [1, 2] });
    expect(r.body).toMatchObject({ default: true, output: -1, default_explanation: "No replica of tiny:1 yet: starting from zero" });
    expect(r.ms).toBeGreaterThanOrEqual(140);
    expect(r.ms).toBeLessThan(2_000);
    // Distinct in the answers by source, which is what tells the autoscaler the version is asked for.
    await waitFor(async () => {
      const answers = (await latestSample())?.apps.find((a) => a.app === app)?.answers;
      return answers?.default.some((d) => d.reason === "starting_from_zero" && d.count === 1) === true;
    }, 5_000, "the starting-from-zero answer in the live stats");
    expect(await queueDepth("tiny")).toBe(0);
  });

  it("serves 50 clients racing on a cold version from the first replica, each its own answer", async () => {
    const app = await coldVersion("race", 15_000);
    const answers = Promise.all(Array.from({ length: 50 }, (_, i) => c.predict(app, { input: [i, 1] })));
    await waitFor(async () => (await queueDepth("race")) === 50, 5_000, "50 waiting queries in the live stats");
    await c.addContainer("race", "1", "doubles", sumHandler);
    const results = await answers;
    expect(results.map((r) => [r.status, r.body.default, r.body.output])).toEqual(Array.from({ length: 50 }, (_, i) => [200, false, i + 1]));
  });

  it("puts a batch back in the queue when the first replica dies at once, and the next replica answers it", async () => {
    const app = await coldVersion("flaky", 15_000);
    const pending = Promise.all([c.predict(app, { input: [2, 2] }), c.predict(app, { input: [3, 3] })]);
    await waitFor(async () => (await queueDepth("flaky")) === 2, 5_000, "2 waiting queries in the live stats");
    // Gets a batch (the waiting queries go out as soon as it registers), then disconnects without answering.
    let started!: (client: ContainerRpcClient) => void;
    const dying = new Promise<ContainerRpcClient>((resolve) => (started = resolve));
    let batches = 0;
    started(await c.addContainer("flaky", "1", "doubles", () => {
      batches++;
      void dying.then((client) => client.stop());
      return new Promise<string[]>(() => undefined);
    }));
    await waitFor(() => batches > 0, 5_000, "the first replica to get a batch");
    await waitFor(async () => (await queueDepth("flaky")) === 2, 5_000, "the batch back in the queue");
    await c.addContainer("flaky", "1", "doubles", sumHandler);
    const results = await pending;
    expect(results.map((r) => [r.body.default, r.body.output])).toEqual([[false, 4], [false, 6]]);
  });

  it("holds an Open Inference Protocol request too: 503 with the reason when no replica comes in time, the model's answer when one does", async () => {
    const inferOn = (model: string) => fetch(`${c.frontend.queryUrl}/v2/models/${model}/infer`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ inputs: [{ name: "x", shape: [2], datatype: "FP64", data: [1, 2] }] }),
    });
    await coldVersion("oip-tiny", 150);
    const late = await inferOn("oip-tiny");
    expect(late.status).toBe(503);
    expect(((await late.json()) as { error: string }).error).toMatch(/oip-tiny.* has no replica yet: starting from zero/);

    await coldVersion("oip-cold", 15_000);
    const pending = inferOn("oip-cold");
    await waitFor(async () => (await queueDepth("oip-cold")) === 1, 5_000, "the waiting request in the live stats");
    await c.addContainer("oip-cold", "1", "doubles", sumHandler);
    const res = await pending;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { outputs: Array<{ data: unknown[] }> }).outputs[0]!.data).toEqual([3]);
  });

  it("answers queries that wait while their app is unlinked by their deadline, and keeps serving", async () => {
    const app = await coldVersion("unlinked", 1_500);
    const started = performance.now();
    const pending = Promise.all(Array.from({ length: 5 }, (_, i) => c.predict(app, { input: [i] })));
    await waitFor(async () => (await queueDepth("unlinked")) === 5, 5_000, "5 waiting queries in the live stats");
    await c.admin.postText("/admin/delete_model_links", { app_name: app, model_names: ["unlinked"] });
    await c.waitForConfig((f) => f.state()!.applications[app]!.linked_models.length === 0);
    const results = await pending;
    expect(performance.now() - started).toBeLessThan(5_000);
    for (const r of results) {
      expect(r.body).toMatchObject({ default: true, default_explanation: "No replica of unlinked:1 yet: starting from zero" });
    }
    // The app now links nothing: answered at once, as any app with no model.
    const after = await c.predict(app, { input: [1] });
    expect(after.body).toMatchObject({ default: true, default_explanation: NO_CONNECTED_MODELS });
    expect(after.ms).toBeLessThan(1_000);
    await waitFor(async () => (await queueDepth("unlinked")) === 0, 5_000, "the queue to empty in the live stats");
  });
});

describe("a version at zero with the prediction cache on", { timeout: 60_000 }, () => {
  let c: InProcessCluster;

  beforeAll(async () => {
    c = await startInProcessCluster({ liveStatsIntervalMs: 200, cacheBytes: 1024 * 1024 });
  });
  afterAll(async () => {
    await c?.close();
  });

  it("answers a repeated input from the cache at once (kept across a change of autoscaling), and waits for the replica only for a new one", async () => {
    const app = await coldVersionOf(c, "cached", 300);
    const replica = await c.addContainer("cached", "1", "doubles", sumHandler);
    expect((await c.predict(app, { input: [1, 2] })).body).toMatchObject({ default: false, output: 3 });
    // A change of autoscaling is no change of the version's record: the cached answer stays.
    await c.admin.postText("/admin/set_autoscaling", { model_name: "cached", model_version: "1", min_replicas: 0, max_replicas: 3 });
    await c.waitForConfig((f) => f.state()?.autoscaling?.["cached"]?.["1"]?.max_replicas === 3);
    const stoppedAt = Date.now();
    await replica.stop();
    // A sample taken after the stop, showing the frontend has let the replica go.
    await waitFor(async () => {
      const sample = await latestSampleOf(c);
      return sample !== undefined && sample.at > stoppedAt && sample.versions.find((v) => v.model_name === "cached")?.replicas.length === 0;
    }, 5_000, "the replica gone from the live stats");

    // The model's own answer for that exact input of that exact version: no replica is needed for it.
    const repeat = await c.predict(app, { input: [1, 2] });
    expect(repeat.body).toMatchObject({ default: false, output: 3 });
    expect(repeat.ms).toBeLessThan(250);
    const fresh = await c.predict(app, { input: [5, 5] });
    expect(fresh.body, JSON.stringify(fresh.body)).toMatchObject({ default: true, default_explanation: "No replica of cached:1 yet: starting from zero" });

    // Identical queries share one wait (one queued call, the others join it): each hears the same reason.
    const joined = await Promise.all(Array.from({ length: 10 }, () => c.predict(app, { input: [8, 8] })));
    for (const r of joined) expect(r.body).toMatchObject({ default: true, default_explanation: "No replica of cached:1 yet: starting from zero" });
  });
});

describe("the live stats reporter's early sample", () => {
  it("sends a sample at once when asked, and no more often than a quarter interval", async () => {
    const bodies: Array<{ samples: Array<{ at: number }> }> = [];
    const read = async (req: IncomingMessage) => {
      let text = "";
      for await (const chunk of req) text += chunk;
      return JSON.parse(text);
    };
    const server = createServer((req, res) => void read(req).then((body) => {
      bodies.push(body);
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    }));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    let now = 1_000_000;
    let taken = 0;
    const reporter = new LiveStatsReporter({
      managementUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, log: pino({ level: "silent" }), frontendId: "f",
      intervalMs: 60_000, now: () => now,
      collector: { take: () => ({ at: ++taken, interval_ms: 1, apps: [], versions: [] }) },
    });
    try {
      reporter.reportSoon(); // not started: nothing
      reporter.start();
      reporter.reportSoon();
      await waitFor(() => bodies.length === 1, 5_000, "the early report");
      now += 14_000;
      reporter.reportSoon(); // within a quarter interval of the last sample
      await new Promise((r) => setTimeout(r, 200));
      expect(bodies).toHaveLength(1);
      now += 1_000;
      reporter.reportSoon();
      await waitFor(() => bodies.length === 2, 5_000, "the second early report");
      expect(bodies.map((b) => b.samples.map((s) => s.at))).toEqual([[1], [2]]);
      reporter.close();
      now += 60_000;
      reporter.reportSoon(); // closed: nothing
      await new Promise((r) => setTimeout(r, 100));
      expect(bodies).toHaveLength(2);
    } finally {
      reporter.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
