/**
 * The frontend follows the watch stream's deltas (shared/state-delta.ts, frontend/frontend-config.ts):
 * a delta whose base is not the revision held, or a line it cannot read, makes it reconnect for a
 * snapshot and end with the daemon's state; prototype names survive deltas; and after a run of mixed
 * writes the frontend's copy, built change by change, is the daemon's state.
 */
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { startQueryFrontend, type RunningFrontend } from "../runtime/frontend/frontend.js";
import { dict } from "../runtime/shared/dict.js";
import { generateRpcKey } from "../runtime/shared/rpc-auth.js";
import { emptyState, WATCH_PATH, type ClusterState } from "../runtime/shared/state.js";
import { startInProcessCluster, sumHandler, waitFor } from "./support/cluster-in-process.js";
import { LineReader } from "./support/management-daemon.js";
import { appRecord, versionRecord } from "./support/state-fixtures.js";

const log = pino({ level: "silent" });
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const DAEMON = "00000000-0000-4000-8000-000000000001";
const snapshot = (state: ClusterState) => JSON.stringify({ revision: state.revision, daemon: DAEMON, state });
const delta = (base: number, changes: unknown[], revision = base + 1) => JSON.stringify({ revision, base, daemon: DAEMON, changes });

function stateWith(revision: number, apps: string[]): ClusterState {
  const state = emptyState();
  state.revision = revision;
  for (const name of apps) state.applications[name] = appRecord(name);
  return state;
}

/**
 * A daemon's watch endpoint that sends, on each connection, the next script of lines and keeps the
 * stream open (the frontend decides when to reconnect). Answers every other path 200 `{}` (reports).
 */
async function scriptedDaemon(connections: string[][]): Promise<{ url: string; connections: () => number }> {
  let next = 0;
  const server = createServer((req, res: ServerResponse) => {
    if (req.url !== WATCH_PATH) {
      req.resume();
      return void res.writeHead(200, { "content-type": "application/json" }).end("{}");
    }
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    for (const line of connections[next++] ?? []) res.write(line + "\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => next };
}

async function frontendOf(managementUrl: string): Promise<RunningFrontend> {
  const frontend = await startQueryFrontend({
    host: "127.0.0.1", port: 0, rpcPort: 0, managementUrl, log, rpcAuth: "plain", rpcKey: generateRpcKey(),
    reportIntervalMs: 60_000, liveStatsIntervalMs: 60_000,
  });
  cleanups.push(() => frontend.close());
  return frontend;
}

const appNames = (f: RunningFrontend) => Object.keys(f.state()?.applications ?? {}).sort();

describe("the frontend on a watch stream of deltas", () => {
  it("does not apply a delta from another base: it reconnects and ends with the next snapshot", async () => {
    const daemon = await scriptedDaemon([
      [snapshot(stateWith(1, ["a"])), delta(1, [{ field: "applications", key: "b", value: appRecord("b") }]),
        // Revision 3 never arrived: this delta would apply to a state the frontend does not hold.
        delta(3, [{ field: "applications", key: "x", value: appRecord("x") }])],
      [snapshot(stateWith(4, ["a", "b", "c"]))],
    ]);
    const frontend = await frontendOf(daemon.url);
    await waitFor(() => frontend.state()?.revision === 4, 10_000, "the snapshot after the reconnect");
    expect(appNames(frontend)).toEqual(["a", "b", "c"]);
    expect(daemon.connections()).toBe(2);
    const health = await (await fetch(`${frontend.queryUrl}/health`)).json();
    expect(health).toMatchObject({ status: "ok", revision: 4 });
  });

  it("survives malformed delta lines: each costs a reconnect, and the frontend keeps answering", async () => {
    const daemon = await scriptedDaemon([
      [snapshot(stateWith(1, ["a"])), delta(1, [{ field: "applications", key: "bad", value: { name: 5 } }])],
      [snapshot(stateWith(1, ["a"])), "{\"revision\":2,\"base\":1,\"changes\":[{\"field\":"],
      [snapshot(stateWith(1, ["a"])), delta(1, [{ field: "no_such_field", key: "k", value: 1 }])],
      [snapshot(stateWith(1, ["a"])), delta(1, [{ field: "applications", value: appRecord("keyless") }])],
      [snapshot(stateWith(1, ["a"])), "[1,2]", "null"],
      [snapshot(stateWith(1, ["a"])), delta(1, [], 1)],
      [snapshot(stateWith(1, ["a"])), delta(1, [{ field: "applications", key: "b", value: appRecord("b") }])],
    ]);
    const frontend = await frontendOf(daemon.url);
    await waitFor(() => daemon.connections() === 7 && frontend.state()?.revision === 2, 30_000, "the last connection's delta");
    expect(appNames(frontend)).toEqual(["a", "b"]);
    // Still serving queries on what it holds.
    const res = await fetch(`${frontend.queryUrl}/a/predict`, { method: "POST", body: JSON.stringify({ input: [1] }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ default: true });
  }, 40_000);

  it("keeps prototype names through deltas, as ordinary keys", async () => {
    const PROTO = "__proto__";
    const CONSTRUCTOR = "constructor";
    const model = { name: CONSTRUCTOR, current_version: PROTO, versions: dict([[PROTO, versionRecord(CONSTRUCTOR, PROTO)]]) };
    const daemon = await scriptedDaemon([[
      snapshot(stateWith(1, [])),
      delta(1, [
        { field: "applications", key: PROTO, value: appRecord(PROTO, [CONSTRUCTOR]) },
        { field: "applications", key: CONSTRUCTOR, value: appRecord(CONSTRUCTOR, [CONSTRUCTOR]) },
        { field: "models", key: CONSTRUCTOR, value: model },
        { field: "query_log", key: PROTO, value: { sample: 1, max_mb: 1 } },
      ]),
      delta(2, [{ field: "applications", key: CONSTRUCTOR }]),
    ]]);
    const frontend = await frontendOf(daemon.url);
    await waitFor(() => frontend.state()?.revision === 3, 10_000, "both deltas");
    const state = frontend.state()!;
    expect(Object.keys(state.applications)).toEqual([PROTO]);
    expect(Object.hasOwn(state.applications, PROTO)).toBe(true);
    expect(state.applications[PROTO]!.linked_models).toEqual([CONSTRUCTOR]);
    expect(Object.keys(state.models[CONSTRUCTOR]!.versions)).toEqual([PROTO]);
    expect(({} as Record<string, unknown>).linked_models).toBeUndefined(); // nothing reached Object.prototype
    // The application named __proto__ answers (its default: no replica), constructor is gone.
    const proto = await fetch(`${frontend.queryUrl}/${PROTO}/predict`, { method: "POST", body: JSON.stringify({ input: [1] }) });
    expect(proto.status).toBe(200);
    const gone = await fetch(`${frontend.queryUrl}/${CONSTRUCTOR}/predict`, { method: "POST", body: JSON.stringify({ input: [1] }) });
    expect(gone.status).toBe(404);
  });

  it("builds, change by change, the daemon's state, and serves each change's configuration", async () => {
    const cluster = await startInProcessCluster();
    cleanups.push(() => cluster.close());
    const post = (path: string, body: unknown) => cluster.admin.postText(path, body);
    await post("/admin/add_app", { name: "fast", input_type: "doubles", default_output: "-1", latency_slo_micros: 2_000_000 });
    await post("/admin/add_app", { name: "slow", input_type: "doubles", default_output: "-1", latency_slo_micros: 5_000_000 });
    await post("/admin/add_model", { ...versionRecord("m", "1"), container_name: "NO_CONTAINER" });
    await post("/admin/add_model_links", { app_name: "slow", model_names: ["m"] });
    await cluster.addContainer("m", "1", "doubles", sumHandler);
    await cluster.waitForConfig((f) => f.state()?.applications.slow?.linked_models.includes("m") === true);
    expect((await cluster.predict("slow", { input: [1, 2] })).body).toMatchObject({ output: 3, default: false });
    expect((await cluster.predict("fast", { input: [1, 2] })).body).toMatchObject({ default: true });

    await post("/admin/add_model_links", { app_name: "fast", model_names: ["m"] });
    await post("/admin/add_model", { ...versionRecord("m", "2"), container_name: "NO_CONTAINER" });
    await post("/admin/set_model_version", { model_name: "m", model_version: "1" });
    await post("/admin/add_app", { name: "doomed", input_type: "doubles", default_output: "-1", latency_slo_micros: 1000 });
    await post("/admin/delete_app", { name: "doomed" });
    // The daemon's whole state: the first line of a new watch.
    const watch = new LineReader((await fetch(cluster.management.url + WATCH_PATH)).body!);
    const daemonState = (await watch.nextUpdate()).state as ClusterState;
    await watch.cancel();
    await cluster.waitForConfig((f) => f.state()?.revision === daemonState.revision);
    expect(JSON.parse(JSON.stringify(cluster.frontend.state()))).toEqual(daemonState);
    expect((await cluster.predict("fast", { input: [2, 2] })).body).toMatchObject({ output: 4, default: false });
    // The applied revision and the cost of applying it are on /metrics (docs/metrics.md).
    const metrics = await (await fetch(`${cluster.frontend.queryUrl}/metrics`)).text();
    expect(metrics).toContain(`clipper_frontend_config_revision ${daemonState.revision}`);
    expect(metrics).toMatch(/clipper_frontend_config_apply_cpu_seconds_count\{kind="delta"\} [1-9]/);
    expect(metrics).toMatch(/clipper_frontend_config_apply_cpu_seconds_count\{kind="snapshot"\} 1\n/);
  });
});
