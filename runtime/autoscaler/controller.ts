/**
 * The autoscaling decision for one model version, as pure logic over time: it is handed the
 * version's signals (each with the time they were taken, on whatever clock the caller runs) and its
 * configuration, and answers the replica count to move to, with the reason, or nothing. No timers,
 * no I/O: whoever runs it samples the signals, acts through the ContainerManager and records the
 * decision as an event (docs/autoscaling.md).
 *
 * The rules, and why:
 * - Up fast: overload (too many queries waiting per replica, queries answered by the default output
 *   or shed, or p99 above the SLO) that lasts `overloadSustainMs` scales up, by as many replicas as
 *   the queue says are needed at once, not one at a time.
 * - Down slowly: only after the configured scale-down delay of low load, one replica at a time,
 *   `downStepMs` apart, and never within that delay of a scale-up.
 * - Hysteresis: "low" means the load would still be low on one replica fewer (half the target
 *   queue, p99 within half the SLO, nothing degraded); between low and overloaded nothing changes,
 *   and a sample in that band restarts both timers, so load that oscillates faster than the
 *   timers never moves the count.
 * - No pile-up: while replicas it asked for have not connected, it does not ask for more (until
 *   `startGraceMs` has passed, so a replica that never comes up does not block scaling forever).
 * - Bounds: the count stays within [min, max]; zero only when the configuration allows it and the
 *   version is idle, and a version at zero is scaled up by the first query without waiting.
 */
import type { AutoscaleEventInput, AutoscalingConfig } from "../shared/autoscaling.js";

/** What is known of one model version at one instant. */
export interface VersionSignals {
  /** When the signals were taken, in ms on the caller's clock. */
  at: number;
  /** Replicas the manager runs or is starting for the version. */
  replicas: number;
  /** Replicas connected to the query frontends. */
  readyReplicas: number;
  /** Queries waiting for the version, over every frontend. */
  queueDepth: number;
  /** Queries per second sent to the version lately. */
  requestsPerS: number;
  /** Share (0 to 1) of the version's queries answered lately by the default output or shed. */
  degradedShare: number;
  /** p99 latency lately, ms; absent when no query completed. */
  p99Ms?: number;
  /** The tightest latency SLO of the applications that link the model, ms; absent when none does. */
  sloMs?: number;
}

export interface ScaleDecision {
  direction: "up" | "down";
  from: number;
  to: number;
  reason: string;
}

/** The controller's timing and thresholds; the configuration holds only what operators tune. */
export interface ControllerTuning {
  /** How long overload must last before a scale-up. */
  overloadSustainMs: number;
  /** Least time between two scale-ups. */
  upCooldownMs: number;
  /** Least time between two scale-downs, once the scale-down delay has passed. */
  downStepMs: number;
  /** How long replicas asked for may take to connect before the controller asks for more anyway. */
  startGraceMs: number;
  /** Low load: at most this fraction of the target queue per replica, counted on one replica fewer. */
  lowQueueFraction: number;
  /** Low load: p99 within this fraction of the SLO. */
  lowP99Fraction: number;
  /** Overload: more than this share of queries answered by the default output or shed. */
  degradedShareThreshold: number;
}

export const DEFAULT_TUNING: ControllerTuning = {
  overloadSustainMs: 2_000,
  upCooldownMs: 5_000,
  downStepMs: 10_000,
  startGraceMs: 30_000,
  lowQueueFraction: 0.5,
  lowP99Fraction: 0.5,
  degradedShareThreshold: 0.01,
};

const round = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));

/** The decisions of one model version; keep one per version for as long as it is autoscaled. */
export class VersionAutoscaler {
  private overloadSince: number | undefined;
  private lowSince: number | undefined;
  private lastUpAt = Number.NEGATIVE_INFINITY;
  private lastDownAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly tuning: ControllerTuning = DEFAULT_TUNING) {}

  /** The replica count to move to now, with its reason; undefined to leave it as it is. */
  observe(config: AutoscalingConfig, s: VersionSignals): ScaleDecision | undefined {
    const { min_replicas: min, max_replicas: max } = config;
    if (s.replicas < min) return this.up(s, min, `below the minimum of ${min}`);
    if (s.replicas > max) return this.down(s, max, `above the maximum of ${max}`);
    if (s.replicas === 0) {
      if (s.queueDepth === 0 && s.requestsPerS === 0) return undefined;
      const wanted = Math.min(max, Math.max(1, Math.ceil(s.queueDepth / config.target_queue_per_replica)));
      return this.up(s, wanted, `queries arrived for a version with no replica (${s.queueDepth} waiting)`);
    }

    const overload = this.overloadReasons(config, s);
    if (overload.length > 0) {
      this.lowSince = undefined;
      this.overloadSince ??= s.at;
      if (s.at - this.overloadSince < this.tuning.overloadSustainMs) return undefined;
      if (s.replicas >= max || s.at - this.lastUpAt < this.tuning.upCooldownMs) return undefined;
      if (s.readyReplicas < s.replicas && s.at - this.lastUpAt < this.tuning.startGraceMs) return undefined;
      const wanted = Math.min(max, Math.max(s.replicas + 1, Math.ceil(s.queueDepth / config.target_queue_per_replica)));
      const lasted = round((s.at - this.overloadSince) / 1000);
      return this.up(s, wanted, `overloaded for ${lasted} s: ${overload.join("; ")}`);
    }

    this.overloadSince = undefined;
    const low = this.lowReason(config, s);
    if (low === undefined) {
      this.lowSince = undefined;
      return undefined;
    }
    this.lowSince ??= s.at;
    const delayMs = config.scale_down_delay_s * 1000;
    if (s.replicas <= min || s.at - this.lowSince < delayMs) return undefined;
    if (s.at - this.lastUpAt < delayMs || s.at - this.lastDownAt < this.tuning.downStepMs) return undefined;
    return this.down(s, s.replicas - 1, `low load for ${round((s.at - this.lowSince) / 1000)} s: ${low}`);
  }

  private overloadReasons(config: AutoscalingConfig, s: VersionSignals): string[] {
    const reasons: string[] = [];
    const perReplica = s.queueDepth / s.replicas;
    if (perReplica > config.target_queue_per_replica) {
      reasons.push(`${s.queueDepth} queries waiting, ${round(perReplica)} per replica (target ${config.target_queue_per_replica})`);
    }
    if (s.degradedShare > this.tuning.degradedShareThreshold) {
      reasons.push(`${round(s.degradedShare * 100)}% of queries answered by the default output or shed`);
    }
    if (s.p99Ms !== undefined && s.sloMs !== undefined && s.p99Ms > s.sloMs) {
      reasons.push(`p99 ${round(s.p99Ms)} ms above the SLO of ${round(s.sloMs)} ms`);
    }
    return reasons;
  }

  /** Why the version would still be served well on one replica fewer, or undefined when it would not. */
  private lowReason(config: AutoscalingConfig, s: VersionSignals): string | undefined {
    if (s.degradedShare > 0) return undefined;
    if (s.replicas === 1) {
      // The last replica goes only when nothing at all is asked of the version.
      return s.queueDepth === 0 && s.requestsPerS === 0 ? "no queries" : undefined;
    }
    const perReplicaAfter = s.queueDepth / (s.replicas - 1);
    if (perReplicaAfter > config.target_queue_per_replica * this.tuning.lowQueueFraction) return undefined;
    if (s.p99Ms !== undefined && s.sloMs !== undefined && s.p99Ms > s.sloMs * this.tuning.lowP99Fraction) return undefined;
    return `${s.queueDepth} queries waiting, ${round(perReplicaAfter)} per replica on ${s.replicas - 1}` +
      (s.p99Ms !== undefined && s.sloMs !== undefined ? `, p99 ${round(s.p99Ms)} ms of a ${round(s.sloMs)} ms SLO` : "");
  }

  private up(s: VersionSignals, to: number, reason: string): ScaleDecision {
    this.lastUpAt = s.at;
    this.overloadSince = undefined;
    this.lowSince = undefined;
    return { direction: "up", from: s.replicas, to, reason };
  }

  private down(s: VersionSignals, to: number, reason: string): ScaleDecision {
    this.lastDownAt = s.at;
    return { direction: "down", from: s.replicas, to, reason };
  }
}

/** A decision as the event the daemon's log records. */
export function decisionEvent(modelName: string, version: string, decision: ScaleDecision): AutoscaleEventInput {
  return {
    kind: decision.direction === "up" ? "scale_up" : "scale_down",
    model_name: modelName,
    model_version: version,
    from: decision.from,
    to: decision.to,
    reason: decision.reason,
  };
}
