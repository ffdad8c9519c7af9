/**
 * The live stats the query frontends report (runtime/shared/live-stats.ts), kept in memory only and
 * bounded: the last LIVE_STATS_HISTORY samples per frontend, at most LIVE_STATS_MAX_FRONTENDS
 * frontends (a new one evicts the one heard from longest ago), and a frontend silent for the TTL
 * is forgotten, as in replicas.ts. A restart of the daemon starts the history afresh.
 */
import {
  DEFAULT_LIVE_STATS_INTERVAL_MS,
  LIVE_STATS_HISTORY,
  LIVE_STATS_MAX_FRONTENDS,
  type LiveStats,
  type LiveStatsReport,
  type LiveStatsSample,
} from "../shared/live-stats.js";

interface FrontendHistory {
  samples: LiveStatsSample[];
  heardAt: number;
}

export class LiveStatsStore {
  /** Insertion order is kept as "least recently heard from" first (a report moves its frontend last). */
  private readonly frontends = new Map<string, FrontendHistory>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    private readonly limits = { history: LIVE_STATS_HISTORY, frontends: LIVE_STATS_MAX_FRONTENDS },
  ) {}

  report(report: LiveStatsReport): void {
    this.prune();
    const history = this.frontends.get(report.frontend_id) ?? { samples: [], heardAt: 0 };
    this.frontends.delete(report.frontend_id);
    history.samples.push(...report.samples);
    if (history.samples.length > this.limits.history) history.samples.splice(0, history.samples.length - this.limits.history);
    history.heardAt = this.now();
    this.frontends.set(report.frontend_id, history);
    while (this.frontends.size > this.limits.frontends) this.frontends.delete(this.frontends.keys().next().value!);
  }

  /** A frontend that says it is leaving (replica report with `leaving`) is dropped at once. */
  forget(frontendId: string): void {
    this.frontends.delete(frontendId);
  }

  snapshot(): LiveStats {
    this.prune();
    const frontends = [...this.frontends].map(([frontend_id, h]) => ({ frontend_id, samples: [...h.samples] }));
    frontends.sort((a, b) => a.frontend_id.localeCompare(b.frontend_id));
    return { interval_ms: DEFAULT_LIVE_STATS_INTERVAL_MS, frontends };
  }

  private prune(): void {
    const cutoff = this.now() - this.ttlMs;
    for (const [id, h] of this.frontends) if (h.heardAt < cutoff) this.frontends.delete(id);
  }
}
