/**
 * A write returns only once every live query frontend applied it: the registry's view of applied
 * revisions (per daemon instance), the bounded wait on an injected clock, and real frontends
 * following a real management daemon, through a daemon restart.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { startQueryFrontend, type RunningFrontend } from "../runtime/frontend/frontend.js";
import { ReplicaReporter } from "../runtime/frontend/replica-reporter.js";
import { ReplicaRegistry } from "../runtime/management/replicas.js";
import { startManagementServer, type ManagementServer } from "../runtime/management/server.js";
import { REPORT_REPLICAS_PATH, type AppliedRevisions } from "../runtime/shared/state.js";
import { AdminClient } from "../src/admin-client.js";
import { ClipperError } from "../src/errors.js";
import { laggingFrontends, waitUntilApplied } from "../src/revision-wait.js";

const silent = pino({ level: "silent" });

describe("the registry of applied revisions", () => {
  it("counts a revision only from the daemon instance that numbered it, and forgets leaving or silent frontends", () => {
    let now = 0;
    const registry = new ReplicaRegistry(60_000, () => now);
    registry.report({ frontend_id: "b", replicas: [], applied: { daemon: "d1", revision: 7 } });
    registry.report({ frontend_id: "a", replicas: [], applied: { daemon: "d0", revision: 9 } });
    registry.report({ frontend_id: "c", replicas: [] });
    expect(registry.applied("d1", 8)).toEqual({
      daemon: "d1",
      revision: 8,
      frontends: [{ frontend_id: "a", revision: null }, { frontend_id: "b", revision: 7 }, { frontend_id: "c", revision: null }],
    });
    registry.report({ frontend_id: "c", replicas: [], leaving: true });
    now += 40_000;
    registry.report({ frontend_id: "b", replicas: [], applied: { daemon: "d1", revision: 8 } });
    now += 20_001; // a and c are past the TTL; b reported 20 s ago
    expect(registry.applied("d1", 8).frontends).toEqual([{ frontend_id: "b", revision: 8 }]);
    // Names that mean something to plain objects are ordinary frontend ids here.
    registry.report({ frontend_id: "__proto__", replicas: [], applied: { daemon: "d1", revision: 8 } });
    expect(registry.applied("d1", 8).frontends.map((f) => f.frontend_id)).toEqual(["__proto__", "b"]);
  });
});

describe("the frontend's reports", () => {
  it("go out one at a time, so a slow answer never lets an older report land last, and end with a farewell", async () => {
    const bodies: any[] = [];
    let inFlight = 0;
    let overlapped = false;
    const server = createServer((req, res) => {
      let text = "";
      req.on("data", (d) => (text += d));
      req.on("end", () => {
        bodies.push(JSON.parse(text));
        overlapped ||= ++inFlight > 1;
        // The first answer is slow: a report sent meanwhile would overtake it.
        setTimeout(() => (inFlight--, res.end("ok")), bodies.length === 1 ? 150 : 0);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      let applied = { daemon: "d", revision: 1 };
      const reporter = new ReplicaReporter({
        managementUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        frontendId: "fe", log: silent, replicas: () => [], applied: () => applied, intervalMs: 60_000,
      });
      reporter.reportNow();
      for (const revision of [2, 3, 4]) {
        await new Promise((r) => setTimeout(r, 10));
        applied = { daemon: "d", revision };
        reporter.reportNow();
      }
      for (let i = 0; i < 100 && bodies.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      await reporter.close();
      expect(overlapped).toBe(false);
      // Reports asked for while one was in flight coalesce into one that carries the newest revision.
      expect(bodies).toEqual([
        { frontend_id: "fe", replicas: [], applied: { daemon: "d", revision: 1 } },
        { frontend_id: "fe", replicas: [], applied: { daemon: "d", revision: 4 } },
        { frontend_id: "fe", replicas: [], leaving: true },
      ]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("waiting until every frontend applied a write", () => {
  const view = (daemon: string, revision: number, frontends: Record<string, number | null>): AppliedRevisions => ({
    daemon,
    revision,
    frontends: Object.entries(frontends).map(([frontend_id, r]) => ({ frontend_id, revision: r })),
  });

  /** A clock that moves only when the wait sleeps. */
  function fakeClock() {
    let now = 0;
    const sleeps: number[] = [];
    return { now: () => now, sleep: async (ms: number) => void (sleeps.push(ms), (now += ms)), sleeps };
  }

  it("returns once every frontend is at the written revision or past it", async () => {
    const clock = fakeClock();
    const answers = [view("d", 5, { a: 4, b: 5 }), view("d", 6, { a: 5, b: null }), view("d", 6, { a: 6, b: 5 })];
    let reads = 0;
    await waitUntilApplied({ daemon: "d", revision: 5 }, async () => answers[reads++]!, { timeoutMs: 1_000, ...clock });
    expect(reads).toBe(3);
    expect(clock.sleeps).toEqual([10, 20]); // polls back off
  });

  it("does not wait when no frontend is live", async () => {
    const clock = fakeClock();
    await waitUntilApplied({ daemon: "d", revision: 5 }, async () => view("d", 5, {}), { timeoutMs: 1_000, ...clock });
    expect(clock.sleeps).toEqual([]);
  });

  it("fails at the deadline naming the frontends that lag", async () => {
    const clock = fakeClock();
    const wait = waitUntilApplied({ daemon: "d", revision: 5 }, async () => view("d", 5, { a: 5, b: 3, c: null }), { timeoutMs: 1_000, ...clock });
    const error = await wait.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ClipperError);
    expect((error as ClipperError).message).toBe(
      "the change (revision 5) is recorded, but 2 query frontends have not applied it within 1000 ms: " +
        "b (at revision 3), c (no revision of this daemon)",
    );
    expect(clock.now()).toBe(1_000); // the last sleep stops at the deadline
  });

  it("after a daemon restart, waits for the new instance's current revision instead", () => {
    // The restarted daemon restored an older generation: revision 3 of d2 is not "behind" 5 of d1.
    expect(laggingFrontends({ daemon: "d1", revision: 5 }, view("d2", 3, { a: 3, b: 2 })).map((f) => f.frontend_id)).toEqual(["b"]);
    // Frontend a at revision 9 of the old instance reads as null and lags.
    expect(laggingFrontends({ daemon: "d1", revision: 5 }, view("d2", 3, { a: null })).map((f) => f.frontend_id)).toEqual(["a"]);
  });
});

describe("real frontends following a real daemon", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function daemon(stateDir: string, port = 0): Promise<ManagementServer> {
    const server = await startManagementServer({ host: "127.0.0.1", port, stateDir, logger: silent, replicaReportTtlMs: 60_000 });
    cleanups.push(() => server.close());
    return server;
  }

  async function frontend(managementUrl: string, frontendId: string): Promise<RunningFrontend> {
    const running = await startQueryFrontend({ host: "127.0.0.1", port: 0, rpcPort: 0, managementUrl, log: silent, rpcAuth: "none", frontendId });
    cleanups.push(() => running.close());
    return running;
  }

  it("names each write's revision in headers, keeps Clipper's body, and every frontend reports applying it", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "clipper-applied-"));
    cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
    let server = await daemon(stateDir);
    const fronts = [await frontend(server.url, "fe-a"), await frontend(server.url, "fe-b")];
    let admin = new AdminClient({ managementUrl: server.url });

    const written = await admin.postWrite("/admin/add_app", { name: "app", input_type: "doubles", default_output: "-1", latency_slo_micros: 100000 });
    expect(written.text).toBe("Successfully added application with name 'app'");
    expect(written.revision).toEqual({ daemon: expect.any(String), revision: 1 });
    await waitUntilApplied(written.revision!, () => admin.appliedRevisions(), { timeoutMs: 5_000 });
    // Applied means in force: each frontend's state has the application.
    for (const f of fronts) expect(Object.keys(f.state()?.applications ?? {})).toEqual(["app"]);
    expect((await admin.appliedRevisions()).frontends).toEqual([{ frontend_id: "fe-a", revision: 1 }, { frontend_id: "fe-b", revision: 1 }]);

    // A peer that lies about another frontend: the wait names it at the deadline.
    await admin.postText(REPORT_REPLICAS_PATH, { frontend_id: "ghost", replicas: [], applied: { daemon: written.revision!.daemon, revision: 0 } });
    await expect(waitUntilApplied(written.revision!, () => admin.appliedRevisions(), { timeoutMs: 100 })).rejects.toThrow(/ghost \(at revision 0\)/);
    await admin.postText(REPORT_REPLICAS_PATH, { frontend_id: "ghost", replicas: [], leaving: true });
    // A frontend that closes says so: it is not waited for.
    await fronts[1]!.close();
    expect((await admin.appliedRevisions()).frontends.map((f) => f.frontend_id)).toEqual(["fe-a"]);

    // A daemon restart: a new instance; the frontend reconnects and reports it, and writes wait again.
    const port = server.port;
    const before = written.revision!.daemon;
    await server.close();
    server = await daemon(stateDir, port);
    admin = new AdminClient({ managementUrl: server.url });
    // The new instance knows a frontend only once it reconnected and reported (docs/architecture.md).
    const reconnected = () => admin.appliedRevisions().then((v) => v.frontends.some((f) => f.frontend_id === "fe-a" && f.revision === v.revision));
    for (let i = 0; i < 200 && !(await reconnected()); i++) await new Promise((r) => setTimeout(r, 25));
    const next = await admin.postWrite("/admin/delete_app", { name: "app" });
    expect(next.revision!.daemon).not.toBe(before);
    await waitUntilApplied(next.revision!, () => admin.appliedRevisions(), { timeoutMs: 10_000 });
    expect(Object.keys(fronts[0]!.state()?.applications ?? {})).toEqual([]);
  });
});
