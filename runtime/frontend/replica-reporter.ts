/**
 * Tells the management daemon which replicas this frontend has connected, so that Clipper's
 * get_all_containers answers from live data. Reports on change (debounced) and periodically, since
 * the daemon forgets a frontend that stops reporting.
 */
import type { Logger } from "pino";
import { REPORT_REPLICAS_PATH, type ReplicaRecord } from "../shared/state.js";

export interface ReplicaReporterOptions {
  managementUrl: string;
  token?: string;
  frontendId: string;
  log: Logger;
  replicas(): ReplicaRecord[];
  intervalMs?: number;
}

export class ReplicaReporter {
  private timer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: ReplicaReporterOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.report(), this.options.intervalMs ?? 15_000);
    this.timer.unref();
    this.changed();
  }

  /** Coalesces bursts of registrations into one report. */
  changed(): void {
    if (this.closed || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.report();
    }, 50);
    this.debounce.unref();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.debounce);
  }

  private async report(): Promise<void> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    try {
      const res = await fetch(new URL(REPORT_REPLICAS_PATH, this.options.managementUrl), {
        method: "POST",
        headers,
        body: JSON.stringify({ frontend_id: this.options.frontendId, replicas: this.options.replicas() }),
        signal: AbortSignal.timeout(5_000),
      });
      if (!res.ok) this.options.log.warn({ status: res.status, body: await res.text() }, "replica report refused");
    } catch (err) {
      // The daemon may be restarting: the periodic report catches up.
      this.options.log.debug({ err }, "replica report failed");
    }
  }
}
