/**
 * The daemon's autoscaling surface over real HTTP (an in-process daemon on 127.0.0.1, port 0):
 * replica counts asked for through POST /admin/set_num_replicas (validated, refused for autoscaled
 * versions, kept until the manager's loop reports them done) and GET /metrics with the
 * clipper_autoscaler_* series derived from the daemon's own events and configuration. The loop
 * applying requests: test/unit/autoscale-loop.test.ts; the dashboard's button: test/dashboard-browser.test.ts.
 */
import { get } from "node:http";
import { networkInterfaces } from "node:os";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AutoscalerMetrics } from "../runtime/management/autoscaler-metrics.js";
import { startManagementServer, type ManagementServer } from "../runtime/management/server.js";
import {
  AUTOSCALER_EVENTS_PATH, COMPLETE_SCALE_REQUEST_PATH, RECORD_AUTOSCALER_EVENT_PATH, SCALE_REQUESTS_PATH, SET_AUTOSCALING_PATH,
  SET_NUM_REPLICAS_PATH,
} from "../runtime/shared/autoscaling.js";
import { dict } from "../runtime/shared/dict.js";
import { describeChange } from "../runtime/shared/event-change.js";
import { emptyState } from "../runtime/shared/state.js";
import type { ScaleRequest } from "../runtime/shared/autoscaling.js";
import { versionRecord } from "./support/state-fixtures.js";
import { tempDirs } from "./support/temp-dirs.js";

const MODEL = { labels: [], input_type: "doubles", container_name: "NO_CONTAINER", model_data_path: "x", batch_size: -1 };
const JSON_HEADERS = { "content-type": "application/json" };

describe("the daemon's manual scale requests and autoscaler metrics", () => {
  const tempDir = tempDirs("clipper-autoscaler-admin-");
  let server: ManagementServer;
  let now = Date.parse("2027-01-15T08:00:00Z");
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(server.url + path, { method: "POST", headers: { ...JSON_HEADERS, ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
  const ok = async (path: string, body: unknown) => {
    const res = await post(path, body);
    const text = await res.text();
    expect(res.status, text).toBe(200);
    return text;
  };
  const refused = async (body: unknown) => {
    const res = await post(SET_NUM_REPLICAS_PATH, body);
    expect(res.status).toBe(400);
    return res.text();
  };
  const events = async () => ((await (await fetch(server.url + AUTOSCALER_EVENTS_PATH)).json()) as { events: Array<Record<string, unknown>> }).events;
  const pending = async () => ((await (await fetch(server.url + SCALE_REQUESTS_PATH)).json()) as { requests: Array<Record<string, unknown>> }).requests;
  const metrics = async () => {
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    return (await res.text()).split("\n").filter((l) => l.startsWith("clipper_autoscaler_"));
  };

  beforeAll(async () => {
    server = await startManagementServer({
      host: "127.0.0.1", port: 0, stateDir: await tempDir(), logger: pino({ level: "silent" }), now: () => now,
    });
    for (const [model_name, model_version] of [["m", "1"], ["m", "2"], ["constructor", "1"]]) {
      await ok("/admin/add_model", { ...MODEL, model_name, model_version });
    }
    await ok(SET_AUTOSCALING_PATH, { model_name: "m", model_version: "1", min_replicas: 1, max_replicas: 4 });
  });
  afterAll(() => server?.close());

  it("refuses bad requests with 400, another origin with 403, a body that is not JSON with 415, and keeps nothing", async () => {
    const before = (await events()).length;
    expect(await refused({ model_name: "m", model_version: "1", num_replicas: 2 }))
      .toBe("m:1 is autoscaled (min 1, max 4): change its bounds with clipper autoscale");
    expect(await refused({ model_name: "m", num_replicas: 65 })).toBe("num_replicas must be a whole number from 0 to 64, got 65");
    expect(await refused({ model_name: "m", num_replicas: 1.5 })).toBe("num_replicas must be a whole number from 0 to 64, got 1.5");
    expect(await refused({ model_name: "m", num_replicas: -1 })).toBe("num_replicas must be a whole number from 0 to 64, got -1");
    expect(await refused({ model_name: "m", num_replicas: "3" })).toMatch(/the value of 'num_replicas' is invalid/);
    expect(await refused({ model_name: "m" })).toMatch(/JSON object does not have required key: num_replicas/);
    expect(await refused("[1]")).toMatch(/the body must be a JSON object/);
    expect(await refused("{")).toMatch(/the body is not valid JSON/);
    for (const name of ["__proto__", "constructor ", "toString", "hasOwnProperty"]) {
      expect(await refused({ model_name: name, num_replicas: 1 })).toBe(`No model with name '${name}' exists.`);
    }
    expect(await refused({ model_name: "constructor", model_version: "__proto__", num_replicas: 1 }))
      .toBe("model with name 'constructor' and version '__proto__' does not exist");
    expect(await refused({ model_name: "m", model_version: "constructor", num_replicas: 1 }))
      .toBe("model with name 'm' and version 'constructor' does not exist");

    const foreign = await post(SET_NUM_REPLICAS_PATH, { model_name: "m", num_replicas: 1 }, { origin: "http://evil.example" });
    expect(foreign.status).toBe(403);
    const plain = await fetch(server.url + SET_NUM_REPLICAS_PATH, { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" });
    expect(plain.status).toBe(415);
    expect((await fetch(server.url + SET_NUM_REPLICAS_PATH)).status).toBe(405);
    expect(await pending()).toEqual([]);
    expect(await events()).toHaveLength(before);
  });

  it("keeps a request until the manager's loop reports that very request done, with an event at each step", async () => {
    const ask = async (body: Record<string, unknown>) => JSON.parse(await ok(SET_NUM_REPLICAS_PATH, body)) as { message: string; request: ScaleRequest };
    const first = await ask({ model_name: "constructor", num_replicas: 3 });
    expect(first.message).toBe("Requested 3 replicas of constructor:1: the cluster's manager applies it within seconds");
    expect(first.request).toEqual({
      seq: 1, model_name: "constructor", model_version: "1", num_replicas: 3, requested_at: new Date(now).toISOString(),
    });
    const second = await ask({ model_name: "m", model_version: "2", num_replicas: 0 });
    expect(await pending()).toEqual([first.request, second.request]);
    const newer = await ask({ model_name: "constructor", num_replicas: 2 });
    expect((await pending()).map((r) => [r.model_name, r.num_replicas])).toEqual([["m", 0], ["constructor", 2]]);

    // The replaced request's completion changes nothing; the pending one's clears it.
    const completion = (r: typeof first.request, outcome: Record<string, unknown>) => ({
      seq: r.seq, model_name: r.model_name, model_version: r.model_version, num_replicas: r.num_replicas, ...outcome,
    });
    expect(JSON.parse(await ok(COMPLETE_SCALE_REQUEST_PATH, completion(first.request, { from: 1 })))).toEqual({ completed: false });
    expect(JSON.parse(await ok(COMPLETE_SCALE_REQUEST_PATH, completion(newer.request, { from: 1 })))).toEqual({ completed: true });
    expect(JSON.parse(await ok(COMPLETE_SCALE_REQUEST_PATH, completion(second.request, { error: "no deployment of m:2" })))).toEqual({ completed: true });
    expect(await pending()).toEqual([]);
    for (const bad of [
      { ...completion(first.request, { from: 1 }), error: "both" },
      completion(first.request, {}),
      { ...completion(first.request, { from: 1 }), seq: 0 },
      { ...completion(first.request, { from: 1 }), requested_at: "extra" },
    ]) {
      expect((await post(COMPLETE_SCALE_REQUEST_PATH, bad)).status).toBe(400);
    }
    const manual = (await events()).filter((e) => e.kind === "manual").map((e) => [`${e.model_name}:${e.model_version}`, e.from, e.to, e.reason]);
    expect(manual).toEqual([
      ["constructor:1", undefined, 3, "requested 3 replicas through the admin API"],
      ["m:2", undefined, 0, "requested 0 replicas through the admin API"],
      ["constructor:1", undefined, 2, "requested 2 replicas through the admin API"],
      ["constructor:1", 1, 2, "applied the request for 2 replicas"],
      ["m:2", undefined, 0, "could not apply the request for 0 replicas: no deployment of m:2"],
    ]);

    // A request no loop picks up expires (on the daemon's injected clock).
    await ask({ model_name: "m", model_version: "2", num_replicas: 1 });
    now += 61_000;
    expect(await pending()).toEqual([]);
    expect((await events()).at(-1)!.reason).toMatch(/^dropped the request for 1 replica: no autoscaler loop applied it within 60 s/);
  });

  it("serves clipper_autoscaler_* metrics from its own events and configuration, behind the admin guards", async () => {
    for (const [model_name, kind, from, to] of [["constructor", "scale_up", 1, 3], ["constructor", "scale_down", 3, 2], ["m", "scale_up", 1, 4]] as const) {
      await ok(RECORD_AUTOSCALER_EVENT_PATH, { kind, model_name, model_version: "1", from, to, reason: "test" });
    }
    await ok(RECORD_AUTOSCALER_EVENT_PATH, { kind: "first_replica", model_name: "m", model_version: "1", start_ms: 2500, reason: "test" });
    const lines = await metrics();
    expect(lines).toEqual(expect.arrayContaining([
      'clipper_autoscaler_decisions_total{model="constructor",version="1",direction="up"} 1',
      'clipper_autoscaler_decisions_total{model="constructor",version="1",direction="down"} 1',
      'clipper_autoscaler_decisions_total{model="constructor",version="1",direction="manual"} 1',
      'clipper_autoscaler_decisions_total{model="m",version="1",direction="up"} 1',
      'clipper_autoscaler_desired_replicas{model="constructor",version="1"} 2',
      'clipper_autoscaler_desired_replicas{model="m",version="1"} 4',
      'clipper_autoscaler_min_replicas{model="m",version="1"} 1',
      'clipper_autoscaler_max_replicas{model="m",version="1"} 4',
      `clipper_autoscaler_last_decision_timestamp_seconds{model="m",version="1"} ${now / 1000}`,
      "clipper_autoscaler_pending_scale_requests 0",
      'clipper_autoscaler_first_replica_start_seconds{model="m",version="1"} 2.5',
    ]));
    // A first replica's start is no decision.
    expect(lines).toContain('clipper_autoscaler_decisions_total{model="m",version="1",direction="up"} 1');
    // The version that failed to scale made no decision.
    expect(lines.filter((l) => l.includes('version="2"'))).toEqual([]);

    expect((await fetch(`${server.url}/metrics`, { headers: { origin: "http://evil.example" } })).status).toBe(403);
    // fetch cannot set Host: a DNS-rebound page's request, by node:http.
    const rebound = await new Promise<number>((resolve, reject) =>
      get(`${server.url}/metrics`, { headers: { host: "rebind.example" } }, (res) => resolve(res.resume().statusCode ?? 0)).on("error", reject));
    expect(rebound).toBe(403);
    expect((await post("/metrics", {})).status).toBe(405);

    // A deleted version's series go (bounded cardinality).
    await ok("/admin/delete_versioned_model", { model_name: "constructor", model_version: "1" });
    expect((await metrics()).filter((l) => l.includes("constructor"))).toEqual([]);
  });
});

describe("AutoscalerMetrics", () => {
  it("escapes names that are not valid model names (quotes, backslashes, newlines) as label values", async () => {
    const state = emptyState();
    const odd = 'a"b\\c\nd';
    state.models[odd] = { name: odd, current_version: "__proto__", versions: dict([["__proto__", versionRecord(odd, "__proto__")]]) };
    state.autoscaling = dict([[odd, dict([["__proto__", { min_replicas: 0, max_replicas: 2, target_queue_per_replica: 4, scale_down_delay_s: 30 }]])]]);
    const metrics = new AutoscalerMetrics(() => state, () => 0);
    metrics.observe({ seq: 1, at: "2027-01-15T08:00:00.000Z", kind: "scale_up", model_name: odd, model_version: "__proto__", from: 0, to: 2, reason: "r" });
    const text = await metrics.text();
    expect(text).toContain('clipper_autoscaler_decisions_total{model="a\\"b\\\\c\\nd",version="__proto__",direction="up"} 1');
    expect(text).toContain('clipper_autoscaler_max_replicas{model="a\\"b\\\\c\\nd",version="__proto__"} 2');
    expect(text).toContain('clipper_autoscaler_last_decision_timestamp_seconds{model="a\\"b\\\\c\\nd",version="__proto__"} 1800000000');
    // Every sample is one line: no raw newline inside a label.
    for (const line of text.split("\n").filter((l) => l.startsWith("clipper_autoscaler_decisions_total"))) expect(line).toMatch(/ \d+$/);
    expect(Object.prototype).not.toHaveProperty("up");
  });
});

describe("an event's change in words (clipper events and the dashboard)", () => {
  it("names each kind, with a manual request's missing `from` left blank", () => {
    expect([
      describeChange({ kind: "scale_up", from: 1, to: 4 }),
      describeChange({ kind: "scale_down", from: 4, to: 3 }),
      describeChange({ kind: "config", from: 0, to: 2 }),
      describeChange({ kind: "off" }),
      describeChange({ kind: "manual", to: 3 }),
      describeChange({ kind: "manual", from: 2, to: 3 }),
    ]).toEqual(["scale up 1→4", "scale down 4→3", "config min 0 max 2", "off", "manual →3", "manual 2→3"]);
  });
});

/** An address of this machine other than loopback, if it has one: a client there is "off loopback". */
const outsideAddress = Object.values(networkInterfaces()).flat().find((a) => a?.family === "IPv4" && !a.internal)?.address;

describe.skipIf(!outsideAddress)("the daemon's metrics and scale requests off loopback", () => {
  const tempDir = tempDirs("clipper-autoscaler-token-");

  it("want the token like the rest of the admin plane", async () => {
    const server = await startManagementServer({ host: "0.0.0.0", port: 0, stateDir: await tempDir(), token: "s3cret", logger: pino({ level: "silent" }) });
    try {
      const base = `http://${outsideAddress}:${server.port}`;
      const scale = (headers: Record<string, string>) => fetch(base + SET_NUM_REPLICAS_PATH, {
        method: "POST", headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify({ model_name: "m", num_replicas: 1 }),
      });
      expect((await fetch(`${base}/metrics`)).status).toBe(401);
      expect((await scale({})).status).toBe(401);
      expect((await fetch(base + SCALE_REQUESTS_PATH)).status).toBe(401);
      const auth = { authorization: "Bearer s3cret" };
      expect((await fetch(`${base}/metrics`, { headers: auth })).status).toBe(200);
      // With the token the request is read, and refused for what it says (no such model).
      expect((await scale(auth)).status).toBe(400);
    } finally {
      await server.close();
    }
  });
});
