/**
 * The frontend's half of the query log (docs/rollouts.md#query-log). Where a query's answer is
 * final (the synchronous cache-hit path included), `query` decides by the application's sample
 * whether to record it and, if so, writes the record — one line of JSON — into a bounded buffer:
 * no promise, no I/O on the query path. Feedback that names a query id is buffered the same way.
 * `take` hands the shipper (query-log-shipper.ts) the oldest chunk, one report's worth of one
 * application's records, and `recycle` takes its storage back once sent; a full buffer drops new
 * records and counts them per application.
 *
 * Records are written as UTF-8 into per-application byte chunks where they are made, so that the
 * report's body is the chunk as it is: the line's string dies young, no string outlives the query
 * into the old generation, and nothing is joined or encoded again when the chunk is shipped (the
 * join and the encoding of held strings cost more than making the records).
 *
 * The settings come from the cluster state on the watch stream (`configure`); an application not
 * in it costs one Map lookup per answer.
 */
import { embedOutput } from "./query-processor.js";
import type { PolicyAnswer } from "./policies/policy.js";
import type { ClusterState } from "../shared/state.js";
import { own } from "../shared/dict.js";
import { MAX_EXPLANATION, MAX_LINE_BYTES, MAX_RECORDS_PER_REPORT, MAX_REPORT_BYTES, MAX_UID } from "../shared/query-log.js";
import { TextMemo } from "./text-memo.js";

/** Records held at most, and their bytes. */
export const DEFAULT_BUFFER_RECORDS = 20_000;
export const DEFAULT_BUFFER_BYTES = 16 * 1024 * 1024;
/** A chunk's first storage; it doubles as records come, up to a report's bytes. */
const FIRST_CHUNK_BYTES = 16 * 1024;
/** Lines longer than this (UTF-16 units) are measured exactly before they are written, shorter ones by their bound. */
const MEASURED_LINE = 4096;
/**
 * Delivered chunks' storage kept for new chunks (6 MiB at most): 22,000 records a second fill about
 * ten, all sent on one tick, so fewer spares would leave the next second's chunks to fresh memory.
 */
const SPARE_STORAGE = 12;

/** `too_large`: a record longer than the daemon takes (MAX_LINE_BYTES). */
export type DropReason = "buffer_full" | "undelivered" | "too_large";

export interface QueryLogRecorderOptions {
  frontendId: string;
  /** Uniform in [0, 1) (default Math.random). */
  random?: () => number;
  /** Wall clock, ms (default Date.now): the records' time. */
  now?: () => number;
  maxRecords?: number;
  maxBytes?: number;
  /** One chunk (one report) holds at most this many records (default MAX_RECORDS_PER_REPORT) ... */
  chunkRecords?: number;
  /** ... and about this many bytes (default MAX_REPORT_BYTES; a single longer record gets a chunk of its own). */
  chunkBytes?: number;
}

/** What a query answered, as `query` needs it. */
export interface AnsweredQuery {
  app: string;
  queryId: number;
  input: unknown;
  answer: PolicyAnswer;
  defaultOutput: string;
  latencyMs: number;
  uid?: string;
}

/** Records of one application, as the log stores them: UTF-8 JSON lines (QueryLogLine), each ending "\n". */
export interface RecordChunk {
  app: string;
  bytes: Buffer;
  records: number;
  /** The storage `bytes` lies in, for `recycle`. */
  storage: Buffer;
}

/** A chunk being written: `storage` holds `used` bytes of whole lines. */
interface OpenChunk {
  app: string;
  storage: Buffer;
  used: number;
  records: number;
}

export class QueryLogRecorder {
  private samples = new Map<string, number>();
  /** Per application the start of its records' JSON, built once per configuration. */
  private prefixes = new Map<string, string>();
  /** The buffer, oldest chunk first; each application writes to its newest (`open`) until it is full or taken. */
  private chunks: OpenChunk[] = [];
  private readonly open = new Map<string, OpenChunk>();
  private records = 0;
  private bufferBytes = 0;
  /** Dropped since the last `takeDropped`, per application and reason. */
  private dropped = new Map<string, Map<DropReason, number>>();
  /** Output text → its JSON in a record (outputs embedded as JSON when they parse, as in answers). */
  private readonly outputs = new TextMemo((output) => JSON.stringify(embedOutput(output)));
  /**
   * Storage of a report's size that the shipper handed back once sent: reused, so that a busy log
   * allocates no new half-MiB buffers each second (external memory that V8 answers with full GCs).
   */
  private readonly spare: Buffer[] = [];
  private lastTimeMs = Number.NaN;
  private lastTime = "";
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly maxRecords: number;
  private readonly maxBytes: number;
  private readonly chunkRecords: number;
  private readonly chunkBytes: number;

  constructor(private readonly options: QueryLogRecorderOptions) {
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.maxRecords = options.maxRecords ?? DEFAULT_BUFFER_RECORDS;
    this.maxBytes = options.maxBytes ?? DEFAULT_BUFFER_BYTES;
    this.chunkRecords = options.chunkRecords ?? MAX_RECORDS_PER_REPORT;
    this.chunkBytes = options.chunkBytes ?? MAX_REPORT_BYTES;
  }

  /** Takes the applications' samples from a new configuration snapshot. */
  configure(state: ClusterState): void {
    this.samples = new Map();
    this.prefixes = new Map();
    this.configureApps(state, Object.keys(state.query_log ?? {}));
  }

  /** Takes in the settings of these applications only (a watch-stream delta changed them). */
  configureApps(state: ClusterState, apps: Iterable<string>): void {
    for (const app of apps) {
      const config = own(state.query_log, app);
      if (!config) {
        this.samples.delete(app);
        this.prefixes.delete(app);
        continue;
      }
      this.samples.set(app, config.sample);
      this.prefixes.set(app, `"app":${JSON.stringify(app)},"frontend_id":${JSON.stringify(this.options.frontendId)}`);
    }
  }

  /** Records buffered. */
  get size(): number {
    return this.records;
  }

  /** Whether `app` logs at all: the query path asks before it gathers an AnsweredQuery. */
  logs(app: string): boolean {
    return this.samples.has(app);
  }

  /** An answer became final: recorded if the application logs and the draw says so. */
  query(q: AnsweredQuery): void {
    const sample = this.samples.get(q.app);
    if (sample === undefined || (sample < 1 && this.random() >= sample)) return;
    if (this.full()) return this.countDrop(q.app, "buffer_full", 1);
    const { answer } = q;
    let line = `{"type":"query",${this.prefixes.get(q.app)!},"query_id":${q.queryId},"time":"${this.time()}","input":${JSON.stringify(q.input)}`;
    if (answer.kind === "output") {
      line += `,"output":${this.outputs.get(answer.output)},"default":false`;
    } else {
      line += `,"output":${this.outputs.get(q.defaultOutput)},"default":true,"default_reason":${JSON.stringify(answer.reason)}` +
        `,"default_explanation":${JSON.stringify(answer.explanation.slice(0, MAX_EXPLANATION))}`;
    }
    if (answer.model) line += `,"model":${JSON.stringify(answer.model.name)},"model_version":${JSON.stringify(answer.model.version)}`;
    line += `,"cached":${answer.kind === "output" && answer.cached === true},"latency_ms":${microseconds(q.latencyMs)}`;
    if (q.uid !== undefined) line += `,"uid":${JSON.stringify(q.uid.slice(0, MAX_UID))}`;
    this.push(q.app, line + "}");
  }

  /** Feedback that named a query id, for an application that logs (joined to its query at export). */
  feedback(app: string, queryId: number, input: unknown, label: number | string, uid: string | undefined): void {
    if (!this.samples.has(app)) return;
    if (this.full()) return this.countDrop(app, "buffer_full", 1);
    let line = `{"type":"feedback",${this.prefixes.get(app)!},"query_id":${queryId},"time":"${this.time()}","input":${JSON.stringify(input)}` +
      `,"label":${JSON.stringify(label)}`;
    if (uid !== undefined) line += `,"uid":${JSON.stringify(uid.slice(0, MAX_UID))}`;
    this.push(app, line + "}");
  }

  /** Removes and returns the oldest chunk (undefined when none is buffered). */
  take(): RecordChunk | undefined {
    const chunk = this.chunks.shift();
    if (!chunk) return undefined;
    if (this.open.get(chunk.app) === chunk) this.open.delete(chunk.app);
    this.records -= chunk.records;
    this.bufferBytes -= chunk.used;
    return { app: chunk.app, bytes: chunk.storage.subarray(0, chunk.used), records: chunk.records, storage: chunk.storage };
  }

  /** `chunk` (from `take`) was sent and nothing refers to its bytes any more: its storage may hold new records. */
  recycle(chunk: RecordChunk): void {
    if (chunk.storage.length === this.chunkBytes && this.spare.length < SPARE_STORAGE && !this.spare.includes(chunk.storage)) {
      this.spare.push(chunk.storage);
    }
  }

  /** Counts records that were lost after `take` (the daemon could not be reached or refused them). */
  lost(chunk: RecordChunk): void {
    this.countDrop(chunk.app, "undelivered", chunk.records);
  }

  /** The drops since the last call, per application and reason. */
  takeDropped(): Map<string, Map<DropReason, number>> {
    const dropped = this.dropped;
    this.dropped = new Map();
    return dropped;
  }

  private full(): boolean {
    return this.records >= this.maxRecords || this.bufferBytes >= this.maxBytes;
  }

  private push(app: string, line: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit: a short line (never too large) is given that
    // room, a long one is measured, exactly as the daemon will count it.
    const room = line.length <= MEASURED_LINE ? 3 * line.length + 1 : Buffer.byteLength(line) + 1;
    if (room - 1 > MAX_LINE_BYTES) return this.countDrop(app, "too_large", 1);
    const chunk = this.chunkWithRoom(app, room);
    const bytes = chunk.storage.write(line, chunk.used);
    chunk.storage[chunk.used + bytes] = 0x0a;
    chunk.used += bytes + 1;
    chunk.records++;
    this.records++;
    this.bufferBytes += bytes + 1;
  }

  /** The application's open chunk with `room` bytes free: grown, or a new one when it holds a report's worth. */
  private chunkWithRoom(app: string, room: number): OpenChunk {
    const chunk = this.open.get(app);
    if (chunk && chunk.records < this.chunkRecords && chunk.used + room <= this.chunkBytes) {
      if (chunk.storage.length - chunk.used < room) {
        // Doubling: each byte is copied about once more however many records come.
        const storage = Buffer.allocUnsafe(Math.min(this.chunkBytes, Math.max(chunk.used + room, 2 * chunk.storage.length)));
        chunk.storage.copy(storage, 0, 0, chunk.used);
        chunk.storage = storage;
      }
      return chunk;
    }
    // An application that filled a chunk before the shipper took it will likely fill this one too: no doubling then.
    const size = Math.min(chunk ? this.chunkBytes : FIRST_CHUNK_BYTES, this.chunkBytes);
    const storage = (room <= this.chunkBytes ? this.spare.pop() : undefined) ?? Buffer.allocUnsafe(Math.max(room, size));
    const fresh: OpenChunk = { app, storage, used: 0, records: 0 };
    this.chunks.push(fresh);
    this.open.set(app, fresh);
    return fresh;
  }

  /** The record's time, ISO 8601; built once per millisecond. */
  private time(): string {
    const ms = this.now();
    if (ms !== this.lastTimeMs) {
      this.lastTimeMs = ms;
      this.lastTime = new Date(ms).toISOString();
    }
    return this.lastTime;
  }

  private countDrop(app: string, reason: DropReason, count: number): void {
    let reasons = this.dropped.get(app);
    if (!reasons) this.dropped.set(app, (reasons = new Map()));
    reasons.set(reason, (reasons.get(reason) ?? 0) + count);
  }
}

/**
 * Milliseconds to the microsecond (the clock's useful resolution): a performance.now() difference
 * has up to 17 significant digits, whose shortest decimal form costs several times the rest of the
 * number's formatting, and bytes on every line.
 */
export function microseconds(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
