/** Prometheus series of the prediction cache, registered on the frontend's registry (docs/metrics.md). */
import { Counter, Gauge, type Registry } from "prom-client";
import type { CacheObserver } from "./prediction-cache.js";
import { type CountChild, DeferredCounter } from "./deferred-counter.js";
import type { LiveStatsSink } from "./live-stats-collector.js";
import { MetricNames } from "./metric-names.js";

export interface CacheSample {
  bytes: number;
  entries: number;
  maxBytes: number;
}

export class CacheMetrics implements CacheObserver {
  private readonly perModel = new Map<string, { hits: CountChild; misses: CountChild }>();
  private readonly hits: DeferredCounter<"model">;
  private readonly misses: DeferredCounter<"model">;
  private readonly joins: Counter<"model">;
  private readonly evictions: Counter<"model">;
  private readonly invalidations: Counter<"model">;

  constructor(
    registry: Registry,
    sample: () => CacheSample,
    private readonly live?: Pick<LiveStatsSink, "cacheLookup">,
    /** Label values come only from these names (metric-names.ts). */
    private readonly names: MetricNames = MetricNames.any(),
  ) {
    // Every series sums across --workers N (prom-client's default aggregator): each worker holds its own cache.
    const registers = [registry];
    this.hits = new DeferredCounter({
      name: "clipper_cache_hits_total", help: "Queries answered from the prediction cache, per model version",
      labelNames: ["model"], registers,
    });
    this.misses = new DeferredCounter({
      name: "clipper_cache_misses_total", help: "Queries with no cached answer and no identical call in flight (they ask the model), per model version",
      labelNames: ["model"], registers,
    });
    this.joins = new Counter({
      name: "clipper_cache_inflight_joins_total", help: "Queries that joined an identical model call in flight, per model version",
      labelNames: ["model"], registers,
    });
    this.evictions = new Counter({
      name: "clipper_cache_evictions_total", help: "Entries evicted (least recently used) to stay within the byte bound",
      labelNames: ["model"], registers,
    });
    this.invalidations = new Counter({
      name: "clipper_cache_invalidated_entries_total", help: "Entries dropped because their model version was deleted or registered again",
      labelNames: ["model"], registers,
    });
    new Gauge({
      name: "clipper_cache_bytes", help: "Estimated bytes held by the prediction cache", registers,
      collect() {
        this.set(sample().bytes);
      },
    });
    new Gauge({
      name: "clipper_cache_entries", help: "Entries in the prediction cache", registers,
      collect() {
        this.set(sample().entries);
      },
    });
    new Gauge({
      name: "clipper_cache_max_bytes", help: "The prediction cache's byte bound (--cache-bytes)", registers,
      collect() {
        this.set(sample().maxBytes);
      },
    });
  }

  hit(model: string): void {
    this.lookups(model).hits.inc();
    this.live?.cacheLookup(model, true);
  }

  miss(model: string): void {
    this.lookups(model).misses.inc();
    this.live?.cacheLookup(model, false);
  }

  /** A model version's hit and miss series, bound once (a hit is counted per query: DeferredCounter). */
  private lookups(model: string): { hits: CountChild; misses: CountChild } {
    let series = this.perModel.get(model);
    if (!series) {
      const label = this.names.version(model);
      series = this.perModel.get(label);
      if (!series) {
        series = { hits: this.hits.child(label, { model: label }), misses: this.misses.child(label, { model: label }) };
        this.perModel.set(label, series);
      }
    }
    return series;
  }

  /** Drops the bound series of deleted versions (`name:version` keys); the registry's sweep does the rest. */
  forget(versions: readonly string[]): void {
    for (const key of versions) {
      this.perModel.delete(key);
      this.hits.forget(key);
      this.misses.forget(key);
    }
  }

  joined(model: string): void {
    this.joins.inc({ model: this.names.version(model) });
  }

  evicted(model: string): void {
    this.evictions.inc({ model: this.names.version(model) });
  }

  invalidated(model: string, entries: number): void {
    this.invalidations.inc({ model: this.names.version(model) }, entries);
  }
}
