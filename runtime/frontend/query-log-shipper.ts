/**
 * Sends the query log recorder's buffer (query-log-recorder.ts) to the management daemon every
 * interval, in reports of at most MAX_RECORDS_PER_REPORT records and about MAX_REPORT_BYTES,
 * authenticated as the live stats report is (management-post.ts). One report is in flight at a
 * time; records the daemon did not take are counted as dropped (`undelivered`) rather than kept,
 * so that a daemon away for a while costs the log those records, never the frontend's memory.
 * Drop counts go to the daemon with the next report, and to Prometheus.
 */
import { Counter, type Registry } from "prom-client";
import { MAX_RECORDS_PER_REPORT, MAX_REPORT_BYTES, QUERY_LOG_REPORT_CONTENT_TYPE, REPORT_QUERY_LOG_PATH } from "../shared/query-log.js";
import { postToManagement, type ManagementTarget } from "./management-post.js";
import type { AppLines, QueryLogRecorder } from "./query-log-recorder.js";

export const DEFAULT_QUERY_LOG_FLUSH_MS = 1_000;
/** Reports sent per interval at most: beyond, the buffer's bound decides what is kept. */
const MAX_REPORTS_PER_TICK = 32;

export interface QueryLogShipperOptions extends ManagementTarget {
  frontendId: string;
  recorder: QueryLogRecorder;
  registry: Registry;
  intervalMs?: number;
}

export class QueryLogShipper {
  private timer?: NodeJS.Timeout;
  private sending = false;
  /** Drop counts not yet delivered to the daemon, per application. */
  private unreported = new Map<string, number>();
  private readonly droppedCounter: Counter<"app" | "reason">;
  private readonly recordedCounter: Counter<"app">;

  constructor(private readonly options: QueryLogShipperOptions) {
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
        const logs = this.options.recorder.take(MAX_RECORDS_PER_REPORT, MAX_REPORT_BYTES);
        this.collectDrops();
        if (logs.length === 0 && this.unreported.size === 0) return;
        const delivered = await this.send(logs);
        if (!delivered || logs.length === 0) return;
      }
    } finally {
      this.sending = false;
    }
  }

  /** One report per application (shared/query-log.ts: a header line, then its records); drop counts ride on the first. */
  private async send(logs: AppLines[]): Promise<boolean> {
    const dropped = [...this.unreported].map(([app, count]) => ({ app, count }));
    const reports: Array<AppLines | undefined> = logs.length > 0 ? logs : [undefined];
    for (const [i, log] of reports.entries()) {
      const header = { frontend_id: this.options.frontendId, ...(log ? { app: log.app } : {}), dropped: i === 0 ? dropped : [] };
      const body = JSON.stringify(header) + "\n" + (log && log.lines.length > 0 ? log.lines.join("\n") + "\n" : "");
      const outcome = await postToManagement(
        this.options, REPORT_QUERY_LOG_PATH, body, 10_000, "query log report", false, QUERY_LOG_REPORT_CONTENT_TYPE,
      );
      if (outcome !== "accepted") {
        this.options.recorder.lost(reports.slice(i).filter((l): l is AppLines => l !== undefined));
        if (i > 0) this.forgetReported(dropped); // the first report carried them
        this.collectDrops();
        return false;
      }
      if (log) this.recordedCounter.inc({ app: log.app }, log.lines.length);
    }
    this.forgetReported(dropped);
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
        this.droppedCounter.inc({ app, reason }, count);
        this.unreported.set(app, (this.unreported.get(app) ?? 0) + count);
      }
    }
  }
}
