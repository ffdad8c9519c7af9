/**
 * The frontend's half of the query log (docs/rollouts.md#query-log). Where a query's answer is
 * final (the synchronous cache-hit path included), `query` decides by the application's sample
 * whether to record it and, if so, pushes the record — one line of JSON — into a bounded buffer:
 * no promise, no I/O on the query path. Feedback that names a query id is buffered the same way.
 * `take` hands the shipper (query-log-shipper.ts) a batch from the buffer; a full buffer drops new
 * records and counts them per application.
 *
 * The settings come from the cluster state on the watch stream (`configure`); an application not
 * in it costs one Map lookup per answer.
 */
import { embedOutput } from "./query-processor.js";
import type { PolicyAnswer } from "./policies/policy.js";
import type { ClusterState } from "../shared/state.js";
import { own } from "../shared/dict.js";
import { MAX_EXPLANATION, MAX_LINE_CHARS, MAX_UID } from "../shared/query-log.js";
import { TextMemo } from "./text-memo.js";

/** Records held at most, and their bytes. */
export const DEFAULT_BUFFER_RECORDS = 20_000;
export const DEFAULT_BUFFER_BYTES = 16 * 1024 * 1024;

/** `too_large`: a record longer than the daemon takes (MAX_LINE_CHARS). */
export type DropReason = "buffer_full" | "undelivered" | "too_large";

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
  answer: PolicyAnswer;
  defaultOutput: string;
  latencyMs: number;
  uid?: string;
}

/** Records of one application, as JSON lines (query-log.ts's QueryLogLine). */
export interface AppLines {
  app: string;
  lines: string[];
}

export class QueryLogRecorder {
  private samples = new Map<string, number>();
  /** Per application the start of its records' JSON, built once per configuration. */
  private prefixes = new Map<string, string>();
  /**
   * The buffer: application and record line, side by side. A record is serialized where it is
   * taken: one flat string per record lives until the shipper sends it, rather than the query's
   * objects, which would outlive the young generation and cost the garbage collector more.
   */
  private apps: string[] = [];
  private lines: string[] = [];
  private bufferBytes = 0;
  /** Dropped since the last `takeDropped`, per application and reason. */
  private dropped = new Map<string, Map<DropReason, number>>();
  /** Output text → its JSON in a record (outputs embedded as JSON when they parse, as in answers). */
  private readonly outputs = new TextMemo((output) => JSON.stringify(embedOutput(output)));
  private lastTimeMs = Number.NaN;
  private lastTime = "";
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

  get size(): number {
    return this.lines.length;
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
    line += `,"cached":${answer.kind === "output" && answer.cached === true},"latency_ms":${q.latencyMs}`;
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

  /**
   * Removes and returns the oldest records, grouped by application, up to `maxRecords` and
   * `maxBytes` of JSON (at least one record whatever its size).
   */
  take(maxRecords: number, maxBytes: number): AppLines[] {
    let count = 0;
    let bytes = 0;
    while (count < this.lines.length && count < maxRecords && (count === 0 || bytes + this.lines[count]!.length <= maxBytes)) {
      bytes += this.lines[count]!.length;
      count++;
    }
    const apps = this.apps.splice(0, count);
    const lines = this.lines.splice(0, count);
    this.bufferBytes -= bytes;
    const byApp = new Map<string, string[]>();
    apps.forEach((app, i) => {
      const list = byApp.get(app);
      if (list) list.push(lines[i]!);
      else byApp.set(app, [lines[i]!]);
    });
    return [...byApp].map(([app, appLines]) => ({ app, lines: appLines }));
  }

  /** Counts records that were lost after `take` (the daemon could not be reached or refused them). */
  lost(logs: readonly AppLines[]): void {
    for (const { app, lines } of logs) this.countDrop(app, "undelivered", lines.length);
  }

  /** The drops since the last call, per application and reason. */
  takeDropped(): Map<string, Map<DropReason, number>> {
    const dropped = this.dropped;
    this.dropped = new Map();
    return dropped;
  }

  private full(): boolean {
    return this.lines.length >= this.maxRecords || this.bufferBytes >= this.maxBytes;
  }

  private push(app: string, line: string): void {
    if (line.length > MAX_LINE_CHARS) return this.countDrop(app, "too_large", 1);
    this.apps.push(app);
    this.lines.push(line);
    this.bufferBytes += line.length;
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
