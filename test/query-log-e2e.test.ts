/**
 * The query log end to end on the local manager, through the real CLI: recording at 100% (a model
 * answer, a cache hit, a default because the model is slower than the SLO), feedback joined by
 * query id in the export, `--off` stopping it, the `--max-mb` bound holding under many queries, a
 * deleted application's log deleted with it, and bad input refused with a clear error.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { cliCluster, predictAt } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";

// Waits (ms) as long as its first input's first value: [1000] misses a 300 ms SLO.
const MODEL = join(fileURLToPath(new URL("./fixtures/node-models/", import.meta.url)), "async.mjs");
const MIB = 1024 * 1024;

describe("the query log through the CLI", { timeout: 120_000 }, () => {
  const { home, cli, ok, urls } = cliCluster("clipper-qlog-");
  const logDir = (app: string) => join(home, "clusters", "default", "state", "query-log", app);

  async function status(app: string): Promise<{ records: number; bytes: number; dropped: number; sample: number | null }> {
    const res = await fetch(`${urls.managementUrl}/admin/get_query_log`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ app_name: app }),
    });
    expect(res.status).toBe(200);
    return res.json() as never;
  }

  async function exported(app: string, name: string): Promise<any[]> {
    const file = join(home, `${name}.jsonl`);
    const done = await ok("query-log", app, "--export", file);
    const lines = readFileSync(file, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
    expect(done).toMatchObject({ queries: lines.length, file });
    return lines;
  }

  beforeAll(async () => {
    for (const app of ["qlog", "small"]) {
      await ok("register-app", app, "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "300");
    }
    await ok("deploy-model", "m", "--version", "1", "--input-type", "doubles", "--framework", "node", "--predict", `${MODEL}:predict`, "--link", "qlog");
    await ok("link", "small", "m");
  }, 120_000);

  it("is off by default, records answers, cache hits and defaults at 100%, and joins feedback by query id", async () => {
    expect(await ok("query-log", "qlog")).toEqual({ app_name: "qlog", sample: null, max_mb: null, bytes: 0, records: 0, dropped: 0 });
    const shown = await cli("query-log", "qlog");
    expect(shown.stdout).toMatch(/query log of 'qlog': off/);
    // A query before logging is on is not recorded.
    await predictAt(urls.queryUrl, "qlog", [0, 9]);

    const set = await ok("query-log", "qlog", "--sample", "1");
    expect(set).toMatchObject({ message: expect.stringContaining("sampling 100% of queries, at most 64 MiB"), sample: 1, max_mb: 64 });
    const answered = await predictAt(urls.queryUrl, "qlog", [1, 2]);
    const hit = await predictAt(urls.queryUrl, "qlog", [1, 2]);
    const res = await fetch(`${urls.queryUrl}/qlog/predict`, { method: "POST", body: JSON.stringify({ input: [2, 5], uid: "alice" }) });
    const withUid = await res.json() as { query_id: number };
    const slow = await predictAt(urls.queryUrl, "qlog", [1000]);
    expect(slow).toMatchObject({ default: true });
    expect(await ok("feedback", "qlog", "--uid", "alice", "--input", "[2, 5]", "--label", "7", "--query-id", String(withUid.query_id)))
      .toEqual({ feedback_accepted: true });
    // Clipper's body, without a query id, is still accepted (and names no logged query).
    expect(await ok("feedback", "qlog", "--uid", "alice", "--input", "[2, 5]", "--label", "8")).toEqual({ feedback_accepted: true });
    await waitFor(async () => (await status("qlog")).records >= 5, 15_000, "4 queries and 1 feedback in the log");

    const human = await cli("query-log", "qlog");
    expect(human.stdout).toMatch(/sampling 100% of queries, at most 64 MiB/);
    expect(human.stdout).toMatch(/held: 5 records/);
    const lines = await exported("qlog", "all");
    const byInput = (input: number[]) => lines.filter((l) => JSON.stringify(l.input) === JSON.stringify(input));
    expect(lines).toHaveLength(4);
    expect(byInput([0, 9])).toEqual([]);
    const [first, second] = byInput([1, 2]);
    expect(first).toMatchObject({
      type: "query", app: "qlog", query_id: answered.query_id, output: answered.output, default: false, cached: false,
      model: "m", model_version: "1", feedback: [],
    });
    expect(second).toMatchObject({ query_id: hit.query_id, output: answered.output, cached: true, model: "m", model_version: "1" });
    expect(byInput([2, 5])[0]).toMatchObject({ query_id: withUid.query_id, uid: "alice", feedback: [{ label: 7, uid: "alice" }] });
    expect(byInput([1000])[0]).toMatchObject({
      query_id: slow.query_id, default: true, output: -1, default_reason: "slo_missed", model: "m", model_version: "1",
      default_explanation: expect.stringContaining("latency SLO"),
    });
    for (const line of lines) {
      expect(line.latency_ms).toBeGreaterThanOrEqual(0);
      expect(Date.parse(line.time)).toBeGreaterThan(Date.now() - 120_000);
    }
    expect(byInput([1000])[0].latency_ms).toBeGreaterThanOrEqual(250);

    // --off stops recording; what was recorded stays.
    expect(await ok("query-log", "qlog", "--off")).toMatchObject({ sample: null, records: 5 });
    await predictAt(urls.queryUrl, "qlog", [3]);
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // two flush intervals
    expect((await status("qlog")).records).toBe(5);
    expect(await exported("qlog", "after-off")).toHaveLength(4);
  });

  it("keeps the log within --max-mb under many queries, and deletes it with its application", async () => {
    await ok("query-log", "small", "--sample", "1", "--max-mb", "1");
    // 30 requests of 20 inputs of 2000 values: ~80 KB of log per request, ~2.4 MB in all.
    const values = Array.from({ length: 2000 }, (_, i) => i % 10);
    for (let r = 0; r < 30; r++) {
      const body = { input_batch: Array.from({ length: 20 }, (_, i) => [0, r, i, ...values]) };
      const res = await fetch(`${urls.queryUrl}/small/predict`, { method: "POST", body: JSON.stringify(body) });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    // Delivered in order: once the last request's 20 records are in, every record is.
    const lastIn = async () => (await exported("small", "small")).filter((l) => l.input[1] === 29).length === 20;
    await waitFor(lastIn, 30_000, "the last request's records in the log");
    const held = await status("small");
    expect(held.bytes).toBeLessThanOrEqual(MIB);
    expect(held.bytes).toBeGreaterThan(MIB / 2);
    expect(held.records).toBeLessThan(600);
    expect(held.dropped).toBe(0);
    const lines = await exported("small", "small");
    expect(lines).toHaveLength(held.records);
    // The newest survive: the last request's inputs are there.
    expect(lines.some((l) => l.input[1] === 29)).toBe(true);
    expect(lines.some((l) => l.input[1] === 0)).toBe(false);

    expect(existsSync(logDir("small"))).toBe(true);
    await ok("unregister-app", "small");
    await waitFor(() => !existsSync(logDir("small")), 10_000, "the deleted application's log to go");
    // A new application of the same name starts with an empty log.
    await ok("register-app", "small", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "300");
    expect(await ok("query-log", "small")).toMatchObject({ sample: null, records: 0, bytes: 0 });
  });

  it("refuses bad settings, unknown applications and inherited names with clear errors", async () => {
    for (const sample of ["2", "-1", "NaN", "0", "abc"]) {
      const r = await cli("query-log", "qlog", "--sample", sample);
      expect(r.code, sample).toBe(2);
      expect(r.stderr, sample).toMatch(/--sample/);
    }
    const maxAlone = await cli("query-log", "qlog", "--max-mb", "4");
    expect(maxAlone.code).toBe(2);
    expect(maxAlone.stderr).toContain("--max-mb goes with --sample");
    const both = await cli("query-log", "qlog", "--off", "--sample", "0.5");
    expect(both.code).toBe(2);
    for (const app of ["nope", "__proto__", "constructor"]) {
      for (const args of [["--sample", "0.5"], [], ["--export", join(home, "x.jsonl")]]) {
        const r = await cli("query-log", app, ...args, "--json");
        expect(r.code, `${app} ${args.join(" ")}`).toBe(4);
        expect(JSON.parse(r.stdout)).toMatchObject({ code: "ADMIN_REJECTED", error: expect.stringContaining(`Application '${app}' does not exist`) });
      }
    }
    // The admin API itself answers 400 to what the CLI would not send.
    for (const body of [{ app_name: "qlog", sample: 2 }, { app_name: "qlog", sample: -1 }, { app_name: "qlog", sample: "NaN" }, { app_name: "qlog" },
      { app_name: "qlog", sample: 0.5, max_mb: 0 }, { app_name: "__proto__", sample: 0.5 }]) {
      const res = await fetch(`${urls.managementUrl}/admin/set_query_log`, {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
      });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    // The frontends' report: JSON lines only, each record one object on one line, for an app that logs.
    const report = (body: string, type = "application/x-ndjson") => fetch(`${urls.managementUrl}/admin/report_query_log`, {
      method: "POST", headers: { "content-type": type }, body,
    });
    expect((await report('{"frontend_id":"f","dropped":[]}\n', "application/json")).status).toBe(415);
    expect((await report('{"frontend_id":"f","dropped":[]}\n', "text/plain")).status).toBe(415);
    expect((await report('{"frontend_id":"f","app":"qlog","dropped":[]}\n{"a":1}\n{"b"\n')).status).toBe(400);
    expect((await report('{"frontend_id":"f","dropped":[]}\n{"a":1}\n')).status).toBe(400); // records without an app
    expect((await report('{"frontend_id":"f","app":"__proto__","dropped":[{"app":"constructor","count":5}]}\n{"a":1}\n')).status).toBe(200);
    const before = await status("qlog");
    expect((await report('{"frontend_id":"f","app":"qlog","dropped":[]}\n{"type":"query"}\n')).status).toBe(200);
    expect(await status("qlog")).toEqual(before); // qlog's log is off: nothing appended
    expect(existsSync(join(home, "clusters", "default", "state", "query-log", "__proto__"))).toBe(false);

    // Feedback with a query id that is not a whole number is refused by the frontend.
    const bad = await fetch(`${urls.queryUrl}/qlog/update`, {
      method: "POST", body: JSON.stringify({ uid: 1, input: [1], label: 1, query_id: -1 }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("query_id");
  });
});
