/**
 * The live stats the query frontends report (runtime/shared/live-stats.ts), kept in memory only and
 * bounded: the last LIVE_STATS_HISTORY samples per frontend, at most LIVE_STATS_MAX_FRONTENDS
 * frontends (a new one evicts the one heard from longest ago), at most LIVE_STATS_MAX_BYTES in all
 * (the stalest frontend's oldest samples go first), and a frontend silent for the TTL is
 * forgotten, as in replicas.ts. A restart of the daemon starts the history afresh.
 */
import {
  DEFAULT_LIVE_STATS_INTERVAL_MS,
  LIVE_STATS_HISTORY,
  LIVE_STATS_MAX_BYTES,
  LIVE_STATS_MAX_FRONTENDS,
  type LiveStats,
  type LiveStatsReport,
  type LiveStatsSample,
} from "../shared/live-stats.js";

interface FrontendHistory {
  samples: Array<{ sample: LiveStatsSample; bytes: number }>;
  heardAt: number;
}

export class LiveStatsStore {
  /** Insertion order is kept as "least recently heard from" first (a report moves its frontend last). */
  private readonly frontends = new Map<string, FrontendHistory>();
  private bytes = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    private readonly limits = { history: LIVE_STATS_HISTORY, frontends: LIVE_STATS_MAX_FRONTENDS, bytes: LIVE_STATS_MAX_BYTES },
  ) {}

  report(report: LiveStatsReport): void {
    this.prune();
    const history = this.frontends.get(report.frontend_id) ?? { samples: [], heardAt: 0 };
    this.frontends.delete(report.frontend_id);
    for (const sample of report.samples) {
      const bytes = JSON.stringify(sample).length;
      history.samples.push({ sample, bytes });
      this.bytes += bytes;
    }
    this.dropOldest(history, history.samples.length - this.limits.history);
    history.heardAt = this.now();
    this.frontends.set(report.frontend_id, history);
    while (this.frontends.size > this.limits.frontends) this.forget(this.frontends.keys().next().value!);
    while (this.bytes > this.limits.bytes) {
      const [id, stalest] = this.frontends.entries().next().value!;
      this.dropOldest(stalest, 1);
      if (stalest.samples.length === 0) this.frontends.delete(id);
    }
  }

  /** A frontend that says it is leaving (replica report with `leaving`) is dropped at once. */
  forget(frontendId: string): void {
    const history = this.frontends.get(frontendId);
    if (!history) return;
    this.dropOldest(history, history.samples.length);
    this.frontends.delete(frontendId);
  }

  snapshot(): LiveStats {
    this.prune();
    const frontends = [...this.frontends].map(([frontend_id, h]) => ({ frontend_id, samples: h.samples.map((s) => s.sample) }));
    frontends.sort((a, b) => a.frontend_id.localeCompare(b.frontend_id));
    return { interval_ms: DEFAULT_LIVE_STATS_INTERVAL_MS, frontends };
  }

  private dropOldest(history: FrontendHistory, count: number): void {
    if (count <= 0) return;
    for (const { bytes } of history.samples.splice(0, count)) this.bytes -= bytes;
  }

  private prune(): void {
    const cutoff = this.now() - this.ttlMs;
    for (const [id, h] of this.frontends) if (h.heardAt < cutoff) this.forget(id);
  }
}
