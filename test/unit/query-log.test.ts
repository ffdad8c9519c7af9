/**
 * The query log's parts with no server: the frontend's sampling and bounded buffer (injected draws
 * and clock), the daemon's setting validation, and the store's rotation within its bound, its
 * reader that survives a torn last line, and the export's join of feedback to its query.
 */
import { appendFile, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { QueryLogRecorder, type RecordChunk } from "../../runtime/frontend/query-log-recorder.js";
import { setQueryLog } from "../../runtime/management/query-log-operations.js";
import { pieces, QueryLogStore, REPEATED_REPORT, segmentBytes, segmentsToDrop, wholeLines } from "../../runtime/management/query-log-store.js";
import { ReportLedger } from "../../runtime/management/report-ledger.js";
import { AdminError } from "../../runtime/management/errors.js";
import { dict } from "../../runtime/shared/dict.js";
import {
  type ExportedQuery, MAX_JSON_DEPTH, MAX_LINE_BYTES, MAX_RECORDS_PER_REPORT, nestsWithin, type QueryLogLine, QueryLogLineSchema,
  QueryLogReportHeaderSchema, type QueryRecord, REPORT_ID_LINE_PREFIX, reportRecords,
} from "../../runtime/shared/query-log.js";
import { stateViolations } from "../../runtime/shared/state-invariants.js";
import type { ClusterState } from "../../runtime/shared/state.js";
import { appRecord, consistent } from "../support/state-fixtures.js";
import { tempDirs } from "../support/temp-dirs.js";
import { stateAfter } from "../support/write-outcome.js";

const tempDir = tempDirs("clipper-qlog-");
const MIB = 1024 * 1024;

function stateLogging(samples: Record<string, number>): ClusterState {
  const state = consistent();
  state.query_log = dict(Object.entries(samples).map(([app, sample]): [string, { sample: number; max_mb: number }] => [app, { sample, max_mb: 1 }]));
  return state;
}

const output = (text: string) => ({ kind: "output" as const, output: text, model: { name: "m", version: "1" } });

function answered(recorder: QueryLogRecorder, app: string, queryId: number, input: unknown = [1]) {
  recorder.query({ app, queryId, input, answer: output("0.5"), defaultOutput: "-1", latencyMs: 2, uid: "u" });
}

/** The lines of a chunk `take` hands over: whole lines, each ending "\n", as many as it says. */
function chunkLines(chunk: RecordChunk): string[] {
  const text = chunk.bytes.toString();
  expect(text.endsWith("\n")).toBe(true);
  const lines = text.slice(0, -1).split("\n");
  expect(lines).toHaveLength(chunk.records);
  return lines;
}

/** What `take` hands over, chunk by chunk, as the records the daemon will store (each checked against the schema). */
function taken(recorder: QueryLogRecorder, chunks = Infinity): QueryLogLine[] {
  const records: QueryLogLine[] = [];
  for (let chunk = recorder.take(); chunk; chunk = --chunks > 0 ? recorder.take() : undefined) {
    for (const line of chunkLines(chunk)) {
      const record = QueryLogLineSchema.parse(JSON.parse(line));
      expect(record.app).toBe(chunk.app);
      records.push(record);
    }
  }
  return records;
}

describe("QueryLogRecorder", () => {
  it("records nothing for an application that does not log, and a draw below the sample for one that does", () => {
    const draws = [0.2, 0.05, 0.7, 0.01];
    const recorder = new QueryLogRecorder({ frontendId: "f", random: () => draws.shift()!, now: () => 0 });
    recorder.configure(stateLogging({ a: 0.1 }));
    answered(recorder, "b", 0);
    for (let id = 1; id <= 4; id++) answered(recorder, "a", id);
    expect(taken(recorder).map((r) => r.query_id)).toEqual([2, 4]);
    expect(draws).toEqual([]); // the app that does not log drew nothing
  });

  it("takes a delta's applications only: others keep their settings, a removed one stops logging", () => {
    const recorder = new QueryLogRecorder({ frontendId: "f", random: () => 0, now: () => 0 });
    recorder.configure(stateLogging({ a: 1, b: 1 }));
    const next = stateLogging({ a: 1, c: 1 }); // b removed, c added: the delta names b and c
    recorder.configureApps(next, ["b", "c"]);
    expect([recorder.logs("a"), recorder.logs("b"), recorder.logs("c")]).toEqual([true, false, true]);
  });

  it("records every query at sample 1 without drawing, as the log stores them", () => {
    const recorder = new QueryLogRecorder({ frontendId: "f#w1", random: () => { throw new Error("drew"); }, now: () => Date.UTC(2026, 0, 1) });
    recorder.configure(stateLogging({ a: 1, "constructor": 1 }));
    answered(recorder, "a", 7, { x: [1, 2] });
    recorder.query({
      app: "a", queryId: 8, input: [3], defaultOutput: "\"none\"", latencyMs: 100,
      answer: { kind: "default", reason: "slo_missed", explanation: "too slow", model: { name: "m", version: "2" } },
    });
    recorder.query({ app: "constructor", queryId: 9, input: "s\n\"", defaultOutput: "-1", latencyMs: 1.23456789, answer: { kind: "output", output: "not json", cached: true } });
    recorder.feedback("a", 7, { x: [1, 2] }, 1, "u");
    // Grouped by application, each in order.
    const [query, slow, feedback, odd] = taken(recorder);
    expect(query).toEqual({
      type: "query", app: "a", query_id: 7, frontend_id: "f#w1", time: "2026-01-01T00:00:00.000Z", input: { x: [1, 2] },
      output: 0.5, default: false, model: "m", model_version: "1", cached: false, latency_ms: 2, uid: "u",
    });
    expect(slow).toMatchObject({ default: true, output: "none", default_reason: "slo_missed", default_explanation: "too slow", model_version: "2" });
    expect(odd).toEqual({
      type: "query", app: "constructor", query_id: 9, frontend_id: "f#w1", time: "2026-01-01T00:00:00.000Z", input: "s\n\"",
      output: "not json", default: false, cached: true, latency_ms: 1.235, // to the microsecond
    });
    expect(feedback).toEqual({
      type: "feedback", app: "a", query_id: 7, frontend_id: "f#w1", time: "2026-01-01T00:00:00.000Z", input: { x: [1, 2] }, label: 1, uid: "u",
    });
  });

  it("drops records beyond its bounds and counts them per application; a chunk holds one application's records, oldest first", () => {
    const recorder = new QueryLogRecorder({ frontendId: "f", maxRecords: 3, chunkRecords: 2 });
    recorder.configure(stateLogging({ a: 1, b: 1 }));
    for (let id = 0; id < 5; id++) answered(recorder, id < 4 ? "a" : "b", id);
    expect(recorder.size).toBe(3);
    expect(recorder.takeDropped()).toEqual(new Map([["a", new Map([["buffer_full", 1]])], ["b", new Map([["buffer_full", 1]])]]));
    expect(recorder.takeDropped().size).toBe(0);
    expect(taken(recorder, 1).map((r) => r.query_id)).toEqual([0, 1]);
    expect(recorder.size).toBe(1);
    answered(recorder, "b", 9);
    answered(recorder, "a", 10); // joins a's chunk, which holds one record
    expect(taken(recorder).map((r) => [r.app, r.query_id])).toEqual([["a", 2], ["a", 10], ["b", 9]]);
    expect(recorder.take()).toBeUndefined();
    answered(recorder, "a", 11);
    recorder.lost(recorder.take()!);
    expect(recorder.takeDropped()).toEqual(new Map([["a", new Map([["undelivered", 1]])]]));
    expect(recorder.size).toBe(0);
  });

  it("writes UTF-8 into chunks of about a report's bytes, a longer record in a chunk of its own", () => {
    const recorder = new QueryLogRecorder({ frontendId: "f", chunkBytes: 1000 });
    recorder.configure(stateLogging({ a: 1 }));
    const inputs = ["é".repeat(50), "\u{1F600}\u2028\"".repeat(20), "x".repeat(2000), "\n"];
    for (let id = 0; id < 20; id++) answered(recorder, "a", id, inputs[id % inputs.length]);
    const chunks: RecordChunk[] = [];
    for (let chunk = recorder.take(); chunk; chunk = recorder.take()) chunks.push(chunk);
    const records = chunks.flatMap((chunk) => chunkLines(chunk).map((line) => QueryLogLineSchema.parse(JSON.parse(line))));
    expect(records.map((r) => r.input)).toEqual(Array.from({ length: 20 }, (_, id) => inputs[id % inputs.length]));
    for (const chunk of chunks) expect(chunk.bytes.length <= 1000 || chunk.records === 1).toBe(true);
    expect(chunks.filter((c) => c.bytes.length > 1000)).toHaveLength(5); // the 2000-character inputs
    expect(chunks.length).toBeGreaterThan(5);
  });

  it("reuses a delivered chunk's storage for new records, once, and only storage of a report's size", () => {
    const recorder = new QueryLogRecorder({ frontendId: "f", chunkBytes: 4096, chunkRecords: 3 });
    recorder.configure(stateLogging({ a: 1 }));
    for (let id = 0; id < 6; id++) answered(recorder, "a", id);
    const first = recorder.take()!;
    const second = recorder.take()!;
    expect(second.storage.length).toBe(4096);
    recorder.recycle(second);
    recorder.recycle(second); // a second hand-back of the same storage is ignored
    const small = new QueryLogRecorder({ frontendId: "f", chunkBytes: 8192 });
    small.configure(stateLogging({ a: 1 }));
    answered(small, "a", 0);
    recorder.recycle({ ...small.take()!, app: "a" }); // storage of another size is not kept
    for (let id = 10; id < 16; id++) answered(recorder, "a", id);
    const reused = recorder.take()!;
    expect(reused.storage).toBe(second.storage);
    expect(chunkLines(reused).map((line) => QueryLogLineSchema.parse(JSON.parse(line)).query_id)).toEqual([10, 11, 12]);
    const fresh = recorder.take()!;
    expect(fresh.storage).not.toBe(second.storage);
    expect(chunkLines(fresh).map((line) => QueryLogLineSchema.parse(JSON.parse(line)).query_id)).toEqual([13, 14, 15]);
    expect(chunkLines(first)).toHaveLength(3);
  });

  it("bounds the buffer's bytes too, refuses a record over the daemon's line bound, and stops recording when the setting goes", () => {
    const recorder = new QueryLogRecorder({ frontendId: "f", maxBytes: 1000 });
    recorder.configure(stateLogging({ a: 1 }));
    for (let id = 0; id < 10; id++) answered(recorder, "a", id, "x".repeat(300));
    const kept = recorder.size;
    expect(kept).toBeLessThan(10);
    expect(kept).toBeGreaterThan(0);
    taken(recorder);
    answered(recorder, "a", 10, "x".repeat(MAX_LINE_BYTES));
    // Under the bound in characters, over it in UTF-8 bytes (the daemon counts bytes).
    answered(recorder, "a", 11, "é".repeat(MAX_LINE_BYTES / 2));
    expect(recorder.size).toBe(0);
    expect(recorder.takeDropped().get("a")).toEqual(new Map([["buffer_full", 10 - kept], ["too_large", 2]]));
    recorder.configure(consistent());
    answered(recorder, "a", 99);
    recorder.feedback("a", 99, [1], 1, undefined);
    expect(recorder.size).toBe(0);
  });
});

describe("a frontend's report", () => {
  const records = (lines: string) => {
    const body = Buffer.from(`{"frontend_id":"f"}\n${lines}`);
    return reportRecords(body, body.indexOf(0x0a) + 1);
  };

  it("carries records as single-line JSON objects, bounded in number and size", () => {
    expect(records("")).toBe(0);
    expect(records('{"type":"query"}\n{}\n')).toBe(2);
    expect(records('{"a":1}')).toMatch(/does not end with a newline/);
    expect(records('{"a":"x\r"}\n')).toMatch(/carriage return/);
    expect(records("[1]\n")).toMatch(/record 1 is not one JSON object/);
    expect(records('{"a":1}\n\n')).toMatch(/record 2 is not/);
    expect(records('{"a":1\n')).toMatch(/not one JSON object/);
    expect(records(`{"a":"${"x".repeat(MAX_LINE_BYTES)}"}\n`)).toMatch(/longer than/);
    expect(records(`{"a":"${"é".repeat(MAX_LINE_BYTES / 2)}"}\n`)).toMatch(/record 1 is longer than/);
    expect(records("{}\n".repeat(MAX_RECORDS_PER_REPORT))).toBe(MAX_RECORDS_PER_REPORT);
    expect(records("{}\n".repeat(MAX_RECORDS_PER_REPORT + 1))).toMatch(/at most/);
    // The daemon's report id lines cannot be forged.
    expect(records(`{}\n${REPORT_ID_LINE_PREFIX}{"session":"forged-session","seq":9}}\n`)).toMatch(/record 2 starts as the daemon's report id lines do/);
    expect(records('{"query_log":1}\n')).toBe(1);
  });

  it("has a header that names the frontend, the records' application and drop counts", () => {
    expect(QueryLogReportHeaderSchema.safeParse({ frontend_id: "f", app: "a", dropped: [{ app: "a", count: 3 }] }).success).toBe(true);
    expect(QueryLogReportHeaderSchema.safeParse({ frontend_id: "f", app: "", dropped: [] }).success).toBe(false);
    expect(QueryLogReportHeaderSchema.safeParse({ frontend_id: "f", dropped: [{ app: "a", count: -1 }] }).success).toBe(false);
  });

  it("may carry an id: a session of 8 to 64 letters, digits or '-', and a sequence from 1", () => {
    const header = (report_id: unknown) => QueryLogReportHeaderSchema.safeParse({ frontend_id: "f", report_id, dropped: [] }).success;
    expect(header({ session: "0b8e6f3c-2f0a-4f43-9d55-4b1c3c1f0e2a", seq: 1 })).toBe(true);
    expect(header(undefined)).toBe(true);
    for (const bad of [{ session: "short", seq: 1 }, { session: "a/b\"cdefgh", seq: 1 }, { session: "x".repeat(65), seq: 1 },
      { session: "abcdefgh", seq: 0 }, { session: "abcdefgh", seq: 1.5 }, { session: "abcdefgh" }, "abcdefgh:1"]) {
      expect(header(bad), JSON.stringify(bad)).toBe(false);
    }
  });
});

describe("the report ledger", () => {
  it("takes each session's reports once, in order, and forgets the least recently heard from sessions beyond its bound", () => {
    const ledger = new ReportLedger(2);
    expect(ledger.take({ session: "s1", seq: 1 })).toBe(true);
    expect(ledger.take({ session: "s1", seq: 1 })).toBe(false);
    expect(ledger.take({ session: "s2", seq: 1 })).toBe(true);
    expect(ledger.take({ session: "s1", seq: 3 })).toBe(true);
    // Below the last taken: sent again (reports go one at a time, each numbered after the last).
    expect(ledger.isRepeat({ session: "s1", seq: 2 })).toBe(true);
    // An id found on disk never lowers what was taken.
    ledger.taken({ session: "s1", seq: 2 });
    expect(ledger.isRepeat({ session: "s1", seq: 3 })).toBe(true);
    expect(ledger.take({ session: "s3", seq: 1 })).toBe(true); // s2 was heard from least recently
    expect(ledger.isRepeat({ session: "s2", seq: 1 })).toBe(false);
    expect(ledger.isRepeat({ session: "s1", seq: 3 })).toBe(true);
  });

});

describe("set_query_log", () => {
  const state = () => { const s = consistent(); s.applications["constructor"] = appRecord("constructor"); return s; };
  const refused = (body: unknown) => {
    try {
      setQueryLog(state(), JSON.stringify(body));
    } catch (err) {
      expect(err).toBeInstanceOf(AdminError);
      expect((err as AdminError).status).toBe(400);
      return (err as Error).message;
    }
    throw new Error("not refused");
  };

  it("refuses bad samples and bounds, unknown and inherited names, and settings with off", () => {
    expect(refused({ app_name: "a", sample: 2 })).toMatch(/sample must be a number above 0 and at most 1, got 2/);
    expect(refused({ app_name: "a", sample: -1 })).toMatch(/above 0/);
    expect(refused({ app_name: "a", sample: 0 })).toMatch(/above 0/);
    expect(refused({ app_name: "a", sample: "NaN" })).toMatch(/sample/);
    expect(refused({ app_name: "a" })).toMatch(/sample is required/);
    expect(refused({ app_name: "a", sample: 0.5, max_mb: 0 })).toMatch(/max_mb must be a whole number/);
    expect(refused({ app_name: "a", sample: 0.5, max_mb: 1.5 })).toMatch(/max_mb/);
    expect(refused({ app_name: "nope", sample: 0.5 })).toMatch(/Application 'nope' does not exist/);
    expect(refused({ app_name: "__proto__", sample: 0.5 })).toMatch(/'__proto__' does not exist/);
    expect(refused({ app_name: "toString", sample: 0.5 })).toMatch(/does not exist/);
    expect(refused({ app_name: "a", off: true, sample: 0.5 })).toMatch(/takes no settings/);
  });

  it("sets, keeps the bound when only the sample changes, and switches off", () => {
    let s = state();
    const apply = (body: unknown) => {
      const outcome = setQueryLog(s, JSON.stringify(body));
      const next = stateAfter(s, outcome);
      if (next) s = next;
      return { ...outcome, next };
    };
    expect(apply({ app_name: "constructor", sample: 0.01, max_mb: 8 }).text).toMatch(/sampling 1% of queries, at most 8 MiB/);
    expect(Object.getPrototypeOf(s.query_log)).toBe(null);
    expect(apply({ app_name: "constructor", sample: 1 }).next?.query_log?.constructor).toEqual({ sample: 1, max_mb: 8 });
    expect(apply({ app_name: "constructor", sample: 1 }).next).toBeUndefined();
    expect(stateViolations(s)).toEqual([]);
    expect(apply({ app_name: "constructor", off: true }).next?.query_log ?? {}).toEqual({});
    expect(apply({ app_name: "constructor", off: true }).text).toMatch(/already off/);
  });

  it("is an invariant that a logged application exists", () => {
    const s = stateLogging({ gone: 1 });
    expect(stateViolations(s).map((v) => v.path.join("."))).toEqual(["query_log.gone"]);
  });
});

describe("query log files", () => {
  const query = (id: number, input: unknown = [id], time = "2026-01-01T00:00:00.000Z", pad = ""): QueryRecord => ({
    type: "query", app: "a", query_id: id, frontend_id: "f", time, input, output: pad || 1, default: false, cached: false, latency_ms: 1,
  });
  const line = (r: QueryLogLine) => JSON.stringify(r);
  /** Appends whole lines as a frontend's report carries them. */
  const appendLines = (store: QueryLogStore, app: string, lines: string[], maxBytes: () => number | undefined) =>
    store.append(app, Buffer.from(lines.map((l) => `${l}\n`).join("")), lines.length, maxBytes);
  const exported = async (store: QueryLogStore, app = "a") => {
    const out: ExportedQuery[] = [];
    for await (const q of store.exportQueries(app)) out.push(q);
    return out;
  };

  it("splits lines whole, and says when the last one is torn", () => {
    expect(wholeLines("")).toEqual({ lines: [], torn: false });
    expect(wholeLines("{}\n{}\n")).toEqual({ lines: ["{}", "{}"], torn: false });
    expect(wholeLines("{}\n{\"a")).toEqual({ lines: ["{}"], torn: true });
    expect(wholeLines("{\"a")).toEqual({ lines: [], torn: true });
  });

  it("splits an append into pieces of whole lines that fit a segment, leaving out a line that never fits", () => {
    const split = (text: string, limit: number) => [...pieces(Buffer.from(text), limit)].map((p) => [p.bytes.toString(), p.records]);
    expect(split("aaa\nbb\nc\n", 4)).toEqual([["aaa\n", 1], ["bb\n", 1], ["c\n", 1]]);
    expect(split("aa\nb\ncccccc\nd\ne\n", 5)).toEqual([["aa\nb\n", 2], ["d\ne\n", 2]]);
    expect(split("cccccc\n", 5)).toEqual([]);
    expect(split("a\nb\n", 100)).toEqual([["a\nb\n", 2]]);
  });

  it("drops the oldest segments, never the newest, to stay within the bound", () => {
    expect(segmentsToDrop([10, 10, 10], 15, 40)).toBe(1);
    expect(segmentsToDrop([10, 10, 10], 10, 40)).toBe(0);
    expect(segmentsToDrop([10, 10, 10], 5, 100)).toBe(0);
    expect(segmentsToDrop([10, 10, 0], 50, 40)).toBe(2);
    expect(segmentBytes(8 * MIB)).toBe(MIB);
  });

  it("keeps many appends under max bytes, oldest records first to go", async () => {
    const root = await tempDir();
    const store = new QueryLogStore(root);
    const maxBytes = 64 * 1024;
    const pad = "x".repeat(200);
    // Batches of 10 records (each within a segment of 8 KiB), and of 40 (split across segments).
    for (let batch = 0; batch < 40; batch++) {
      const size = batch % 4 === 3 ? 40 : 10;
      await appendLines(store, "a", Array.from({ length: size }, (_, i) => line(query(batch * 40 + i, [0], undefined, pad))), () => maxBytes);
    }
    const size = await store.size("a");
    expect(size.bytes).toBeLessThanOrEqual(maxBytes);
    expect(size.bytes).toBeGreaterThan(maxBytes / 2);
    const files = await readdir(join(root, "a"));
    let onDisk = 0;
    for (const f of files) onDisk += (await readFile(join(root, "a", f))).length;
    expect(onDisk).toBe(size.bytes);
    const ids = (await exported(store)).map((q) => q.query_id);
    expect(ids.length).toBe(size.records);
    expect(ids.at(-1)).toBe(39 * 40 + 39);
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    // A fresh store (a restarted daemon) counts the same from the files.
    expect(await new QueryLogStore(root).size("a")).toEqual(size);
  });

  it("survives a torn last line: readable, and the next append starts a fresh segment", async () => {
    const root = await tempDir();
    await appendLines(new QueryLogStore(root), "a", [line(query(1)), line(query(2))], () => MIB);
    const [segment] = await readdir(join(root, "a"));
    await appendFile(join(root, "a", segment!), "{\"type\":\"query\",\"app\":\"a\",\"qu"); // a kill mid-write
    const store = new QueryLogStore(root);
    expect(await store.size("a")).toMatchObject({ records: 2 });
    await appendLines(store, "a", [line(query(3))], () => MIB);
    expect((await exported(store)).map((q) => q.query_id)).toEqual([1, 2, 3]);
    expect((await readdir(join(root, "a"))).length).toBe(2);
    // A line that is garbage in the middle of a file is skipped too.
    await writeFile(join(root, "a", segment!), `${line(query(1))}\nnot json\n{"type":"query"}\n${line(query(2))}\n`);
    expect((await exported(new QueryLogStore(root))).map((q) => q.query_id)).toEqual([1, 2, 3]);
    // A record that names another application than its log's is not this log's.
    await appendLines(store, "a", [line({ ...query(4), app: "b" })], () => MIB);
    expect((await exported(store)).map((q) => q.query_id)).toEqual([1, 2, 3]);
  });

  it("skips lines a lying frontend framed as records: nested too deep to write out again, or not records at all", async () => {
    const store = new QueryLogStore(await tempDir());
    const deep = (depth: number) => "[".repeat(depth) + "]".repeat(depth);
    const record = (id: number, input: string) => line(query(id)).replace(`"input":[${id}]`, `"input":${input}`);
    await appendLines(store, "a", [
      line(query(1)), record(2, deep(10_000)), `{"type":"feedback","app":"a","query_id":1,"frontend_id":"f","time":"t","input":${deep(10_000)},"label":1}`,
      record(3, deep(MAX_JSON_DEPTH)), '{"type":"query","app":"a"}', "{not json}", `{"a":"${"\u2028"}"}`, line(query(4)),
    ], () => MIB);
    const out = await exported(store);
    expect(out.map((q) => q.query_id)).toEqual([1, 3, 4]);
    expect(() => JSON.stringify(out)).not.toThrow();
    expect(nestsWithin(JSON.parse(deep(MAX_JSON_DEPTH)))).toBe(true);
    expect(nestsWithin(JSON.parse(deep(MAX_JSON_DEPTH + 1)))).toBe(false);
    expect(nestsWithin({ a: [{ b: 1 }] }, 3)).toBe(true);
    expect(nestsWithin({ a: [{ b: [] }] }, 3)).toBe(false);
  });

  it("joins feedback to the latest query before it with the same id and input", async () => {
    const store = new QueryLogStore(await tempDir());
    const feedback = (id: number, input: unknown, label: number) =>
      line({ type: "feedback", app: "a", query_id: id, frontend_id: "g", time: "2026-01-01T00:00:01.000Z", input, label });
    await appendLines(store, "a", [
      line(query(5, [1])), line(query(5, [2])), // two frontends' query 5, told apart by the input
      feedback(5, [2], 10),
      line(query(5, [2])), // a restarted frontend numbering again
      feedback(5, [2], 20), feedback(5, [1], 30), feedback(6, [1], 40), // the last names no logged query
    ], () => MIB);
    const out = await exported(store);
    expect(out.map((q) => q.feedback.map((f) => f.label))).toEqual([[30], [10], [20]]);
  });

  it("stores a report sent again once, also after a restart, by the id written after its records", async () => {
    const root = await tempDir();
    const id = { session: "0b8e6f3c-2f0a", seq: 7 };
    const report = Buffer.from(`${line(query(1))}\n${line(query(2))}\n`);
    const store = new QueryLogStore(root);
    expect(await store.append("a", report, 2, () => MIB, id)).toBe(2);
    expect(await store.append("a", report, 2, () => MIB, id)).toBe(REPEATED_REPORT);
    // The daemon restarted: the id comes back from the segment.
    const restarted = new QueryLogStore(root);
    expect(await restarted.append("a", report, 2, () => MIB, id)).toBe(REPEATED_REPORT);
    expect(await restarted.append("a", report, 2, () => MIB, { ...id, seq: 6 })).toBe(REPEATED_REPORT);
    expect(await restarted.size("a")).toMatchObject({ records: 2 });
    expect((await exported(restarted)).map((q) => q.query_id)).toEqual([1, 2]);
    // The id follows its records, in the log's bytes (a crash mid-write cannot keep the id without them).
    const [segment] = await readdir(join(root, "a"));
    expect(await readFile(join(root, "a", segment!), "utf8")).toBe(`${report.toString()}${REPORT_ID_LINE_PREFIX}{"session":"0b8e6f3c-2f0a","seq":7}}\n`);
    // The next report of the session, another session's, and one without an id are stored.
    expect(await restarted.append("a", Buffer.from(`${line(query(3))}\n`), 1, () => MIB, { ...id, seq: 8 })).toBe(1);
    expect(await restarted.append("a", Buffer.from(`${line(query(4))}\n`), 1, () => MIB, { session: "another-session", seq: 1 })).toBe(1);
    expect(await restarted.append("a", Buffer.from(`${line(query(5))}\n`), 1, () => MIB)).toBe(1);
    expect(await restarted.append("a", Buffer.from(`${line(query(5))}\n`), 1, () => MIB)).toBe(1);
    expect((await exported(restarted)).map((q) => q.query_id)).toEqual([1, 2, 3, 4, 5, 5]);
    expect(await new QueryLogStore(root).size("a")).toEqual(await restarted.size("a"));
    // A report whose application stopped logging is taken too, in memory.
    expect(await restarted.append("a", report, 2, () => undefined, { ...id, seq: 9 })).toBe(0);
    expect(await restarted.append("a", report, 2, () => MIB, { ...id, seq: 9 })).toBe(REPEATED_REPORT);
  });

  it("writes a report larger than a segment in pieces, its id after the last", async () => {
    const root = await tempDir();
    const store = new QueryLogStore(root);
    const maxBytes = 8 * 4096;
    const lines = Array.from({ length: 12 }, (_, i) => line(query(i, [0], undefined, "x".repeat(900))));
    const id = { session: "big-report", seq: 1 };
    expect(await appendLines(store, "a", lines, () => maxBytes)).toBe(12);
    expect(await store.append("a", Buffer.from(lines.map((l) => `${l}\n`).join("")), 12, () => maxBytes, id)).toBe(12);
    const files = (await readdir(join(root, "a"))).sort();
    const texts = await Promise.all(files.map((f) => readFile(join(root, "a", f), "utf8")));
    expect(texts.filter((t) => t.includes(REPORT_ID_LINE_PREFIX))).toHaveLength(1);
    expect(texts.at(-1)!.endsWith(`${REPORT_ID_LINE_PREFIX}{"session":"big-report","seq":1}}\n`)).toBe(true);
    for (const text of texts) expect(text.length).toBeLessThanOrEqual(segmentBytes(maxBytes));
    expect(await new QueryLogStore(root).append("a", Buffer.from(`${lines[0]}\n`), 1, () => maxBytes, id)).toBe(REPEATED_REPORT);
  });

  it("removes an application's log, and only applications' directories of valid names", async () => {
    const root = await tempDir();
    const store = new QueryLogStore(root);
    await appendLines(store, "a", [line(query(1))], () => MIB);
    await appendLines(store, "b", [line(query(1))], () => MIB);
    await store.removeAllBut(new Set(["b"]));
    expect(await readdir(root)).toEqual(["b"]);
    await store.remove("b");
    expect(await readdir(root)).toEqual([]);
    expect(await store.size("b")).toEqual({ bytes: 0, records: 0 });
    expect(() => store.append("../x", Buffer.from(`${line(query(1))}\n`), 1, () => MIB)).not.toThrow();
    await expect(appendLines(store, "../x", [line(query(1))], () => MIB)).rejects.toThrow(/invalid name/);
    await expect(store.size("__proto__")).rejects.toThrow(/invalid name/);
    // An append whose turn comes after logging stopped writes nothing.
    expect(await appendLines(store, "c", [line(query(1))], () => undefined)).toBe(0);
    expect(await readdir(root)).toEqual([]);
  });
});
