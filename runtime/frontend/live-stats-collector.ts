/**
 * Gathers the live stats feed's samples (runtime/shared/live-stats.ts) in the query frontend: the
 * query path and the dispatcher tell it what happens, and `take()` closes the current interval
 * into a sample and starts the next. Counts are per interval, gauges (queue depth, replicas, caps)
 * are read when the sample is taken. Memory is bounded: latencies kept per application and
 * interval are a fixed-size uniform sample (reservoir), whatever the load.
 */
import type { AppSample, LiveStatsSample, VersionSample } from "../shared/live-stats.js";
import type { ShadowSample } from "../shared/shadow.js";
import type { DefaultReason } from "./metrics.js";

/** Latencies kept per application and interval for its percentiles. */
const RESERVOIR_SIZE = 2_048;

export interface LiveStatsSources {
  /** Each model version's queue and replicas now (Dispatcher.liveVersions). */
  versions(): Array<{ key: string; queueDepth: number; replicas: Array<{ replicaId: number; cap: number }> }>;
  /** An application's latency SLO in ms, null if unknown. */
  sloMs(app: string): number | null;
  /** The shadow copies' figures of the interval, closing it (ShadowRecorder.take). */
  shadows?(): ShadowSample[];
}

/** What the query path reports: one answered query, and prediction-cache lookups. */
export interface LiveStatsSink {
  /** `cached`: a model's answer from the prediction cache (no model call). */
  query(app: string, seconds: number, defaultReason?: DefaultReason, cached?: boolean): void;
  batchSent(versionKey: string, size: number, replicaId: number): void;
  cacheLookup(versionKey: string, hit: boolean): void;
}

interface AppWindow {
  queries: number;
  latenciesMs: number[];
  model: number;
  cache: number;
  shed: number;
  defaults: Map<string, number>;
}

export class LiveStatsCollector implements LiveStatsSink {
  private apps = new Map<string, AppWindow>();
  /** Per version key, per replica id: batches sent and queries in them. */
  private batches = new Map<string, Map<number, { batches: number; queries: number }>>();
  private cache = new Map<string, { hits: number; misses: number }>();
  private windowStart: number;

  constructor(
    private readonly sources: LiveStatsSources,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    this.windowStart = now();
  }

  query(app: string, seconds: number, defaultReason?: DefaultReason, cached = false): void {
    let w = this.apps.get(app);
    if (!w) this.apps.set(app, (w = { queries: 0, latenciesMs: [], model: 0, cache: 0, shed: 0, defaults: new Map() }));
    w.queries++;
    // Reservoir sampling: every latency of the interval has the same chance to be kept.
    if (w.latenciesMs.length < RESERVOIR_SIZE) w.latenciesMs.push(seconds * 1000);
    else {
      const slot = Math.floor(this.random() * w.queries);
      if (slot < RESERVOIR_SIZE) w.latenciesMs[slot] = seconds * 1000;
    }
    if (defaultReason === undefined) {
      if (cached) w.cache++;
      else w.model++;
    }
    else if (defaultReason === "overloaded") w.shed++;
    else w.defaults.set(defaultReason, (w.defaults.get(defaultReason) ?? 0) + 1);
  }

  batchSent(versionKey: string, size: number, replicaId: number): void {
    let replicas = this.batches.get(versionKey);
    if (!replicas) this.batches.set(versionKey, (replicas = new Map()));
    const r = replicas.get(replicaId) ?? { batches: 0, queries: 0 };
    r.batches++;
    r.queries += size;
    replicas.set(replicaId, r);
  }

  cacheLookup(versionKey: string, hit: boolean): void {
    let c = this.cache.get(versionKey);
    if (!c) this.cache.set(versionKey, (c = { hits: 0, misses: 0 }));
    if (hit) c.hits++;
    else c.misses++;
  }

  /** Closes the current interval into a sample and starts the next one. */
  take(): LiveStatsSample {
    const at = this.now();
    const intervalMs = Math.max(1, at - this.windowStart);
    const apps: AppSample[] = [...this.apps].map(([app, w]) => {
      const sorted = w.latenciesMs.sort((a, b) => a - b);
      return {
        app,
        requests_per_s: (w.queries * 1000) / intervalMs,
        p50_ms: percentile(sorted, 0.5),
        p99_ms: percentile(sorted, 0.99),
        slo_ms: this.sources.sloMs(app),
        answers: {
          model: w.model, cache: w.cache, shed: w.shed, default: [...w.defaults].map(([reason, count]) => ({ reason, count })),
        },
      };
    });
    const versions: VersionSample[] = this.sources.versions().map((v) => {
      const sent = this.batches.get(v.key);
      const cache = this.cache.get(v.key);
      const colon = v.key.indexOf(":"); // model names have no colon (shared/names.ts)
      return {
        model_name: v.key.slice(0, colon),
        model_version: v.key.slice(colon + 1),
        queue_depth: v.queueDepth,
        replicas: v.replicas.map(({ replicaId, cap }) => {
          const r = sent?.get(replicaId);
          return { replica_id: replicaId, batch_size: r ? r.queries / r.batches : null, batch_cap: cap };
        }),
        cache_hits: cache?.hits ?? 0,
        cache_misses: cache?.misses ?? 0,
      };
    });
    this.apps = new Map();
    this.batches = new Map();
    this.cache = new Map();
    this.windowStart = at;
    const shadows = this.sources.shadows?.() ?? [];
    return { at, interval_ms: intervalMs, apps, versions, ...(shadows.length > 0 ? { shadows } : {}) };
  }
}

/** Nearest-rank percentile of sorted values; null with none. */
export function percentile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}
