/**
 * Label values only from registered names (runtime/frontend/metric-names.ts), without a frontend:
 * FrontendMetrics, CacheMetrics, ShadowRecorder and the OIP handler on a configuration the test edits, read back through their
 * registry as a scrape and as a --frontend-workers collect. The end-to-end checks (real daemon,
 * frontend and RPC peers) are in test/bounded-metrics.test.ts.
 */
import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { CacheMetrics } from "../../runtime/frontend/cache-metrics.js";
import { PrimaryMetricsClient } from "../../runtime/frontend/cluster-metrics.js";
import { MetricNames, removedNames, removesAnything, UNREGISTERED } from "../../runtime/frontend/metric-names.js";
import { FrontendMetrics } from "../../runtime/frontend/metrics.js";
import type { CallOutcome, ModelCaller } from "../../runtime/frontend/model-caller.js";
import { OipHandler } from "../../runtime/frontend/oip/handler.js";
import { ShadowRecorder } from "../../runtime/frontend/shadow-recorder.js";
import { decodeContainerMessage, encodeContainerMessage, RpcFrameError } from "../../runtime/rpc/codec.js";
import { dict } from "../../runtime/shared/dict.js";
import { nameProblem } from "../../runtime/shared/names.js";
import { type ClusterState, emptyState } from "../../runtime/shared/state.js";
import { parsePrometheusText } from "../../src/frontend-metrics.js";
import { appRecord, versionRecord } from "../support/state-fixtures.js";

/** Applications `a`, `constructor` and `__proto__` (state records are null-prototype dicts), each linking a model of its name. */
function state(): ClusterState {
  const s = emptyState();
  for (const name of ["a", "constructor", "__proto__"]) {
    s.applications[name] = appRecord(name, [name]);
    s.models[name] = { name, current_version: "1", versions: dict([["1", versionRecord(name, "1")], ["2", versionRecord(name, "2")]]) };
  }
  return s;
}

function without(s: ClusterState, edit: (next: ClusterState) => void): ClusterState {
  const next = structuredClone(s);
  // structuredClone drops the null prototypes; the frontend's states always have them.
  next.applications = dict(Object.entries(next.applications));
  next.models = dict(Object.entries(next.models).map(([k, m]) => [k, { ...m, versions: dict(Object.entries(m.versions)) }] as const));
  edit(next);
  return next;
}

/** `constructor` as a key (TypeScript reads `record.constructor` as Object's property). */
const CTOR: string = "constructor";

function series(text: string, name: string): Array<Record<string, string>> {
  return parsePrometheusText(text).filter((s) => s.name === name).map((s) => s.labels);
}

function value(text: string, name: string, labels: Record<string, string>): number | undefined {
  return parsePrometheusText(text).find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

/** A frontend's metrics following `current.state`; replicas connected as `replicas` says. */
function frontendMetrics(current: { state: ClusterState }, replicas: Map<string, number> = new Map()) {
  const names = MetricNames.of(() => current.state);
  const metrics = new FrontendMetrics({
    queueDepths: () => new Map([...replicas].map(([key]) => [key, 2])),
    replicaCounts: () => replicas,
    batchCaps: () => [...replicas].map(([model]) => ({ model, replica: "0", cap: 4 })),
  }, names);
  const cache = new CacheMetrics(metrics.registry, () => ({ bytes: 0, entries: 0, maxBytes: 1 }), undefined, names);
  return { metrics, cache };
}

/** One answered query of `app` through model `app:version`, a batch, a cache hit, a default and a policy choice. */
function serve(m: ReturnType<typeof frontendMetrics>, app: string, version = "1"): void {
  const key = `${app}:${version}`;
  m.metrics.query(app, 0.002);
  m.metrics.query(app, 0.004, "slo_missed");
  m.metrics.batchSent(key, 1, { replicaId: 0, reason: "queue_drained", queueWaitSeconds: [0.001], cap: 4 });
  m.metrics.batchDone(key, 0.001);
  m.metrics.policyChoice(app, "exp3", app);
  m.metrics.canaryQuery(app, app, version, "output", 0.001);
  m.cache.hit(key);
  m.cache.miss(key);
}

describe("removedNames", () => {
  it("lists applications, versions and whole models gone, `constructor` and `__proto__` like any name", () => {
    const before = state();
    const after = without(before, (next) => {
      delete next.applications[CTOR];
      delete next.models.__proto__!.versions["2"];
      delete next.models[CTOR];
    });
    expect(removedNames(before, after)).toEqual({ apps: ["constructor"], versions: ["constructor:1", "constructor:2", "__proto__:2"], models: ["constructor"] });
    expect(removesAnything(removedNames(after, after))).toBe(false);
    expect(removesAnything(removedNames(undefined, after))).toBe(false);
  });
});

describe("MetricNames", () => {
  it("keeps series of registered names only, reading the configuration as it is now", () => {
    const current = { state: state() };
    const names = MetricNames.of(() => current.state);
    expect(names.keeps({ app: "constructor", reason: "slo_missed" })).toBe(true);
    expect(names.keeps({ model: "__proto__:2" })).toBe(true);
    expect(names.keeps({ app: "a", model: "constructor", version: "1" })).toBe(true);
    expect(names.keeps({ app: "a", policy: "exp3", model: "constructor" })).toBe(true);
    expect(names.keeps({ model: UNREGISTERED, app: UNREGISTERED })).toBe(true);
    for (const labels of [{ app: "toString" }, { model: "a:3" }, { model: "hasOwnProperty" }, { model: "a", version: "valueOf" }, { model: "a:1:1" }]) {
      expect(names.keeps(labels), JSON.stringify(labels)).toBe(false);
    }
    current.state = without(current.state, (next) => delete next.applications.a);
    expect(names.app("a")).toBe(UNREGISTERED);
    expect(names.version("a:1")).toBe("a:1");
    expect(MetricNames.any().keeps({ app: "anything" })).toBe(true);
  });
});

describe("FrontendMetrics and CacheMetrics", () => {
  it("drop every series of a deleted application or version, and count late work under (unregistered)", async () => {
    const current = { state: state() };
    const replicas = new Map([["a:1", 1], ["constructor:1", 1], ["__proto__:2", 1]]);
    const m = frontendMetrics(current, replicas);
    for (const app of ["a", "constructor", "__proto__"]) serve(m, app);
    serve(m, "__proto__", "2");
    let text = await m.metrics.registry.metrics();
    for (const [name, queries] of [["constructor", 2], ["__proto__", 4]] as const) {
      expect(value(text, "clipper_app_requests_total", { app: name })).toBe(queries);
      expect(value(text, "clipper_cache_hits_total", { model: `${name}:1` })).toBe(1);
      expect(value(text, "clipper_policy_choices_total", { app: name, model: name })).toBe(queries / 2);
    }

    const next = without(current.state, (s) => {
      delete s.applications[CTOR];
      delete s.models[CTOR];
      delete s.models.__proto__!.versions["2"];
    });
    const removed = removedNames(current.state, next);
    current.state = next;
    m.cache.forget(removed.versions);
    await m.metrics.forget(removed);

    text = await m.metrics.registry.metrics();
    const lines = text.split("\n").filter((l) => l.startsWith("clipper_"));
    expect(lines.filter((l) => l.includes('"constructor') || l.includes("__proto__:2") || /model="__proto__",version="2"/.test(l))).toEqual([]);
    // The names still registered keep their series and counts.
    expect(value(text, "clipper_app_requests_total", { app: "__proto__" })).toBe(4);
    expect(value(text, "clipper_cache_hits_total", { model: "__proto__:1" })).toBe(1);
    expect(value(text, "clipper_app_requests_total", { app: "a" })).toBe(2);
    // Replicas still connected to deleted versions are counted, under one label; they have no cap series.
    expect(value(text, "clipper_model_replicas", { model: UNREGISTERED })).toBe(2);
    expect(value(text, "clipper_model_queue_depth", { model: UNREGISTERED })).toBe(4);
    expect(series(text, "clipper_model_batch_cap").map((l) => l.model).sort()).toEqual(["a:1"]);

    // Work that finishes after the deletion (a query, a batch, a drain) mints no series of the name.
    serve(m, "constructor");
    m.metrics.drained("constructor:1");
    text = await m.metrics.registry.metrics();
    expect(text).not.toMatch(/"constructor/);
    expect(value(text, "clipper_app_requests_total", { app: UNREGISTERED })).toBe(2);
    expect(value(text, "clipper_model_drained_replicas_total", { model: UNREGISTERED })).toBe(1);
    expect(value(text, "clipper_cache_hits_total", { model: UNREGISTERED })).toBe(1);

    // Registered again, the name starts afresh.
    current.state = without(current.state, (s) => {
      s.applications[CTOR] = appRecord("constructor", ["constructor"]);
      s.models[CTOR] = { name: "constructor", current_version: "1", versions: dict([["1", versionRecord("constructor", "1")]]) };
    });
    serve(m, "constructor");
    text = await m.metrics.registry.metrics();
    expect(value(text, "clipper_app_requests_total", { app: "constructor" })).toBe(2);
    expect(value(text, "clipper_cache_hits_total", { model: "constructor:1" })).toBe(1);
  });

  it("holds one series for any number of unregistered replicas, and forgets deleted apps without a scrape", async () => {
    const current = { state: state() };
    const replicas = new Map(Array.from({ length: 3_000 }, (_, i) => [`x${i}:1`, 1] as [string, number]));
    const m = frontendMetrics(current, replicas);
    for (let i = 0; i < 3_000; i++) m.metrics.drained(`x${i}:1`);
    const text = await m.metrics.registry.metrics();
    expect(text).not.toMatch(/x\d+:1/);
    expect(value(text, "clipper_model_replicas", { model: UNREGISTERED })).toBe(3_000);
    expect(value(text, "clipper_model_drained_replicas_total", { model: UNREGISTERED })).toBe(3_000);

    // A deploy-and-delete loop, never scraped: the registry holds no series of the deleted apps
    // once the last deletion's sweep ran (the deletions before it share sweeps, paced by their cost).
    let swept: Promise<void> = Promise.resolve();
    for (let i = 0; i < 200; i++) {
      const app = `loop-${i}`;
      current.state = without(current.state, (s) => void (s.applications[app] = appRecord(app, ["a"])));
      m.metrics.query(app, 0.001, "model_error");
      const next = without(current.state, (s) => delete s.applications[app]);
      const removed = removedNames(current.state, next);
      current.state = next;
      swept = m.metrics.forget(removed);
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await swept;
    // Read metric by metric: a read of the whole registry would sweep them itself.
    for (const name of ["clipper_app_requests_total", "clipper_app_request_latency_seconds", "clipper_app_default_outputs_total"]) {
      expect(JSON.stringify(await m.metrics.registry.getSingleMetric(name)!.get()), name).not.toMatch(/loop-/);
    }
  });

  it("a --frontend-workers worker sends the primary its registry without series of deleted names", async () => {
    const current = { state: state() };
    const m = frontendMetrics(current);
    serve(m, "a");
    serve(m, "constructor");
    // Deleted, and its paced sweep not yet run (the frontend calls forget as it applies the change): the collect's own sweep drops it.
    const next = without(current.state, (s) => delete s.applications[CTOR]);
    const removed = removedNames(current.state, next);
    current.state = next;
    void m.metrics.forget(removed);
    const channel = Object.assign(new EventEmitter(), {
      sent: [] as Array<{ type: string; id: number; metrics?: Array<{ name: string; values: Array<{ labels: Record<string, unknown> }> }> }>,
      send(message: object, _h: unknown, _o: unknown, callback?: (err: Error | null) => void) {
        channel.sent.push(message as never);
        callback?.(null);
        return true;
      },
    });
    const client = new PrimaryMetricsClient(m.metrics.registry, channel as never);
    try {
      channel.emit("message", { type: "clipper:metrics-collect", id: 1 });
      await new Promise((resolve) => setTimeout(resolve, 50));
      const requests = channel.sent[0]!.metrics!.find((metric) => metric.name === "clipper_app_requests_total")!;
      expect(requests.values.map((v) => v.labels.app)).toEqual(["a"]);
    } finally {
      client.close();
    }
  });
});

describe("the sweep for deleted names", () => {
  it("runs only when names were deleted, and a late observation for a deleted name does not survive to the next scrape", async () => {
    const current = { state: state() };
    const m = frontendMetrics(current);
    const shadows = new ShadowRecorder(m.metrics.registry, MetricNames.of(() => current.state));
    const registry = m.metrics.registry;
    let sweeps = 0;
    const sweep = registry.sweep.bind(registry);
    registry.sweep = () => (sweeps++, sweep());
    serve(m, "a");
    shadows.record({ name: "__proto__", version: "2" }, 1, "agree", { shadowMs: 1, liveMs: 1 });
    await registry.metrics();
    await registry.getMetricsAsJSON();
    expect(sweeps).toBe(0); // nothing was deleted: scrapes read each series once

    const next = without(current.state, (s) => {
      delete s.applications.a;
      delete s.models.a;
      delete s.models.__proto__!.versions["2"];
    });
    const removed = removedNames(current.state, next);
    current.state = next;
    m.cache.forget(removed.versions);
    await m.metrics.forget(removed);
    expect(sweeps).toBe(1);

    // Work begun before the deletion finishes after its sweep: an in-flight batch of `a:1` answers,
    // its query and canary complete, a shadow copy of `__proto__:2` comes back.
    serve(m, "a");
    m.metrics.requeued("a:1", 1);
    m.metrics.shed("a:1");
    m.metrics.dropped("a:1", 1);
    shadows.record({ name: "__proto__", version: "2" }, 1, "agree", { shadowMs: 1, liveMs: 1 });
    const text = await registry.metrics();
    expect(sweeps).toBe(1);
    const deleted = text.split("\n").filter((l) => /(app|model)="a(:1)?"|"__proto__:2"|model="__proto__",version="2"/.test(l));
    expect(deleted).toEqual([]);
    expect(value(text, "clipper_app_requests_total", { app: UNREGISTERED })).toBe(2);
    expect(value(text, "clipper_model_batch_latency_seconds_count", { model: UNREGISTERED })).toBe(1);
    expect(value(text, "clipper_shadow_queries_total", { model: UNREGISTERED, version: UNREGISTERED, outcome: "agree" })).toBe(1);
    expect(value(text, "clipper_shadow_queries_total", { model: "__proto__", version: "2", outcome: "agree" })).toBeUndefined();
  });
});

describe("an Open Inference Protocol answer", () => {
  it("that comes after its version was deleted (and swept) counts under (unregistered)", async () => {
    const current = { state: state() };
    const m = frontendMetrics(current);
    let answer!: (outcome: CallOutcome) => void;
    const caller = {
      available: () => true, servable: () => true,
      call: () => new Promise<CallOutcome>((resolve) => (answer = resolve)),
    } as unknown as ModelCaller;
    const oip = new OipHandler({ caller, state: () => current.state, log: pino({ level: "silent" }), maxBodyBytes: 1 << 20, registry: m.metrics.registry });
    const body = JSON.stringify({ inputs: [{ name: "x", shape: [1, 1], datatype: "FP64", data: [1] }] });
    const req = Object.assign(Readable.from([Buffer.from(body)]), { method: "POST", headers: { "content-type": "application/json" } }) as unknown as IncomingMessage;
    const sent: number[] = [];
    const res = { headersSent: false, writeHead: (status: number) => sent.push(status), end: () => undefined, setHeader: () => undefined } as unknown as ServerResponse;
    const handled = oip.handle(req, res, "/v2/models/a/versions/1/infer");
    await new Promise((resolve) => setTimeout(resolve, 20)); // the body is read and the call is in flight

    const next = without(current.state, (s) => {
      delete s.applications.a;
      delete s.models.a;
    });
    const removed = removedNames(current.state, next);
    current.state = next;
    await m.metrics.forget(removed);
    answer({ kind: "output", output: "1" });
    await handled;
    expect(sent).toEqual([200]);
    const text = await m.metrics.registry.metrics();
    expect(text).not.toMatch(/model="a:1"/);
    expect(value(text, "clipper_oip_infer_requests_total", { model: UNREGISTERED, code: "200" })).toBe(1);
  });
});

describe("the rpc door", () => {
  const metadata = (name: string, version: string) => encodeContainerMessage({ kind: "metadata", name, version, inputType: "doubles", rpcVersion: 3 });

  it("refuses metadata naming a model or version over 63 bytes, or an input type code over 8, before decoding it", () => {
    expect(decodeContainerMessage(metadata("m".repeat(63), "v".repeat(63)))).toMatchObject({ kind: "metadata", name: "m".repeat(63) });
    expect(() => decodeContainerMessage(metadata("m".repeat(64), "1"))).toThrow(new RpcFrameError("container metadata: model name of 64 bytes, over 63"));
    // Two bytes a character: over the bound in bytes though 40 characters.
    expect(() => decodeContainerMessage(metadata("m", "é".repeat(40)))).toThrow(/model version of 80 bytes, over 63/);
    const frames = metadata("m", "1");
    frames[4] = Buffer.from("0".repeat(9));
    expect(() => decodeContainerMessage(frames)).toThrow(/input type code of 9 bytes, over 8/);
  });

  it("quotes an over-long name clipped when it refuses it", () => {
    expect(nameProblem("application name", "a".repeat(1024 * 1024))!.length).toBeLessThan(200);
  });
});
