/**
 * The query log's export against clients that stop reading: the daemon (a real process on
 * 127.0.0.1) holds a log far larger than the sockets' buffers, written through its own ingest path
 * (report_query_log). A client that reads a little and then goes away must not leave the export
 * waiting for a drain that never comes (its stream, and the segment it holds in memory, would stay
 * for the daemon's life); meanwhile the daemon answers other requests promptly; and a slow but
 * steady reader still gets every record.
 */
import { readdirSync } from "node:fs";
import { request, type IncomingMessage } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXPORT_QUERY_LOG_PATH, REPORT_QUERY_LOG_PATH, type QueryRecord } from "../runtime/shared/query-log.js";
import { type Daemon, ensureDaemonBuilt, killHard, startDaemon } from "./support/management-daemon.js";
import { tempDirs } from "./support/temp-dirs.js";

const tempDir = tempDirs("clipper-qlog-export-");
const APP = "exported";
const REPORTS = 30;
const RECORDS_PER_REPORT = 800;
const RECORDS = REPORTS * RECORDS_PER_REPORT;
/** About 1 KiB of output per record: the log is ~24 MiB, several times what loopback sockets buffer. */
const PAD = "x".repeat(1000);

/** One request on its own connection (no keep-alive pool whose sockets would blur the descriptor count). */
function send(base: string, method: string, path: string, body?: string, type = "application/json"): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { method, agent: false, headers: body === undefined ? {} : { "content-type": type } }, resolve);
    req.on("error", reject);
    req.end(body);
  });
}

async function text(res: IncomingMessage): Promise<string> {
  let out = "";
  for await (const chunk of res) out += String(chunk);
  return out;
}

async function call(base: string, method: string, path: string, body?: unknown, type?: string): Promise<{ status: number; text: string }> {
  const res = await send(base, method, path, body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body), type);
  return { status: res.statusCode!, text: await text(res) };
}

function record(id: number): QueryRecord {
  return {
    type: "query", app: APP, query_id: id, frontend_id: "f", time: "2026-01-01T00:00:00.000Z", input: [id], output: PAD,
    default: false, cached: false, latency_ms: 1,
  };
}

const openDescriptors = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** The daemon's count of exports still being sent (its /metrics). */
async function exportsOpen(base: string): Promise<number> {
  const metrics = (await call(base, "GET", "/metrics")).text;
  const match = /^clipper_query_log_exports_open (\d+)$/m.exec(metrics);
  if (!match) throw new Error(`no clipper_query_log_exports_open in /metrics:\n${metrics.slice(0, 500)}`);
  return Number(match[1]);
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Reads the whole export, pausing `pauseMs` after every chunk; answers its records' ids. */
async function readExport(base: string, pauseMs: number): Promise<number[]> {
  const res = await send(base, "POST", EXPORT_QUERY_LOG_PATH, JSON.stringify({ app_name: APP }));
  expect(res.statusCode).toBe(200);
  let rest = "";
  const ids: number[] = [];
  for await (const chunk of res) {
    const lines = (rest + String(chunk)).split("\n");
    rest = lines.pop()!;
    for (const line of lines) ids.push((JSON.parse(line) as QueryRecord).query_id);
    if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
  expect(rest).toBe("");
  return ids;
}

describe("the query log export with a client that stops reading", () => {
  let daemon: Daemon;
  let base: string;
  let pid: number;

  beforeAll(async () => {
    ensureDaemonBuilt();
    daemon = await startDaemon(["--state-dir", await tempDir(), "--host", "127.0.0.1", "--port", "0"]);
    base = daemon.url;
    pid = daemon.child.pid!;
    expect((await call(base, "POST", "/admin/add_app", { name: APP, input_type: "doubles", default_output: "-1", latency_slo_micros: 100_000 })).status).toBe(200);
    expect((await call(base, "POST", "/admin/set_query_log", { app_name: APP, sample: 1, max_mb: 64 })).status).toBe(200);
    for (let r = 0; r < REPORTS; r++) {
      const lines = Array.from({ length: RECORDS_PER_REPORT }, (_, i) => JSON.stringify(record(r * RECORDS_PER_REPORT + i)) + "\n");
      const body = JSON.stringify({ frontend_id: "f", app: APP, dropped: [] }) + "\n" + lines.join("");
      const answer = await call(base, "POST", REPORT_QUERY_LOG_PATH, body, "application/x-ndjson");
      expect(answer, answer.text).toMatchObject({ status: 200, text: `Recorded ${RECORDS_PER_REPORT} query log records` });
    }
  }, 60_000);

  afterAll(async () => {
    if (daemon) await killHard(daemon.child);
  });

  it("ends the export of a client that went away, answering others meanwhile, and leaks no stream or descriptor", async () => {
    expect(await exportsOpen(base)).toBe(0);
    const descriptors = openDescriptors(pid);
    for (let round = 0; round < 3; round++) {
      const res = await send(base, "POST", EXPORT_QUERY_LOG_PATH, JSON.stringify({ app_name: APP }));
      expect(res.statusCode).toBe(200);
      // Read a little, then stop: the daemon fills the socket's buffers and waits.
      const first = await new Promise<Buffer>((resolve) => res.once("data", resolve));
      res.pause();
      expect(String(first)).toMatch(/^\{"type":"query"/);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await exportsOpen(base)).toBe(1);
      const started = performance.now();
      expect(await call(base, "GET", "/admin/ping")).toEqual({ status: 200, text: "PONG" });
      expect(performance.now() - started).toBeLessThan(1_000);
      res.destroy();
      // Without the wait on "close" the export waits for a "drain" forever and this stays at 1.
      await until("the export has ended", async () => (await exportsOpen(base)) === 0);
      await until(`the daemon's descriptors are back to ${descriptors}`, async () => openDescriptors(pid) <= descriptors);
    }
    // A second full export works after the abandoned ones.
    const ids = await readExport(base, 0);
    expect(ids).toHaveLength(RECORDS);
    expect(await exportsOpen(base)).toBe(0);
  }, 60_000);

  it("sends a slow but steady reader the whole log, in order", async () => {
    const open = await exportsOpen(base);
    const ids = await readExport(base, 5);
    expect(ids).toEqual(Array.from({ length: RECORDS }, (_, i) => i));
    await until("the export has ended", async () => (await exportsOpen(base)) === open);
  }, 60_000);
});
