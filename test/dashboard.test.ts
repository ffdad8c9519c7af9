/**
 * The live stats feed and the dashboard's serving, without a browser: the frontend's collector on
 * an injected clock, the daemon's bounded store, the chart series, the report and read endpoints
 * over real HTTP (bad bodies, guards), the page's files, and the whole feed in an in-process cluster.
 * The page itself in a real browser: test/dashboard-browser.test.ts.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LiveStatsCollector } from "../runtime/frontend/live-stats-collector.js";
import { LiveStatsReporter } from "../runtime/frontend/live-stats-reporter.js";
import { LiveStatsStore } from "../runtime/management/live-stats-store.js";
import { startManagementServer, type ManagementServer } from "../runtime/management/server.js";
import {
  LIVE_STATS_PATH, LiveStatsReportSchema, LiveStatsSchema, REPORT_LIVE_STATS_PATH, type LiveStats, type LiveStatsSample,
} from "../runtime/shared/live-stats.js";
import { REPORT_REPLICAS_PATH } from "../runtime/shared/state.js";
import { appCharts, eventMarkers, versionCharts } from "../runtime/dashboard/src/series.js";
import { startInProcessCluster, sumHandler, waitFor, type InProcessCluster } from "./support/cluster-in-process.js";
import { tempDirs } from "./support/temp-dirs.js";
import { cliFor } from "./support/cli.js";

const silent = pino({ level: "silent" });
const tempDir = tempDirs("clipper-dash-");

function sample(at: number, extra: Partial<LiveStatsSample> = {}): LiveStatsSample {
  return { at, interval_ms: 2000, apps: [], versions: [], ...extra };
}

describe("the frontend's live stats collector", () => {
  it("turns one interval's queries, batches and cache lookups into a sample, then starts afresh", () => {
    let now = 10_000;
    const c = new LiveStatsCollector({
      versions: () => [{ key: "m:1", queueDepth: 3, replicas: [{ replicaId: 0, cap: 8 }, { replicaId: 1, cap: 4 }] }],
      sloMs: (app) => (app === "a" ? 100 : null),
    }, () => now);
    for (let i = 1; i <= 100; i++) c.query("a", i / 1000); // 1..100 ms
    c.query("a", 0.5, "overloaded");
    c.query("a", 0.2, "slo_missed");
    c.query("a", 0.2, "slo_missed");
    c.query("__proto__", 0.001, "no_connected_models");
    c.query("a", 0.0001, undefined, true);
    c.query("a", 0.0001, undefined, true);
    c.batchSent("m:1", 4, 0);
    c.batchSent("m:1", 6, 0);
    c.cacheLookup("m:1", true);
    c.cacheLookup("m:1", false);
    c.cacheLookup("m:1", false);
    now += 2_000;
    const s = c.take();
    expect(s.at).toBe(12_000);
    expect(s.interval_ms).toBe(2_000);
    const a = s.apps.find((x) => x.app === "a")!;
    expect(a.requests_per_s).toBeCloseTo(105 / 2);
    expect(a.p50_ms).toBeCloseTo(51); // nearest rank over 105 latencies
    expect(a.p99_ms).toBeCloseTo(200);
    expect(a.slo_ms).toBe(100);
    expect(a.answers).toEqual({ model: 100, cache: 2, shed: 1, default: [{ reason: "slo_missed", count: 2 }] });
    expect(s.apps.find((x) => x.app === "__proto__")).toMatchObject({ slo_ms: null, answers: { model: 0, default: [{ reason: "no_connected_models", count: 1 }] } });
    expect(s.versions).toEqual([{
      model_name: "m", model_version: "1", queue_depth: 3, cache_hits: 1, cache_misses: 2,
      replicas: [{ replica_id: 0, batch_size: 5, batch_cap: 8 }, { replica_id: 1, batch_size: null, batch_cap: 4 }],
    }]);
    now += 1_000;
    const next = c.take();
    expect(next.interval_ms).toBe(1_000);
    expect(next.apps).toEqual([]);
    expect(next.versions[0]).toMatchObject({ cache_hits: 0, replicas: [{ batch_size: null }, { batch_size: null }] });
  });

  it("keeps a bounded sample of latencies however many queries arrive", () => {
    const c = new LiveStatsCollector({ versions: () => [], sloMs: () => null }, () => 0, () => 0.999999);
    for (let i = 0; i < 50_000; i++) c.query("a", 0.001);
    const kept = (c as unknown as { apps: Map<string, { latenciesMs: number[] }> }).apps.get("a")!.latenciesMs.length;
    expect(kept).toBe(2_048);
  });
});

describe("the daemon's live stats store", () => {
  it("keeps the last samples per frontend, a bounded number of frontends, and forgets silent ones", () => {
    let now = 0;
    const store = new LiveStatsStore(10_000, () => now, { history: 3, frontends: 2, bytes: 1_000_000 });
    store.report({ frontend_id: "f1", samples: [sample(1), sample(2)] });
    store.report({ frontend_id: "f1", samples: [sample(3), sample(4)] });
    expect(store.snapshot().frontends).toEqual([{ frontend_id: "f1", samples: [sample(2), sample(3), sample(4)] }]);
    now = 5_000;
    store.report({ frontend_id: "f2", samples: [sample(5)] });
    store.report({ frontend_id: "f1", samples: [sample(6)] }); // f1 heard from last: f2 is the stalest
    store.report({ frontend_id: "f3", samples: [sample(7)] });
    expect(store.snapshot().frontends.map((f) => f.frontend_id)).toEqual(["f1", "f3"]);
    now = 15_001 + 1; // beyond the TTL after f1's and f3's last report
    expect(store.snapshot().frontends).toEqual([]);
    store.report({ frontend_id: "f4", samples: [sample(8)] });
    store.forget("f4");
    expect(store.snapshot().frontends).toEqual([]);
  });

  it("keeps within its byte budget by dropping the stalest frontend's oldest samples", () => {
    const one = JSON.stringify(sample(1000)).length;
    const store = new LiveStatsStore(10_000, () => 0, { history: 100, frontends: 10, bytes: one * 3 });
    store.report({ frontend_id: "old", samples: [sample(1000), sample(1001)] });
    store.report({ frontend_id: "new", samples: [sample(1002), sample(1003)] });
    expect(store.snapshot().frontends).toEqual([
      { frontend_id: "new", samples: [sample(1002), sample(1003)] },
      { frontend_id: "old", samples: [sample(1001)] },
    ]);
    store.report({ frontend_id: "new", samples: [sample(1004), sample(1005), sample(1006), sample(1007)] });
    expect(store.snapshot().frontends).toEqual([{ frontend_id: "new", samples: [sample(1005), sample(1006), sample(1007)] }]);
  });
});

describe("the frontend's live stats reporter", () => {
  it("sends what the daemon missed with the next report, drops what it refused, and says so once", async () => {
    let status = 0; // 0: not answering (connection destroyed)
    const bodies: Array<{ frontend_id: string; samples: LiveStatsSample[] }> = [];
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        if (status === 0) return void req.socket.destroy();
        bodies.push(JSON.parse(body));
        res.writeHead(status).end("no such endpoint");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const warnings: string[] = [];
    const log = { warn: (m: unknown, text?: string) => warnings.push(String(text ?? m)), debug: () => undefined } as unknown as Logger;
    let at = 0;
    const reporter = new LiveStatsReporter({
      managementUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, log, frontendId: "f", intervalMs: 2000,
      collector: { take: () => sample((at += 2000)) },
    });
    try {
      await reporter.tick();
      await reporter.tick();
      status = 200;
      await reporter.tick();
      expect(bodies).toEqual([{ frontend_id: "f", samples: [sample(2000), sample(4000), sample(6000)] }]);
      status = 404;
      await reporter.tick();
      await reporter.tick();
      expect(bodies.slice(1).map((b) => b.samples.map((s) => s.at))).toEqual([[8000], [10000]]);
      expect(warnings).toEqual([expect.stringContaining("refused this frontend's live stats")]);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe("the dashboard's chart series", () => {
  it("adds rates across frontends on one time axis, keeps the worst p99 and weights the p50", () => {
    const app = (rps: number, p50: number, p99: number) => ({
      app: "a", requests_per_s: rps, p50_ms: p50, p99_ms: p99, slo_ms: 100,
      answers: { model: rps * 2, shed: 1, default: [{ reason: "slo_missed", count: 2 }] },
    });
    const version = (queue: number, hits: number, misses: number, batch: number | null) => ({
      model_name: "m", model_version: "1", queue_depth: queue, cache_hits: hits, cache_misses: misses,
      replicas: [{ replica_id: 0, batch_size: batch, batch_cap: 8 }],
    });
    const stats: LiveStats = {
      interval_ms: 2000,
      frontends: [
        { frontend_id: "f1", samples: [sample(2000, { apps: [app(10, 10, 50)], versions: [version(1, 1, 3, 2)] }), sample(4000, { apps: [app(30, 20, 60)] })] },
        { frontend_id: "f2", samples: [sample(2010, { apps: [app(30, 30, 90)], versions: [version(2, 3, 1, 6)] })] },
      ],
    };
    const [a] = appCharts(stats);
    expect(a!.requests.t).toEqual([2, 4]);
    expect(a!.requests.series[0]!.values).toEqual([40, 30]);
    const [p50, p99, slo] = a!.latency.series;
    expect(p50!.values).toEqual([25, 20]); // (10*10 + 30*30) / 40
    expect(p99!.values).toEqual([90, 60]);
    expect(slo!.values).toEqual([100, 100]);
    expect(a!.answers.series.map((s) => s.label)).toEqual(["default: slo_missed", "model", "shed"]);
    expect(a!.answers.series.find((s) => s.label === "model")!.values).toEqual([40, 30]); // (20 + 60) answers per 2 s
    // A version with no replica and an empty queue all along gets no charts.
    stats.frontends[1]!.samples[0]!.versions.push({ ...version(0, 0, 0, null), model_version: "idle", replicas: [] });
    expect(versionCharts(stats).map((c) => c.model)).toEqual(["m:1"]);
    const [v] = versionCharts(stats);
    expect(v!.queue.series[0]!.values).toEqual([3, null]);
    expect(v!.cacheHitRate.series[0]!.values).toEqual([50, null]);
    expect(v!.batches.series.map((s) => [s.label, s.values])).toEqual([["replica 0 batch", [6, null]], ["replica 0 cap", [8, null]]]);
  });

  it("marks a version's autoscaler events on its charts: its own only, from the window's start on", () => {
    const event = (seq: number, at: number, version: string) => ({
      seq, at: new Date(at * 1000).toISOString(), kind: "manual" as const, model_name: "m", model_version: version, to: 2, reason: `r${seq}`,
    });
    const markers = eventMarkers([event(1, 9, "1"), event(2, 12, "1"), event(3, 12, "2"), event(4, 30, "1")], "m:1", [10, 20]);
    // Before the first point: left out; after the last: kept (chart.ts draws it at the right edge).
    expect(markers).toEqual([{ t: 12, kind: "manual", label: "manual →2: r2" }, { t: 30, kind: "manual", label: "manual →2: r4" }]);
    expect(eventMarkers([event(1, 12, "1")], "m:1", [])).toEqual([]);
  });

  it("shows cache answers apart from model answers, and reads an older frontend's sample (no cache count) as before", () => {
    const answers = (cache?: number) => ({
      app: "a", requests_per_s: 1, p50_ms: 1, p99_ms: 1, slo_ms: 100, answers: { model: 4, ...(cache === undefined ? {} : { cache }), shed: 0, default: [] },
    });
    const report = { frontend_id: "f1", samples: [sample(2000, { apps: [answers(6)] })] };
    expect(LiveStatsReportSchema.parse(report)).toEqual(report);
    const older = { frontend_id: "f2", samples: [sample(2000, { apps: [answers()] })] };
    expect(LiveStatsReportSchema.parse(older)).toEqual(older);
    const [a] = appCharts({ interval_ms: 2000, frontends: [report, older] });
    expect(a!.answers.series.map((s) => [s.label, s.values])).toEqual([["cache", [3]], ["model", [4]], ["shed", [0]]]);
  });
});

describe("the live stats endpoints and the dashboard's files", () => {
  let server: ManagementServer;
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    fetch(server.url + path, {
      method, headers: { "content-type": "application/json", ...headers },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
  beforeAll(async () => {
    const dashboardDir = mkdtempSync(join(tmpdir(), "clipper-dash-assets-"));
    writeFileSync(join(dashboardDir, "index.html"), "<!doctype html><title>dash</title>");
    writeFileSync(join(dashboardDir, "app.js"), "export {};");
    server = await startManagementServer({ host: "127.0.0.1", port: 0, stateDir: await tempDir(), logger: silent, dashboardDir });
  });
  afterAll(async () => server?.close());

  it("records a report and serves it, names such as __proto__ included", async () => {
    const report = { frontend_id: "__proto__", samples: [sample(1000, { apps: [{ app: "constructor", requests_per_s: 1, p50_ms: 1, p99_ms: 2, slo_ms: null, answers: { model: 2, shed: 0, default: [] } }] })] };
    const res = await call("POST", REPORT_LIVE_STATS_PATH, report);
    expect(res.status).toBe(200);
    const stats = LiveStatsSchema.parse(await (await fetch(server.url + LIVE_STATS_PATH)).json());
    expect(stats.frontends).toEqual([{ frontend_id: "__proto__", samples: report.samples }]);
    // A frontend that leaves (its last replica report) takes its live stats with it.
    await call("POST", REPORT_REPLICAS_PATH, { frontend_id: "__proto__", replicas: [], leaving: true });
    expect((await (await fetch(server.url + LIVE_STATS_PATH)).json()).frontends).toEqual([]);
  });

  it.each([
    ["not JSON", "{"],
    ["no samples", { frontend_id: "f", samples: [] }],
    ["a negative queue", { frontend_id: "f", samples: [sample(1, { versions: [{ model_name: "m", model_version: "1", queue_depth: -1, replicas: [], cache_hits: 0, cache_misses: 0 }] })] }],
    ["a string for a number", { frontend_id: "f", samples: [{ ...sample(1), interval_ms: "2000" }] }],
    ["too many samples", { frontend_id: "f", samples: Array.from({ length: 11 }, (_, i) => sample(i)) }],
    ["a huge name", { frontend_id: "f".repeat(300), samples: [sample(1)] }],
    ["null", null],
  ])("answers 400 to a report with %s, and keeps nothing of it", async (_what, body) => {
    const res = await call("POST", REPORT_LIVE_STATS_PATH, body);
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/Error parsing JSON/);
    expect((await (await fetch(server.url + LIVE_STATS_PATH)).json()).frontends).toEqual([]);
  });

  it("keeps the admin plane's guards: JSON only, same origin only, the right method", async () => {
    expect((await call("POST", REPORT_LIVE_STATS_PATH, { frontend_id: "f", samples: [sample(1)] }, { "content-type": "text/plain" })).status).toBe(415);
    expect((await fetch(server.url + LIVE_STATS_PATH, { headers: { origin: "http://evil.example" } })).status).toBe(403);
    expect((await fetch(server.url + "/dashboard/", { headers: { origin: "http://evil.example" } })).status).toBe(403);
    expect((await call("POST", LIVE_STATS_PATH, {})).status).toBe(405);
    // DNS rebinding: fetch will not send a Host of our choosing, node:http will.
    const rebound = await new Promise<number>((resolve, reject) => {
      const req = request(new URL("/dashboard/", server.url), { headers: { host: "rebound.example" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end();
    });
    expect(rebound).toBe(403);
  });

  it("serves the page with headers that keep it out of other sites' frames, and nothing but its own files", async () => {
    const page = await fetch(server.url + "/dashboard/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(await page.text()).toContain("<title>dash</title>");
    expect((await fetch(server.url + "/dashboard")).status).toBe(200);
    expect((await fetch(server.url + "/dashboard/app.js")).headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    for (const path of ["/dashboard/../admin/get_all_models", "/dashboard/%2e%2e/package.json", "/dashboard/index.html", "/dashboard/__proto__"]) {
      const res = await fetch(server.url + path);
      expect(res.status, path).toBe(path.includes("get_all_models") ? 405 : 404);
    }
    // A file the build did not make: a clear 404, not a 500.
    const css = await fetch(server.url + "/dashboard/app.css");
    expect(css.status).toBe(404);
    expect(await css.text()).toMatch(/npm run build/);
    expect((await call("POST", "/dashboard/", {})).status).toBe(405);
  });
});

describe("the live stats feed in a running cluster", () => {
  let c: InProcessCluster;
  beforeAll(async () => {
    c = await startInProcessCluster({ cacheBytes: 1_000_000 });
    await c.admin.postText("/admin/add_app", { name: "app1", input_type: "doubles", default_output: "-1", latency_slo_micros: 500_000 });
    await c.admin.postText("/admin/add_model", {
      model_name: "m", model_version: "1", labels: [], input_type: "doubles", container_name: "x", model_data_path: "x", batch_size: -1,
    });
    await c.admin.postText("/admin/add_model_links", { app_name: "app1", model_names: ["m"] });
    await c.addContainer("m", "1", "doubles", sumHandler);
    await c.waitForConfig((f) => (f.state()?.applications["app1"]?.linked_models.length ?? 0) > 0);
  }, 30_000);
  afterAll(async () => c?.close());

  it("reports each app's rate, latency against its SLO and answers by source, and each version's replicas, to the daemon", async () => {
    // The same input 20 times in a row: the model answers the first, the prediction cache the rest.
    for (let i = 0; i < 20; i++) expect((await c.predict("app1", { input: [1, 2, 3] })).body.output).toBe(6);
    let stats: LiveStats | undefined;
    await waitFor(async () => {
      stats = LiveStatsSchema.parse(await (await fetch(c.management.url + LIVE_STATS_PATH)).json());
      return stats.frontends.some((f) => f.samples.some((s) => s.apps.some((a) => a.app === "app1")));
    }, 10_000, "a live stats sample with app1");
    const samples = stats!.frontends[0]!.samples;
    const answered = samples.flatMap((s) => s.apps).filter((a) => a.app === "app1");
    expect(answered.reduce((n, a) => n + a.answers.model, 0)).toBe(1);
    expect(answered.reduce((n, a) => n + (a.answers.cache ?? 0), 0)).toBe(19);
    expect(answered[0]!.slo_ms).toBe(500);
    expect(answered[0]!.p99_ms).toBeGreaterThan(0);
    const version = samples[samples.length - 1]!.versions.find((v) => v.model_name === "m")!;
    expect(version.replicas).toHaveLength(1);
    expect(version.replicas[0]!.batch_cap).toBeGreaterThan(0);
    expect(samples.flatMap((s) => s.versions).flatMap((v) => v.replicas).some((r) => (r.batch_size ?? 0) >= 1)).toBe(true);
  }, 20_000);
});

describe("clipper dashboard on a Kubernetes cluster", () => {
  it("gives the port-forward that makes a lasting URL, since the CLI's own proxy ends with the command", async () => {
    const home = await tempDir();
    writeFileSync(join(home, "context.json"), JSON.stringify({
      current: "prod",
      clusters: {
        prod: {
          cluster: "prod", manager: "kubernetes", queryUrl: "http://127.0.0.1:1", managementUrl: "http://127.0.0.1:2",
          rpcAddress: "tcp://127.0.0.1:3", metricsUrl: "http://127.0.0.1:1/metrics", kubernetes: { namespace: "serving" },
        },
      },
    }));
    const { ok } = cliFor({ CLIPPER_HOME: home, FORCE_COLOR: "0" });
    expect(await ok("dashboard", "--no-open")).toEqual({
      url: "http://127.0.0.1:1338/dashboard/",
      opened: false,
      port_forward: "kubectl port-forward --namespace serving service/clipper-prod-management 1338:1338",
    });
  }, 30_000);
});
