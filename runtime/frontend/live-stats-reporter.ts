/**
 * Takes a live stats sample every interval and sends it to the management daemon
 * (runtime/shared/live-stats.ts). Samples the daemon did not get (it was restarting) are sent with
 * the next report, up to the report's bound: older ones are dropped, the feed is for the present.
 * Samples the daemon refused are dropped, and the refusal is logged once, not every interval (a
 * daemon from before the feed answers 404: serving goes on, without live charts).
 *
 * `reportSoon` takes the sample at once instead of at the end of the interval, and the interval
 * starts again from there: a query waiting for the first replica of a version at zero, and that
 * first replica connecting, are news the autoscaler should not hear up to an interval late (it
 * starts the replica on the one, and times the start by the other). Early samples are spaced by a
 * quarter interval at least, so a storm of them cannot crowd the daemon's bounded history.
 */
import { MAX_SAMPLES_PER_REPORT, REPORT_LIVE_STATS_PATH, type LiveStatsSample } from "../shared/live-stats.js";
import { postToManagement, type ManagementTarget } from "./management-post.js";
import type { LiveStatsCollector } from "./live-stats-collector.js";

export interface LiveStatsReporterOptions extends ManagementTarget {
  frontendId: string;
  collector: Pick<LiveStatsCollector, "take">;
  intervalMs: number;
  /** The clock that spaces early samples (default Date.now). */
  now?: () => number;
}

const MAX_PENDING = MAX_SAMPLES_PER_REPORT;

export class LiveStatsReporter {
  private timer?: NodeJS.Timeout;
  private pending: LiveStatsSample[] = [];
  private sending = false;
  private refusalLogged = false;
  private lastTakenAt = Number.NEGATIVE_INFINITY;
  private closed = false;

  constructor(private readonly options: LiveStatsReporterOptions) {}

  start(): void {
    this.closed = false;
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }

  /** Takes and sends a sample now, unless one was taken less than a quarter interval ago. */
  reportSoon(): void {
    if (this.closed || this.timer === undefined) return;
    if ((this.options.now ?? Date.now)() - this.lastTakenAt < this.options.intervalMs / 4) return;
    clearInterval(this.timer);
    this.start();
    void this.tick();
  }

  /** Takes a sample and sends what is pending (one report in flight at a time). */
  async tick(): Promise<void> {
    this.lastTakenAt = (this.options.now ?? Date.now)();
    this.pending.push(this.options.collector.take());
    if (this.pending.length > MAX_PENDING) this.pending.splice(0, this.pending.length - MAX_PENDING);
    if (this.sending) return;
    this.sending = true;
    const samples = this.pending;
    this.pending = [];
    const body = { frontend_id: this.options.frontendId, samples };
    const outcome = await postToManagement(
      this.options, REPORT_LIVE_STATS_PATH, body, Math.max(1_000, this.options.intervalMs), "live stats report", true,
    );
    // Not received: keep them for the next report, ahead of the samples taken meanwhile.
    if (outcome === "unreachable") this.pending = [...samples, ...this.pending].slice(-MAX_PENDING);
    if (outcome === "refused" && !this.refusalLogged) {
      this.refusalLogged = true;
      this.options.log.warn("the management daemon refused this frontend's live stats (an older daemon?): the dashboard shows no live charts for it");
    }
    this.sending = false;
  }
}
