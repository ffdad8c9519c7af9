/** The query frontend's Prometheus metrics (one registry per frontend, so tests can run several). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { DispatchObserver } from "./dispatcher.js";

export type DefaultReason = "no_connected_models" | "slo_missed" | "model_error";

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class FrontendMetrics implements DispatchObserver {
  readonly registry = new Registry();
  private readonly requests: Counter<"app">;
  private readonly latency: Histogram<"app">;
  private readonly defaults: Counter<"app" | "reason">;
  private readonly batchSize: Histogram<"model">;
  private readonly batchLatency: Histogram<"model">;
  private readonly requeuedQueries: Counter<"model">;
  readonly queueDepth: Gauge<"model">;
  readonly replicas: Gauge<"model">;

  constructor(sample: { queueDepths(): Map<string, number>; replicaCounts(): Map<string, number> }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({ name: "clipper_app_requests_total", help: "Queries received per application", labelNames: ["app"], registers });
    this.latency = new Histogram({
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
    this.queueDepth = new Gauge({
      name: "clipper_model_queue_depth", help: "Queries waiting in a model version's queue", labelNames: ["model"], registers,
      collect() {
        this.reset();
        for (const [model, depth] of sample.queueDepths()) this.set({ model }, depth);
      },
    });
    this.replicas = new Gauge({
      name: "clipper_model_replicas", help: "Connected replicas per model version", labelNames: ["model"], registers,
      collect() {
        this.reset();
        for (const [model, count] of sample.replicaCounts()) this.set({ model }, count);
      },
    });
  }

  query(app: string, seconds: number, defaultReason?: DefaultReason): void {
    this.requests.inc({ app });
    this.latency.observe({ app }, seconds);
    if (defaultReason) this.defaults.inc({ app, reason: defaultReason });
  }

  batchSent(model: string, size: number): void {
    this.batchSize.observe({ model }, size);
  }

  batchDone(model: string, seconds: number): void {
    this.batchLatency.observe({ model }, seconds);
  }

  requeued(model: string, count: number): void {
    this.requeuedQueries.inc({ model }, count);
  }
}
