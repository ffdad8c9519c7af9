/** The query frontend's Prometheus metrics (one registry per frontend, so tests can run several). */
import { Counter, Gauge, Histogram, collectDefaultMetrics } from "prom-client";
import type { BatchSendDetail, DispatchObserver } from "./dispatcher.js";
import type { PolicyMetrics } from "./policies/policy.js";
import type { LiveStatsSink } from "./live-stats-collector.js";
import { DeferredCounter } from "./deferred-counter.js";
import { DeferredHistogram } from "./deferred-histogram.js";
import { MetricNames, type RemovedNames, SweepingRegistry } from "./metric-names.js";

/**
 * `overloaded`: shed at admission, the query could not be answered within the SLO (admission.ts).
 * `dropped_late`: left out of a batch at dispatch, the measured batch latency would bring it back
 * past its deadline (dispatcher.ts); `slo_missed` is only for a deadline that passed while waiting.
 * `starting_from_zero`: the version was scaled to zero and no replica connected by the deadline
 * (model-caller.ts); `no_connected_models` is for a version at zero that does not scale from zero.
 */
export type DefaultReason = "no_connected_models" | "slo_missed" | "model_error" | "overloaded" | "dropped_late"
  /** A combining policy's confidence was below the application's threshold (docs/policies.md). */
  | "unsure" | "starting_from_zero";

/** A sweep for deleted names waits this many times the previous one's duration: at most 1% of the time. */
const SWEEP_SPACING = 100;

// Fine below 25 ms, where a low-latency serving path lives, coarse above.
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** From 50 µs: a delta's apply is well under a millisecond; a snapshot of 10,000 applications takes tens. */
const CONFIG_APPLY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

type Counts = { inc(): void };
type Observes = { observe(v: number): void };

export class FrontendMetrics implements DispatchObserver, PolicyMetrics {
  private readonly perApp = new Map<string, { requests: Counts; latency: Observes }>();
  private readonly perModel = new Map<string, { batchSize: Observes; queueWait: Observes }>();
  /** Never shows a name the configuration does not hold (metric-names.ts). */
  readonly registry: SweepingRegistry;
  private pendingSweep?: Promise<void>;
  /** performance.now() before which no sweep for deleted names starts (forget). */
  private nextSweepAt = 0;
  private readonly requests: DeferredCounter<"app">;
  private readonly latency: DeferredHistogram<"app">;
  private readonly defaults: Counter<"app" | "reason">;
  private readonly batchSize: Histogram<"model">;
  private readonly batchLatency: Histogram<"model">;
  private readonly requeuedQueries: Counter<"model">;
  private readonly drainedReplicas: Counter<"model">;
  readonly queueDepth: Gauge<"model">;
  readonly replicas: Gauge<"model">;
  private readonly queueWait: Histogram<"model">;
  private readonly batches: Counter<"model" | "reason">;
  private readonly shedQueries: Counter<"model">;
  private readonly droppedLateQueries: Counter<"model">;
  readonly batchCap: Gauge<"model" | "replica">;
  /** The live stats feed hears about queries and batches too (live-stats-collector.ts). */
  live?: Pick<LiveStatsSink, "query" | "batchSent">;

  constructor(sample: {
    queueDepths(): Map<string, number>;
    replicaCounts(): Map<string, number>;
    batchCaps?(): Array<{ model: string; replica: string; cap: number }>;
    /** Application-wide bandit weights (selection policies). */
    policyWeights?(): Array<{ app: string; model: string; weight: number }>;
  },
  /** Label values come only from these names; others count under UNREGISTERED (docs/metrics.md). */
  private readonly names: MetricNames = MetricNames.any()) {
    this.registry = new SweepingRegistry(names);
    // With --workers N the primary merges the workers' registries (cluster-metrics.ts), each metric
    // by its `aggregator`: what one worker counts alone (queries, batches, queues) is summed, the
    // default; what every worker sees alike (replicas connect to each) takes the max, not N times it.
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requests = new DeferredCounter({ name: "clipper_app_requests_total", help: "Queries received per application", labelNames: ["app"], registers });
    this.latency = new DeferredHistogram({
      name: "clipper_app_request_latency_seconds", help: "End-to-end query latency per application",
      labelNames: ["app"], buckets: LATENCY_BUCKETS, registers,
    });
    this.defaults = new Counter({
      name: "clipper_app_default_outputs_total", help: "Queries answered with the default output, by reason",
      labelNames: ["app", "reason"], registers,
    });
    this.batchSize = new Histogram({
      name: "clipper_model_batch_size", help: "Queries per batch sent to a replica", labelNames: ["model"],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers,
    });
    this.batchLatency = new Histogram({
      name: "clipper_model_batch_latency_seconds", help: "Time from sending a batch to its response", labelNames: ["model"],
      buckets: LATENCY_BUCKETS, registers,
    });
    this.requeuedQueries = new Counter({
      name: "clipper_model_requeued_queries_total", help: "Queries re-queued after their replica was lost", labelNames: ["model"], registers,
    });
    this.drainedReplicas = new Counter({
      name: "clipper_model_drained_replicas_total", help: "Replicas that stopped by draining: no new batch after they asked, their last one answered by them",
      labelNames: ["model"], registers, aggregator: "max", // a replica drains from every worker
    });
    this.queueDepth = new Gauge({
      name: "clipper_model_queue_depth", help: "Queries waiting in a model version's queue", labelNames: ["model"], registers, aggregator: "sum",
      collect() {
        this.reset();
        for (const [model, depth] of foldUnregistered(sample.queueDepths(), names)) this.set({ model }, depth);
      },
    });
    this.replicas = new Gauge({
      name: "clipper_model_replicas", help: "Connected replicas per model version", labelNames: ["model"], registers, aggregator: "max",
      collect() {
        this.reset();
        for (const [model, count] of foldUnregistered(sample.replicaCounts(), names)) this.set({ model }, count);
      },
    });
    // Batching and admission (dispatcher.ts, batch-controller.ts, admission.ts).
    this.queueWait = new Histogram({
      name: "clipper_model_queue_wait_seconds", help: "Time a query waited in its model version's queue before its batch was sent",
      labelNames: ["model"], buckets: LATENCY_BUCKETS, registers,
    });
    this.batches = new Counter({
      name: "clipper_model_batches_total", help: "Batches sent to replicas, by why they were sent (full, wait_expired, queue_drained)",
      labelNames: ["model", "reason"], registers,
    });
    this.shedQueries = new Counter({
      name: "clipper_model_shed_queries_total", help: "Queries refused at admission: they could not be answered by their deadline",
      labelNames: ["model"], registers,
    });
    this.droppedLateQueries = new Counter({
      name: "clipper_model_dropped_late_queries_total",
      help: "Queries left out of a batch at dispatch: the measured batch latency would bring them back past their deadline",
      labelNames: ["model"], registers,
    });
    this.batchCap = new Gauge({
      name: "clipper_model_batch_cap", help: "Current batch size cap per replica (adaptive, or the model's fixed batch size)",
      // Each worker adapts its own cap for a replica: merged, their mean.
      labelNames: ["model", "replica"], registers, aggregator: "average",
      collect() {
        this.reset();
        // A replica of a version the configuration does not hold has no cap series: a cap per replica
        // under one shared label would be neither bounded nor meaningful.
        for (const { model, replica, cap } of sample.batchCaps?.() ?? []) {
          if (names.keyKnown(model)) this.set({ model, replica }, cap);
        }
      },
    });
    this.policySeries(sample);
    this.configApply = new Histogram({
      name: "clipper_frontend_config_apply_cpu_seconds",
      help: "CPU time (user + system) this frontend spent reading and applying one configuration line of the watch stream, by kind (snapshot, delta)",
      labelNames: ["kind"], buckets: CONFIG_APPLY_BUCKETS, registers,
    });
    this.configRevision = new Gauge({
      name: "clipper_frontend_config_revision", help: "The configuration revision this frontend has applied",
      // Merged over workers: the revision every worker has applied.
      registers, aggregator: "min",
    });
  }

  private readonly configApply: Histogram<"kind">;
  private readonly configRevision: Gauge;

  /** A snapshot or delta of the watch stream was applied, at this CPU cost. */
  configApplied(kind: "snapshot" | "delta", cpuSeconds: number, revision: number): void {
    this.configApply.observe({ kind }, cpuSeconds);
    this.configRevision.set(revision);
  }

  // Selection policies (docs/policies.md).
  private policyMetrics?: {
    choices: Counter<"app" | "policy" | "model">;
    canary: Counter<"app" | "model" | "version" | "outcome">;
    canaryLatency: Histogram<"app" | "model" | "version">;
  };

  private policySeries(sample: { policyWeights?(): Array<{ app: string; model: string; weight: number }> }): void {
    const registers = [this.registry];
    const names = this.names;
    this.policyMetrics = {
      choices: new Counter({
        name: "clipper_policy_choices_total", help: "Models a selection policy used for an answer (chosen, or combined)",
        labelNames: ["app", "policy", "model"], registers,
      }),
      canary: new Counter({
        name: "clipper_canary_queries_total", help: "Queries a canary routed to each version, by outcome (output or default)",
        labelNames: ["app", "model", "version", "outcome"], registers,
      }),
      canaryLatency: new Histogram({
        name: "clipper_canary_latency_seconds", help: "Model latency of queries a canary routed to each version",
        labelNames: ["app", "model", "version"], buckets: LATENCY_BUCKETS, registers,
      }),
    };
    new Gauge({
      name: "clipper_policy_weight", help: "Application-wide learned weight of each linked model (exp3, exp4; normalized, largest 1)",
      // Each worker learns from the feedback it takes and syncs through the daemon: merged, their mean.
      labelNames: ["app", "model"], registers, aggregator: "average",
      collect() {
        this.reset();
        for (const { app, model, weight } of sample.policyWeights?.() ?? []) {
          if (names.appKnown(app) && names.modelKnown(model)) this.set({ app, model }, weight);
        }
      },
    });
  }

  policyChoice(app: string, policy: string, model: string): void {
    this.policyMetrics?.choices.inc({ app: this.names.app(app), policy, model: this.names.model(model) });
  }

  canaryQuery(app: string, model: string, version: string, outcome: "output" | "default", seconds: number): void {
    const labels = { app: this.names.app(app), ...this.names.versionLabels(model, version) };
    this.policyMetrics?.canary.inc({ ...labels, outcome });
    this.policyMetrics?.canaryLatency.observe(labels, seconds);
  }

  /**
   * Drops the series of deleted names: the bound children now, the rest of the registry in a sweep
   * that reads every series, so it is paced: it starts no sooner than SWEEP_SPACING times the last
   * one's duration after it, and the deletions meanwhile share it (a delete storm at thousands of
   * applications must not cost a full sweep per change). The frontend calls it with what a
   * configuration change removed (removedNames in metric-names.ts); the promise settles once the
   * sweep ran. Until then a scrape's own sweep hides them (namesRemoved).
   */
  forget(removed: RemovedNames): Promise<void> {
    this.registry.namesRemoved();
    for (const app of removed.apps) {
      this.perApp.delete(app);
      this.requests.forget(app);
      this.latency.forget(app);
    }
    for (const key of removed.versions) this.perModel.delete(key);
    this.pendingSweep ??= new Promise<void>((resolve) => {
      const run = async () => {
        this.pendingSweep = undefined;
        const started = performance.now();
        try {
          await this.registry.sweep();
        } finally {
          this.nextSweepAt = performance.now() + SWEEP_SPACING * (performance.now() - started);
          resolve();
        }
      };
      setTimeout(run, Math.max(0, this.nextSweepAt - performance.now())).unref();
    });
    return this.pendingSweep;
  }

  /**
   * Per-application series, bound once: saves building and validating a label object per query.
   * The request count and the latency are DeferredCounter and DeferredHistogram: no label hashing
   * per query, as prom-client (15) does on every inc and observe of a bound child.
   */
  private appSeries(app: string): { requests: Counts; latency: Observes } {
    let series = this.perApp.get(app);
    if (!series) {
      // Only registered names are bound (and kept); UNREGISTERED is no valid name, so no app has its key.
      const label = this.names.app(app);
      series = this.perApp.get(label);
      if (!series) {
        series = { requests: this.requests.child(label, { app: label }), latency: this.latency.child(label, { app: label }) };
        this.perApp.set(label, series);
      }
    }
    return series;
  }

  private modelSeries(model: string): { batchSize: Observes; queueWait: Observes } {
    let series = this.perModel.get(model);
    if (!series) {
      const label = this.names.version(model);
      series = this.perModel.get(label);
      if (!series) {
        series = { batchSize: this.batchSize.labels({ model: label }), queueWait: this.queueWait.labels({ model: label }) };
        this.perModel.set(label, series);
      }
    }
    return series;
  }

  /** One answered query: by a model, from the cache (`cached`), or the default output with its reason. */
  query(app: string, seconds: number, defaultReason?: DefaultReason, cached = false): void {
    const series = this.appSeries(app);
    series.requests.inc();
    series.latency.observe(seconds);
    if (defaultReason) this.defaults.inc({ app: this.names.app(app), reason: defaultReason });
    this.live?.query(app, seconds, defaultReason, cached);
  }

  batchSent(model: string, size: number, detail?: BatchSendDetail): void {
    const series = this.modelSeries(model);
    series.batchSize.observe(size);
    if (!detail) return;
    this.live?.batchSent(model, size, detail.replicaId);
    this.batches.inc({ model: this.names.version(model), reason: detail.reason });
    for (const seconds of detail.queueWaitSeconds) series.queueWait.observe(seconds);
  }

  shed(model: string): void {
    this.shedQueries.inc({ model: this.names.version(model) });
  }

  dropped(model: string, count: number): void {
    this.droppedLateQueries.inc({ model: this.names.version(model) }, count);
  }

  batchDone(model: string, seconds: number): void {
    this.batchLatency.observe({ model: this.names.version(model) }, seconds);
  }

  requeued(model: string, count: number): void {
    this.requeuedQueries.inc({ model: this.names.version(model) }, count);
  }

  drained(model: string): void {
    // A replica of any name may drain: one bounded label for those the configuration does not hold.
    this.drainedReplicas.inc({ model: this.names.version(model) });
  }
}

/** Per version key, with the versions the configuration does not hold summed under UNREGISTERED. */
function foldUnregistered(perVersion: ReadonlyMap<string, number>, names: MetricNames): Map<string, number> {
  const folded = new Map<string, number>();
  for (const [key, value] of perVersion) {
    const label = names.version(key);
    folded.set(label, (folded.get(label) ?? 0) + value);
  }
  return folded;
}
