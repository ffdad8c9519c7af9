/**
 * The daemon's Prometheus metrics of autoscaling (`GET /metrics`, docs/autoscaling.md), derived
 * from what the daemon itself holds: every event as its log records it (decisions of the loop,
 * applied manual requests) and the configured bounds in the state. Nothing is scraped.
 *
 * Cardinality stays bounded by the state: a version that no longer exists loses its series at the
 * next collection (its counts go with it), so a model deployed and deleted in a loop does not grow
 * the daemon. Names are user input: they are label values only (prom-client escapes them) and the
 * per-version records are keyed in a Map, never an object.
 */
import { Counter, Gauge, Registry } from "prom-client";
import { own } from "../shared/dict.js";
import type { AutoscaleEvent } from "../shared/autoscaling.js";
import type { ClusterState } from "../shared/state.js";

type Direction = "up" | "down" | "manual";

interface VersionRecord {
  model: string;
  version: string;
  decisions: Record<Direction, number>;
  desired?: number;
  /** Seconds since the epoch of the last decision. */
  lastAt?: number;
  /** Seconds the last first replica after a scale from zero took to connect. */
  firstReplicaSeconds?: number;
}

export class AutoscalerMetrics {
  readonly registry = new Registry();
  private readonly versions = new Map<string, VersionRecord>();

  constructor(
    /** The state at collection time (bounds, and which versions still exist). */
    state: () => ClusterState,
    /** Manual requests not yet applied. */
    pendingRequests: () => number,
  ) {
    const registers = [this.registry];
    const labelNames = ["model", "version"] as const;
    // Series of versions that are gone are dropped before every collection.
    const records = () => this.current(state());
    new Counter({
      name: "clipper_autoscaler_decisions_total",
      help: "Replica count changes the autoscaler made (up, down) and manual requests it applied (manual), per model version",
      labelNames: ["model", "version", "direction"], registers,
      collect() {
        this.reset();
        for (const r of records()) {
          for (const direction of ["up", "down", "manual"] as const) {
            if (r.decisions[direction] > 0) this.inc({ model: r.model, version: r.version, direction }, r.decisions[direction]);
          }
        }
      },
    });
    // One gauge per model version from a field of its record; versions without a value have no series.
    const perVersion = (name: string, help: string, value: (r: VersionRecord) => number | undefined) => new Gauge({
      name, help, labelNames, registers,
      collect() {
        this.reset();
        for (const r of records()) {
          const v = value(r);
          if (v !== undefined) this.set({ model: r.model, version: r.version }, v);
        }
      },
    });
    perVersion("clipper_autoscaler_desired_replicas", "Replica count of the last decision (or applied manual request) per model version", (r) => r.desired);
    perVersion("clipper_autoscaler_last_decision_timestamp_seconds", "When the last decision (or applied manual request) was recorded", (r) => r.lastAt);
    perVersion("clipper_autoscaler_first_replica_start_seconds",
      "How long the last first replica after a scale from zero took to connect, per model version", (r) => r.firstReplicaSeconds);
    for (const [bound, key] of [["min", "min_replicas"], ["max", "max_replicas"]] as const) {
      new Gauge({
        name: `clipper_autoscaler_${bound}_replicas`, help: `Configured ${bound}imum replicas of each autoscaled model version`,
        labelNames, registers,
        collect() {
          this.reset();
          for (const [model, versions] of Object.entries(state().autoscaling ?? {})) {
            for (const [version, config] of Object.entries(versions)) this.set({ model, version }, config[key]);
          }
        },
      });
    }
    new Gauge({
      name: "clipper_autoscaler_pending_scale_requests", help: "Replica counts asked for through the admin API and not yet applied",
      registers,
      collect() {
        this.set(pendingRequests());
      },
    });
  }

  /**
   * Counts an event the daemon's log recorded (a decision, an applied manual request: one with
   * `from`, or a first replica's start time) and returns it.
   */
  observe(event: AutoscaleEvent): AutoscaleEvent {
    if (event.kind === "first_replica" && event.start_ms !== undefined) {
      this.record(event).firstReplicaSeconds = event.start_ms / 1000;
      return event;
    }
    const direction: Direction | undefined = event.kind === "scale_up" ? "up"
      : event.kind === "scale_down" ? "down"
        : event.kind === "manual" && event.from !== undefined ? "manual" : undefined;
    if (direction === undefined || event.to === undefined) return event;
    const r = this.record(event);
    r.decisions[direction]++;
    r.desired = event.to;
    r.lastAt = Date.parse(event.at) / 1000;
    return event;
  }

  private record(event: AutoscaleEvent): VersionRecord {
    const key = JSON.stringify([event.model_name, event.model_version]);
    let r = this.versions.get(key);
    if (!r) {
      r = { model: event.model_name, version: event.model_version, decisions: { up: 0, down: 0, manual: 0 } };
      this.versions.set(key, r);
    }
    return r;
  }

  /** Prometheus' text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The records of versions that still exist; the others are forgotten. */
  private current(state: ClusterState): VersionRecord[] {
    for (const [key, r] of this.versions) {
      if (!own(own(state.models, r.model)?.versions, r.version)) this.versions.delete(key);
    }
    return [...this.versions.values()];
  }
}
