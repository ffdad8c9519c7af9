/**
 * The frontend's half of the query log (docs/rollouts.md#query-log). Where a query's answer is
 * final (the synchronous cache-hit path included), `query` decides by the application's sample
 * whether to record it and, if so, pushes a small record into a bounded buffer: no promise, no
 * I/O, no JSON on the query path. Feedback that names a query id is buffered the same way.
 * `take` hands the shipper (query-log-shipper.ts) a batch built from the buffer; a full buffer
 * drops new records and counts them per application.
 *
 * The settings come from the cluster state on the watch stream (`configure`); an application not
 * in it costs one Map lookup per answer.
 */
import { embedOutput } from "./query-processor.js";
import type { PolicyAnswer } from "./policies/policy.js";
import type { ClusterState } from "../shared/state.js";
import { type FeedbackRecord, MAX_EXPLANATION, MAX_UID, type QueryLogLine, type QueryRecord } from "../shared/query-log.js";

/** Records held at most, and their approximate bytes (inputs and outputs as the frontend got them). */
export const DEFAULT_BUFFER_RECORDS = 20_000;
export const DEFAULT_BUFFER_BYTES = 16 * 1024 * 1024;
/** What a record costs besides its input and output, for the byte bound. */
const RECORD_OVERHEAD_BYTES = 200;

export type DropReason = "buffer_full" | "undelivered";

interface PendingQuery {
  type: "query";
  app: string;
  queryId: number;
  timeMs: number;
  input: unknown;
  /** A model's output text, or the application's default output text. */
  output: string;
  answer: PolicyAnswer;
  latencyMs: number;
  uid?: string;
  bytes: number;
}

interface PendingFeedback {
  type: "feedback";
  app: string;
  queryId: number;
  timeMs: number;
  input: unknown;
  label: number | string;
  uid?: string;
  bytes: number;
}

type Pending = PendingQuery | PendingFeedback;

export interface QueryLogRecorderOptions {
  frontendId: string;
  /** Uniform in [0, 1) (default Math.random). */
  random?: () => number;
  /** Wall clock, ms (default Date.now): the records' time. */
  now?: () => number;
  maxRecords?: number;
  maxBytes?: number;
}

/** What a query answered, as `query` needs it. */
export interface AnsweredQuery {
  app: string;
  queryId: number;
  input: unknown;
  /** Size of the encoded input, for the byte bound. */
  inputBytes: number;
  answer: PolicyAnswer;
  defaultOutput: string;
  latencyMs: number;
  uid?: string;
}

export class QueryLogRecorder {
  private samples = new Map<string, number>();
  private buffer: Pending[] = [];
  private bufferBytes = 0;
  /** Dropped since the last `takeDropped`, per application and reason. */
  private dropped = new Map<string, Map<DropReason, number>>();
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly maxRecords: number;
  private readonly maxBytes: number;

  constructor(private readonly options: QueryLogRecorderOptions) {
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.maxRecords = options.maxRecords ?? DEFAULT_BUFFER_RECORDS;
    this.maxBytes = options.maxBytes ?? DEFAULT_BUFFER_BYTES;
  }

  /** Takes the applications' samples from a new configuration snapshot. */
  configure(state: ClusterState): void {
    const samples = new Map<string, number>();
    for (const [app, config] of Object.entries(state.query_log ?? {})) samples.set(app, config.sample);
    this.samples = samples;
  }

  /** Whether any application logs now. */
  get active(): boolean {
    return this.samples.size > 0;
  }

  get size(): number {
    return this.buffer.length;
  }

  /** An answer became final: recorded if the application logs and the draw says so. */
  query(q: AnsweredQuery): void {
    const sample = this.samples.get(q.app);
    if (sample === undefined || (sample < 1 && this.random() >= sample)) return;
    const output = q.answer.kind === "output" ? q.answer.output : q.defaultOutput;
    this.push({
      type: "query", app: q.app, queryId: q.queryId, timeMs: this.now(), input: q.input, output, answer: q.answer,
      latencyMs: q.latencyMs, uid: q.uid, bytes: q.inputBytes + output.length + RECORD_OVERHEAD_BYTES,
    });
  }

  /** Feedback that named a query id, for an application that logs (joined to its query at export). */
  feedback(app: string, queryId: number, input: unknown, inputBytes: number, label: number | string, uid: string | undefined): void {
    if (!this.samples.has(app)) return;
    this.push({ type: "feedback", app, queryId, timeMs: this.now(), input, label, uid, bytes: inputBytes + String(label).length + RECORD_OVERHEAD_BYTES });
  }

  /**
   * Removes and returns the oldest records, as the log stores them, up to `maxRecords` and about
   * `maxBytes` (at least one record whatever its size).
   */
  take(maxRecords: number, maxBytes: number): QueryLogLine[] {
    let count = 0;
    let bytes = 0;
    while (count < this.buffer.length && count < maxRecords && (count === 0 || bytes + this.buffer[count]!.bytes <= maxBytes)) {
      bytes += this.buffer[count]!.bytes;
      count++;
    }
    const taken = this.buffer.splice(0, count);
    this.bufferBytes -= bytes;
    return taken.map((p) => this.toLine(p));
  }

  /** Counts records that were lost after `take` (the daemon could not be reached or refused them). */
  lost(records: readonly QueryLogLine[]): void {
    for (const record of records) this.countDrop(record.app, "undelivered", 1);
  }

  /** The drops since the last call, per application and reason. */
  takeDropped(): Map<string, Map<DropReason, number>> {
    const dropped = this.dropped;
    this.dropped = new Map();
    return dropped;
  }

  private push(record: Pending): void {
    if (this.buffer.length >= this.maxRecords || this.bufferBytes + record.bytes > this.maxBytes) {
      this.countDrop(record.app, "buffer_full", 1);
      return;
    }
    this.buffer.push(record);
    this.bufferBytes += record.bytes;
  }

  private countDrop(app: string, reason: DropReason, count: number): void {
    let reasons = this.dropped.get(app);
    if (!reasons) this.dropped.set(app, (reasons = new Map()));
    reasons.set(reason, (reasons.get(reason) ?? 0) + count);
  }

  private toLine(p: Pending): QueryLogLine {
    const common = { app: p.app, query_id: p.queryId, frontend_id: this.options.frontendId, time: new Date(p.timeMs).toISOString(), input: p.input };
    const uid = p.uid === undefined ? {} : { uid: p.uid.slice(0, MAX_UID) };
    if (p.type === "feedback") return { type: "feedback", ...common, label: p.label, ...uid } satisfies FeedbackRecord;
    const { answer } = p;
    const model = answer.model ? { model: answer.model.name, model_version: answer.model.version } : {};
    const record: QueryRecord = {
      type: "query", ...common, output: embedOutput(p.output), default: answer.kind === "default",
      ...(answer.kind === "default" ? { default_reason: answer.reason, default_explanation: answer.explanation.slice(0, MAX_EXPLANATION) } : {}),
      ...model, cached: answer.kind === "output" && answer.cached === true, latency_ms: p.latencyMs, ...uid,
    };
    return record;
  }
}
