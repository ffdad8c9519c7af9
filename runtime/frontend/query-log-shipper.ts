/**
 * Sends the query log recorder's buffer (query-log-recorder.ts) to the management daemon every
 * interval, one report per chunk (at most MAX_RECORDS_PER_REPORT records and about MAX_REPORT_BYTES
 * of one application): a header line, then the chunk's bytes as they are, whose storage goes back to
 * the recorder once the daemon took them. Authenticated as the
 * live stats report is (management-post.ts). One report is in flight at a
 * time; records the daemon did not take are counted as dropped (`undelivered`) rather than kept,
 * so that a daemon away for a while costs the log those records, never the frontend's memory.
 * Drop counts go to the daemon with the next report, and to Prometheus.
 *
 * Each report carries an id — this process's session and the report's sequence — that stays the
 * same when management-post.ts sends it again, so the daemon stores it once (management/report-ledger.ts).
 */
import { randomUUID } from "node:crypto";
import { Counter, type Registry } from "prom-client";
import { QUERY_LOG_REPORT_CONTENT_TYPE, REPORT_QUERY_LOG_PATH } from "../shared/query-log.js";
import { postToManagement, type ManagementTarget } from "./management-post.js";
import { MetricNames } from "./metric-names.js";
import type { QueryLogRecorder, RecordChunk } from "./query-log-recorder.js";

export const DEFAULT_QUERY_LOG_FLUSH_MS = 1_000;
/** Reports sent per interval at most: beyond, the buffer's bound decides what is kept. */
const MAX_REPORTS_PER_TICK = 32;

export interface QueryLogShipperOptions extends ManagementTarget {
  frontendId: string;
  recorder: QueryLogRecorder;
  registry: Registry;
  /** A report delivered after its application was deleted counts under UNREGISTERED (metric-names.ts). */
  names?: MetricNames;
  intervalMs?: number;
  /** Sends a report (default postToManagement; unit tests inject one). */
  post?: typeof postToManagement;
}

export class QueryLogShipper {
  private timer?: NodeJS.Timeout;
  private sending = false;
  /** Drop counts not yet delivered to the daemon, per application. */
  private unreported = new Map<string, number>();
  private readonly droppedCounter: Counter<"app" | "reason">;
  private readonly recordedCounter: Counter<"app">;
  private readonly names: MetricNames;
  /** Random per process: a restarted frontend's sequence starts again at 1 under another session. */
  private readonly session = randomUUID();
  private lastSeq = 0;

  constructor(private readonly options: QueryLogShipperOptions) {
    this.names = options.names ?? MetricNames.any();
    const registers = [options.registry];
    this.droppedCounter = new Counter({
      name: "clipper_query_log_dropped_total",
      help: "Query log records dropped by the frontend: its buffer was full, the management daemon did not take them, or one was too large",
      labelNames: ["app", "reason"], registers,
    });
    this.recordedCounter = new Counter({
      name: "clipper_query_log_records_total", help: "Query log records (queries and feedback) delivered to the management daemon",
      labelNames: ["app"], registers,
    });
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs ?? DEFAULT_QUERY_LOG_FLUSH_MS);
    this.timer.unref();
  }

  /** Stops the timer and sends what is buffered (a last attempt, bounded like a tick). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.tick();
  }

  /** Sends what is buffered, a few reports at most; one tick at a time. */
  async tick(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      for (let i = 0; i < MAX_REPORTS_PER_TICK; i++) {
        const chunk = this.options.recorder.take();
        this.collectDrops();
        if (!chunk && this.unreported.size === 0) return;
        const delivered = await this.send(chunk);
        if (!delivered || !chunk) return;
      }
    } finally {
      this.sending = false;
    }
  }

  /** One report (shared/query-log.ts: a header line, then one application's records), with the drop counts not yet reported. */
  private async send(chunk: RecordChunk | undefined): Promise<boolean> {
    const dropped = [...this.unreported].map(([app, count]) => ({ app, count }));
    const report_id = { session: this.session, seq: ++this.lastSeq };
    const header = { frontend_id: this.options.frontendId, report_id, ...(chunk ? { app: chunk.app } : {}), dropped };
    const head = Buffer.from(JSON.stringify(header) + "\n");
    // The chunk's bytes go as they are, after the header: no copy of half a MiB per report.
    const outcome = await (this.options.post ?? postToManagement)(
      this.options, REPORT_QUERY_LOG_PATH, chunk ? [head, chunk.bytes] : head, 10_000, "query log report", false,
      QUERY_LOG_REPORT_CONTENT_TYPE,
    );
    if (outcome !== "accepted") {
      // Not recycled: a request that failed may still have its bytes queued on a closing socket.
      if (chunk) this.options.recorder.lost(chunk);
      this.collectDrops();
      return false;
    }
    this.forgetReported(dropped);
    if (chunk) {
      // The label as the configuration is now, not when the report left: an application deleted meanwhile counts as UNREGISTERED.
      this.recordedCounter.inc({ app: this.names.app(chunk.app) }, chunk.records);
      this.options.recorder.recycle(chunk);
    }
    return true;
  }

  /** Drop counts the daemon took. */
  private forgetReported(dropped: Array<{ app: string; count: number }>): void {
    for (const { app, count } of dropped) {
      const left = (this.unreported.get(app) ?? 0) - count;
      if (left > 0) this.unreported.set(app, left);
      else this.unreported.delete(app);
    }
  }

  /** Moves the recorder's new drops into Prometheus and into the counts owed to the daemon. */
  private collectDrops(): void {
    for (const [app, reasons] of this.options.recorder.takeDropped()) {
      for (const [reason, count] of reasons) {
        this.droppedCounter.inc({ app: this.names.app(app), reason }, count);
        this.unreported.set(app, (this.unreported.get(app) ?? 0) + count);
      }
    }
  }
}
