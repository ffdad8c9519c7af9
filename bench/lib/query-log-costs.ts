/**
 * What one query-log record costs each side, measured in-process in CPU time (process.cpuUsage, so
 * that the other work on a shared machine shows less than it does in throughput): the frontend
 * making a record and sending its report's bytes, and each check the daemon could make on a
 * report's records — the framing it makes, and the per-record parse and schema check it leaves to
 * the reader (shared/query-log.ts says why).
 */
import { isUtf8 } from "node:buffer";
import { QueryLogRecorder } from "../../runtime/frontend/query-log-recorder.js";
import { dict } from "../../runtime/shared/dict.js";
import { QueryLogLineSchema, reportRecords } from "../../runtime/shared/query-log.js";
import { emptyState } from "../../runtime/shared/state.js";

export interface RecordCost {
  step: string;
  /** CPU µs per record, the median of the repetitions. */
  us: number;
}

/** CPU µs (user + system) that `work` takes per record, the median over `repeats` runs. */
function cpuPerRecord(records: number, repeats: number, work: () => void): number {
  const runs: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const before = process.cpuUsage();
    work();
    const used = process.cpuUsage(before);
    runs.push((used.user + used.system) / records);
  }
  runs.sort((a, b) => a - b);
  return runs[Math.floor(runs.length / 2)]!;
}

/** The bench's cache-hit record: eight doubles in, the no-op model's output out, from the cache. */
function recordOne(recorder: QueryLogRecorder, queryId: number): void {
  recorder.query({
    app: "hits", queryId, input: [1, 2, 3, 4, 5, 6, 7, 8], defaultOutput: "-1", latencyMs: 0.25 + queryId * 1.23456789e-7, uid: undefined,
    answer: { kind: "output", output: "[0.0]", cached: true, model: { name: "noop", version: "1" } },
  });
}

/**
 * Records made and taken as the frontend's recorder and shipper do: the shipper sends the header and
 * the chunk as they are, then hands the chunk's storage back. `bodies`, when given, receives copies
 * of the report bodies the daemon would read (not what the frontend does: left out of its timing).
 */
function makeReports(recorder: QueryLogRecorder, records: number, bodies?: Buffer[]): void {
  const head = Buffer.from(`${JSON.stringify({ frontend_id: "frontend-1", app: "hits", dropped: [] })}\n`);
  const ship = () => {
    for (let chunk = recorder.take(); chunk; chunk = recorder.take()) {
      bodies?.push(Buffer.concat([head, chunk.bytes]));
      recorder.recycle(chunk);
    }
  };
  for (let id = 0; id < records; id++) {
    recordOne(recorder, id);
    if (recorder.size >= 2_000) ship();
  }
  ship();
}

/** Calls `line` with each record line's text of each report body. */
function eachLine(bodies: Buffer[], line: (text: string) => void): void {
  for (const body of bodies) {
    for (let at = body.indexOf(0x0a) + 1; at < body.length;) {
      const end = body.indexOf(0x0a, at);
      line(body.toString("utf8", at, end));
      at = end + 1;
    }
  }
}

export function measureRecordCosts(records = 100_000, repeats = 5): RecordCost[] {
  const recorder = new QueryLogRecorder({ frontendId: "frontend-1", maxRecords: records + 1, maxBytes: Number.MAX_SAFE_INTEGER });
  recorder.configure({ ...emptyState(), query_log: dict([["hits", { sample: 1, max_mb: 512 }]]) });
  const frontend = cpuPerRecord(records, repeats, () => makeReports(recorder, records));
  const bodies: Buffer[] = [];
  makeReports(recorder, records, bodies);
  const check = (body: Buffer) => {
    if (!isUtf8(body) || typeof reportRecords(body, body.indexOf(0x0a) + 1) !== "number") throw new Error("a report the daemon refuses");
  };
  const framing = cpuPerRecord(records, repeats, () => bodies.forEach(check));
  const parse = cpuPerRecord(records, repeats, () => eachLine(bodies, (text) => JSON.parse(text)));
  const schema = cpuPerRecord(records, repeats, () => eachLine(bodies, (text) => {
    if (!QueryLogLineSchema.safeParse(JSON.parse(text)).success) throw new Error("a record off the schema");
  }));
  return [
    { step: "frontend: make the record, take its chunk (sent as it is), reuse its storage", us: frontend },
    { step: "daemon: UTF-8 and framing checks of the report (what it does)", us: framing },
    { step: "daemon, not done: JSON.parse of each record line", us: parse },
    { step: "daemon, not done: JSON.parse + QueryLogLineSchema (zod) of each record line", us: schema },
  ];
}
