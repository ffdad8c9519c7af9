/**
 * Counts what the shadow copies did (shadow-mirror.ts): Prometheus series on the frontend's registry
 * (docs/metrics.md), and per live stats interval the counts and latency histograms that go to the
 * daemon in the sample's `shadows` (runtime/shared/shadow.ts), which sums them over frontends for
 * `clipper rollout status`. Memory: one entry per shadow setting seen in the interval.
 */
import { Counter, Histogram, type Registry } from "prom-client";
import {
  emptyCounts, emptyHistogram, latencyBucket, type ShadowCounts, type ShadowOutcome, type ShadowSample,
} from "../shared/shadow.js";
import { MetricNames } from "./metric-names.js";
import { LATENCY_BUCKETS } from "./metrics.js";
import type { ModelRef } from "./model-caller.js";
import type { ShadowSink } from "./shadow-mirror.js";

interface Window {
  model: ModelRef;
  sinceRevision: number;
  counts: ShadowCounts;
  shadowLatency: number[];
  liveLatency: number[];
}

export class ShadowRecorder implements ShadowSink {
  private windows = new Map<string, Window>();
  private readonly queries: Counter<"model" | "version" | "outcome">;
  private readonly latency: Histogram<"model" | "version" | "role">;

  constructor(
    registry: Registry,
    /** A copy answering after its version was deleted counts under UNREGISTERED (metric-names.ts). */
    private readonly names: MetricNames = MetricNames.any(),
  ) {
    // Both sum across --workers N (the default aggregator): each worker mirrors its own queries.
    const registers = [registry];
    this.queries = new Counter({
      name: "clipper_shadow_queries_total",
      help: "Copies of live queries sent to a shadow version, by outcome (agree, disagree, error, timeout, skipped: over the in-flight bound)",
      labelNames: ["model", "version", "outcome"], registers,
    });
    this.latency = new Histogram({
      name: "clipper_shadow_latency_seconds",
      help: "Latency of a shadow version's answers (role=shadow) and of the live answers they were copied from (role=live)",
      labelNames: ["model", "version", "role"], buckets: LATENCY_BUCKETS, registers,
    });
  }

  record(shadow: ModelRef, sinceRevision: number, outcome: ShadowOutcome, latency?: { shadowMs: number; liveMs: number }): void {
    const labels = this.names.versionLabels(shadow.name, shadow.version);
    this.queries.inc({ ...labels, outcome });
    // Names have no NUL: the key cannot be confused between two models or versions.
    const key = `${shadow.name}\0${shadow.version}\0${sinceRevision}`;
    let w = this.windows.get(key);
    if (!w) {
      w = { model: shadow, sinceRevision, counts: emptyCounts(), shadowLatency: emptyHistogram(), liveLatency: emptyHistogram() };
      this.windows.set(key, w);
    }
    w.counts[outcome]++;
    if (!latency) return;
    w.shadowLatency[latencyBucket(latency.shadowMs)]!++;
    w.liveLatency[latencyBucket(latency.liveMs)]!++;
    this.latency.observe({ ...labels, role: "shadow" }, latency.shadowMs / 1000);
    this.latency.observe({ ...labels, role: "live" }, latency.liveMs / 1000);
  }

  /** Closes the interval: what it saw, per shadow setting, and starts the next. */
  take(): ShadowSample[] {
    const samples = [...this.windows.values()].map((w) => ({
      model_name: w.model.name, model_version: w.model.version, since_revision: w.sinceRevision,
      counts: w.counts, shadow_latency: w.shadowLatency, live_latency: w.liveLatency,
    }));
    this.windows = new Map();
    return samples;
  }
}
