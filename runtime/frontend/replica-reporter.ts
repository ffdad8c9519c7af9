/**
 * Tells the management daemon which replicas this frontend has connected (so that Clipper's
 * get_all_containers answers from live data) and which state revision it has applied (so that a
 * client can wait until a change is in force everywhere). Reports on change (debounced), soon after
 * a snapshot or delta was applied (at once, or at the end of a short window when one went out just
 * before: under 100 admin writes/s one report per change per worker was a good share of the
 * daemon's and the workers' CPU), periodically since the daemon forgets a frontend that stops
 * reporting, and a last time on close so the daemon forgets this frontend at once.
 */
import type { Logger } from "pino";
import { postToManagement } from "./management-post.js";
import { REPORT_REPLICAS_PATH, type AppliedRevision, type ReplicaRecord, type ReplicaReport } from "../shared/state.js";

export interface ReplicaReporterOptions {
  managementUrl: string;
  token?: string;
  frontendId: string;
  log: Logger;
  replicas(): ReplicaRecord[];
  /** The last state snapshot applied, if any (config-watch.ts). */
  applied?(): AppliedRevision | undefined;
  intervalMs?: number;
  /**
   * Applied-revision reports go out at most once per this many ms (default 25): the first of a
   * burst of changes at once, the rest together at the end of the window. Bounds what a burst of
   * admin writes costs; adds at most this much to the time until a change reads as in force.
   */
  appliedSpacingMs?: number;
  /** Injected by tests. */
  post?: typeof postToManagement;
  now?: () => number;
}

export const DEFAULT_APPLIED_SPACING_MS = 25;

/** A farewell must not hold up a shutdown when the daemon is away. */
const FAREWELL_TIMEOUT_MS = 1_000;

export class ReplicaReporter {
  private timer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private closed = false;
  /** Reports go out one at a time, so a late answer never replaces a newer report at the daemon. */
  private sending?: Promise<void>;
  private sendAgain = false;
  private appliedTimer?: NodeJS.Timeout;
  private lastSentAt = -Infinity;

  constructor(private readonly options: ReplicaReporterOptions) {}

  start(): void {
    this.timer = setInterval(() => this.reportNow(), this.options.intervalMs ?? 15_000);
    this.timer.unref();
    this.changed();
  }

  /** Coalesces bursts of registrations into one report. */
  changed(): void {
    if (this.closed || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.reportNow();
    }, 50);
    this.debounce.unref();
  }

  /** A snapshot or delta was applied: a client may be waiting for it, so it is reported soon (appliedSpacingMs). */
  appliedChanged(): void {
    if (this.closed || this.appliedTimer) return;
    const now = this.options.now ?? Date.now;
    const wait = this.lastSentAt + (this.options.appliedSpacingMs ?? DEFAULT_APPLIED_SPACING_MS) - now();
    if (wait <= 0) return this.reportNow();
    this.appliedTimer = setTimeout(() => {
      this.appliedTimer = undefined;
      this.reportNow();
    }, wait);
  }

  /** Reports without delay. */
  reportNow(): void {
    if (this.closed) return;
    if (this.sending) {
      this.sendAgain = true;
      return;
    }
    this.sending = (async () => {
      do {
        this.sendAgain = false;
        await this.send(this.body(), 5_000);
      } while (this.sendAgain && !this.closed);
      this.sending = undefined;
    })();
  }

  /** Stops reporting and tells the daemon this frontend is leaving (best effort, bounded). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    clearTimeout(this.appliedTimer);
    await this.sending;
    await this.send({ frontend_id: this.options.frontendId, replicas: [], leaving: true }, FAREWELL_TIMEOUT_MS);
  }

  private body(): ReplicaReport {
    const applied = this.options.applied?.();
    return { frontend_id: this.options.frontendId, replicas: this.options.replicas(), ...(applied ? { applied } : {}) };
  }

  private async send(body: ReplicaReport, timeoutMs: number): Promise<void> {
    this.lastSentAt = (this.options.now ?? Date.now)();
    await (this.options.post ?? postToManagement)(this.options, REPORT_REPLICAS_PATH, body, timeoutMs, "replica report");
  }
}
