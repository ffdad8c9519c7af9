/**
 * The query logs on disk (docs/rollouts.md#query-log): one directory per application under
 * `<state dir>/query-log/`, holding numbered segment files of JSON lines (`0000000001.jsonl`, ...).
 * Appends go to the newest segment and are fsynced before they are acknowledged; a segment that
 * would grow past an eighth of the bound is closed and a new one started, and the oldest segments
 * are deleted so the files stay under the application's `max_mb` in all.
 *
 * A kill mid-append can leave the last line of the newest segment cut short. Nothing is ever
 * appended after such a line (the next append starts a new segment), and the reader skips any line
 * that does not parse, so the log stays readable whatever instant the daemon died at.
 *
 * A report that carries an id is written with its id line after its records, in the same write
 * (shared/query-log.ts): the id is on disk only with every record before it. The ids found in the
 * segments go back into the ledger (report-ledger.ts) when a log is first read, so a report sent
 * again after the daemon stored it and died is stored once. A report split over segments (larger
 * than a segment: logs under 4 MiB) has its id after its last piece; one cut short by a crash may
 * be stored in part, then again whole.
 *
 * Paths are built only from names that pass the application name rule (no `/`, `.`, `__proto__`);
 * per-application bookkeeping is in Maps. Appends and removals of one application are serialized.
 */
import { createHash } from "node:crypto";
import { type FileHandle, mkdir, open, readdir, readFile, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { nameProblem } from "../shared/names.js";
import {
  type ExportedQuery, type FeedbackRecord, parseReportIdLine, QueryLogLineSchema, type QueryLogReportId, type QueryRecord, reportIdLine,
} from "../shared/query-log.js";
import { ReportLedger } from "./report-ledger.js";

export const QUERY_LOG_DIR = "query-log";
/** A log's bound is spread over this many segments, so that dropping the oldest frees an eighth. */
export const SEGMENTS_PER_LOG = 8;
const SEGMENT = /^(\d{10})\.jsonl$/;

interface Segment {
  seq: number;
  bytes: number;
  records: number;
  /** Its last line is cut short (a kill mid-write, a failed write): never append after it. */
  torn: boolean;
}

/** What `append` answers for a report the log already holds (report-ledger.ts). */
export const REPEATED_REPORT = "repeated";

export interface QueryLogSize {
  bytes: number;
  records: number;
}

/** The lines of a log's text that are whole: the text after the last newline is a torn line. */
export function wholeLines(text: string): { lines: string[]; torn: boolean } {
  const end = text.lastIndexOf("\n");
  const torn = end !== text.length - 1;
  if (end < 0) return { lines: [], torn: text.length > 0 };
  return { lines: text.slice(0, end).split("\n"), torn };
}

/**
 * Whole lines of `lines` grouped into pieces of at most `limit` bytes, in order; a line longer
 * than `limit` is left out.
 */
export function* pieces(lines: Buffer, limit: number): Generator<{ bytes: Buffer; records: number }> {
  let start = 0;
  let records = 0;
  for (let at = 0; at < lines.length;) {
    const end = lines.indexOf(0x0a, at) + 1 || lines.length;
    if (end - start > limit && records > 0) {
      yield { bytes: lines.subarray(start, at), records };
      start = at;
      records = 0;
    }
    if (end - at > limit) start = end;
    else records++;
    at = end;
  }
  if (records > 0) yield { bytes: lines.subarray(start), records };
}

/**
 * Which segments to delete before appending `incoming` bytes so the total stays within `maxBytes`:
 * the oldest first, never the one being appended to (the last).
 */
export function segmentsToDrop(sizes: readonly number[], incoming: number, maxBytes: number): number {
  let total = sizes.reduce((a, b) => a + b, 0) + incoming;
  let drop = 0;
  while (total > maxBytes && drop < sizes.length - 1) total -= sizes[drop++]!;
  return drop;
}

/** The size of a segment for a log bounded by `maxBytes`. */
export function segmentBytes(maxBytes: number): number {
  return Math.max(4096, Math.floor(maxBytes / SEGMENTS_PER_LOG));
}

export class QueryLogStore {
  private readonly logs = new Map<string, Segment[]>();
  private readonly chains = new Map<string, Promise<unknown>>();
  /** Reports taken: those with records from the segments and appends, the others from the daemon (server.ts). */
  readonly reports = new ReportLedger();

  constructor(readonly root: string) {}

  /**
   * Appends `lines` (`records` whole JSON lines, each ending "\n") to the application's log within
   * `maxBytes`, which is read when the append's turn comes (after the appends and removals queued
   * before it): undefined then means the application no longer logs, and nothing is written.
   * Lines that fit the current segment go in one write; resolves with how many were written (a
   * line larger than a segment is not), or REPEATED_REPORT when the report of `id` was taken
   * already (nothing is written).
   */
  append(app: string, lines: Buffer, records: number, maxBytes: () => number | undefined, id?: QueryLogReportId): Promise<number | typeof REPEATED_REPORT> {
    return this.serialized(app, async () => {
      const bound = maxBytes();
      if (bound === undefined || records === 0) return id && !this.reports.take(id) ? REPEATED_REPORT : 0;
      // Loaded first: a restarted daemon learns the ids its segments hold.
      const segments = await this.load(app);
      if (id && this.reports.isRepeat(id)) return REPEATED_REPORT;
      const limit = segmentBytes(bound);
      const idLine = id ? Buffer.from(reportIdLine(id)) : undefined;
      let written = 0;
      const all = lines.length + (idLine?.length ?? 0) <= limit ? [{ bytes: lines, records }] : [...pieces(lines, limit - (idLine?.length ?? 0))];
      for (const [i, piece] of all.entries()) {
        await this.appendChunk(app, segments, i === all.length - 1 && idLine ? [piece.bytes, idLine] : [piece.bytes], piece.records, limit, bound);
        written += piece.records;
      }
      if (id) this.reports.taken(id);
      return written;
    });
  }

  /** Deletes an application's log (the application was deleted). */
  remove(app: string): Promise<void> {
    return this.serialized(app, async () => {
      this.logs.delete(app);
      await rm(this.dirOf(app), { recursive: true, force: true });
    });
  }

  /** Deletes the logs of applications not in `apps` (left by a daemon killed before it removed them). */
  async removeAllBut(apps: ReadonlySet<string>): Promise<void> {
    let entries: string[];
    try {
      entries = await readdir(this.root);
    } catch {
      return;
    }
    for (const entry of entries) {
      if (nameProblem("application name", entry) === undefined && !apps.has(entry)) await this.remove(entry);
    }
  }

  async size(app: string): Promise<QueryLogSize> {
    return this.serialized(app, async () => {
      const segments = await this.load(app);
      return {
        bytes: segments.reduce((a, s) => a + s.bytes, 0),
        records: segments.reduce((a, s) => a + s.records, 0),
      };
    });
  }

  /**
   * The log's queries, oldest first, each with the feedback that named it: feedback joins the
   * latest query logged before it with the same query id and the same input (query ids count per
   * frontend process, the input tells two apart). Feedback that names no logged query is left out.
   * Segments deleted by rotation while this reads are skipped; lines appended meanwhile are not read.
   */
  async *exportQueries(app: string): AsyncGenerator<ExportedQuery> {
    const segments = [...(await this.serialized(app, () => this.load(app)))];
    const lineCounts = new Map<number, number>();
    const latest = new Map<string, string>();
    const feedback = new Map<string, ExportedQuery["feedback"]>();
    for (const segment of segments) {
      const lines = await this.readSegment(app, segment.seq);
      lineCounts.set(segment.seq, lines.length);
      lines.forEach((line, i) => {
        const record = parseLine(line, app);
        if (!record) return;
        const key = joinKey(record);
        if (record.type === "query") latest.set(key, `${segment.seq}:${i}`);
        else {
          const at = latest.get(key);
          if (at === undefined) return;
          const list = feedback.get(at) ?? [];
          list.push(feedbackOf(record));
          feedback.set(at, list);
        }
      });
    }
    latest.clear();
    for (const segment of segments) {
      const lines = (await this.readSegment(app, segment.seq)).slice(0, lineCounts.get(segment.seq));
      for (let i = 0; i < lines.length; i++) {
        const record = parseLine(lines[i]!, app);
        if (record?.type === "query") yield { ...record, feedback: feedback.get(`${segment.seq}:${i}`) ?? [] };
      }
    }
  }

  /** Appends `chunk` (records, then maybe a report id line) in one write. */
  private async appendChunk(app: string, segments: Segment[], chunk: readonly Buffer[], records: number, limit: number, maxBytes: number): Promise<void> {
    const bytes = chunk.reduce((n, part) => n + part.length, 0);
    let current = segments.at(-1);
    if (!current || current.torn || current.bytes + bytes > limit) {
      current = { seq: (current?.seq ?? 0) + 1, bytes: 0, records: 0, torn: false };
      segments.push(current);
    }
    const drop = segmentsToDrop(segments.map((s) => s.bytes), bytes, maxBytes);
    for (const old of segments.splice(0, drop)) await unlink(this.segmentPath(app, old.seq)).catch(() => undefined);
    const path = this.segmentPath(app, current.seq);
    const file = await this.openSegment(app, path);
    try {
      await writeAll(file, chunk, bytes);
      await file.sync();
      current.bytes += bytes;
      current.records += records;
    } catch (err) {
      // Part of the chunk may be on disk: start the next append in a fresh segment.
      current.torn = true;
      current.bytes = (await stat(path).catch(() => undefined))?.size ?? current.bytes;
      throw err;
    } finally {
      await file.close();
    }
  }

  /** A segment opened for appending; the directory is made only when it is missing (not on every append: a busy log appends several times a second). */
  private async openSegment(app: string, path: string): Promise<FileHandle> {
    try {
      return await open(path, "a", 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      await mkdir(this.dirOf(app), { recursive: true, mode: 0o700 });
      return open(path, "a", 0o600);
    }
  }

  /** The application's segments, read from disk on first use. */
  private async load(app: string): Promise<Segment[]> {
    const known = this.logs.get(app);
    if (known) return known;
    let files: string[] = [];
    try {
      files = await readdir(this.dirOf(app));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    const segments: Segment[] = [];
    for (const file of files) {
      const match = SEGMENT.exec(file);
      if (!match) continue;
      const text = await readFile(join(this.dirOf(app), file), "utf8");
      const { lines, torn } = wholeLines(text);
      let records = 0;
      for (const line of lines) {
        const id = parseReportIdLine(line);
        if (id) this.reports.taken(id);
        else records++;
      }
      segments.push({ seq: Number(match[1]), bytes: Buffer.byteLength(text), records, torn });
    }
    segments.sort((a, b) => a.seq - b.seq);
    this.logs.set(app, segments);
    return segments;
  }

  private async readSegment(app: string, seq: number): Promise<string[]> {
    try {
      return wholeLines(await readFile(this.segmentPath(app, seq), "utf8")).lines;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
  }

  private serialized<T>(app: string, work: () => Promise<T>): Promise<T> {
    const run = (this.chains.get(app) ?? Promise.resolve()).then(work);
    const tail = run.catch(() => undefined);
    this.chains.set(app, tail);
    void tail.then(() => {
      if (this.chains.get(app) === tail) this.chains.delete(app);
    });
    return run;
  }

  private dirOf(app: string): string {
    const problem = nameProblem("application name", app);
    if (problem) throw new Error(`refusing a query log path for an invalid name: ${problem}`);
    return join(this.root, app);
  }

  private segmentPath(app: string, seq: number): string {
    return join(this.dirOf(app), `${String(seq).padStart(10, "0")}.jsonl`);
  }
}

/** Writes every byte of `parts` (a write may take fewer than it was given). */
async function writeAll(file: FileHandle, parts: readonly Buffer[], total: number): Promise<void> {
  if (parts.length === 1) return file.writeFile(parts[0]!);
  const done = (await file.writev(parts as Buffer[])).bytesWritten;
  if (done === total) return;
  const rest = Buffer.concat(parts as Buffer[]).subarray(done);
  await file.writeFile(rest);
}

/** A line's record, or undefined for a line that is not one of this application's records. */
function parseLine(line: string, app: string): QueryRecord | FeedbackRecord | undefined {
  try {
    const parsed = QueryLogLineSchema.safeParse(JSON.parse(line));
    return parsed.success && parsed.data.app === app ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Query id and input: long inputs by their hash, so the join's index stays small. */
function joinKey(record: { query_id: number; input: unknown }): string {
  const input = JSON.stringify(record.input) ?? "";
  return `${record.query_id}|${input.length > 128 ? createHash("sha256").update(input).digest("base64") : input}`;
}

function feedbackOf(record: FeedbackRecord): ExportedQuery["feedback"][number] {
  return { label: record.label, time: record.time, ...(record.uid === undefined ? {} : { uid: record.uid }) };
}
