/**
 * The autoscaler's loop: every interval it reads which versions are autoscaled, the frontends' live
 * stats and the applications, asks each version's controller (runtime/autoscaler/controller.ts)
 * what to do, scales through the ContainerManager interface and records each decision as an event
 * in the daemon's log, as well as how long the first replica took after a scale from zero. Being
 * where the manager is, it also applies the replica counts asked for through the daemon (the
 * dashboard's Scale button). It runs where a ContainerManager lives (docs/autoscaling.md): the local
 * manager's supervisor, or the autoscaler container / Deployment on Docker and Kubernetes.
 *
 * A failed read or a failed scale is logged and tried again next tick: the loop never stops on an
 * error, and never acts on signals it could not read.
 */
import { decisionEvent, type ScaleDecision, VersionAutoscaler } from "../../runtime/autoscaler/controller.js";
import { MAX_FIRST_REPLICA_START_MS, type AutoscaleEventInput, type AutoscalingConfig, type ScaleRequest } from "../../runtime/shared/autoscaling.js";
import type { LiveStats } from "../../runtime/shared/live-stats.js";
import type { ContainerManager } from "../managers/container-manager.js";
import { firstReadyAt, versionSignals, type RoutedApp } from "./signals.js";

/** An autoscaled version as the admin API lists it. */
export interface AutoscaledVersion {
  model: string;
  version: string;
  current: boolean;
  config: AutoscalingConfig;
}

/** Where the loop reads the cluster's configuration and stats and writes its events (the admin API). */
export interface AutoscaleSource {
  autoscaled(): Promise<AutoscaledVersion[]>;
  /** Applications with their SLO (ms) and linked models. */
  applications(): Promise<{ name: string; sloMs: number; linkedModels: string[] }[]>;
  liveStats(): Promise<LiveStats>;
  recordEvent(event: AutoscaleEventInput): Promise<void>;
  /**
   * Replica counts asked for through the admin API (the dashboard's Scale button), and where the
   * loop reports each outcome back. Optional so that a source without them (an older daemon, a
   * test) still runs the autoscaler.
   */
  scaleRequests?(): Promise<ScaleRequest[]>;
  completeScaleRequest?(request: ScaleRequest, outcome: { from: number } | { error: string }): Promise<void>;
}

export type Scaler = Pick<ContainerManager, "getNumReplicas" | "setNumReplicas">;

export interface AutoscaleLoopOptions {
  source: AutoscaleSource;
  scaler: Scaler;
  /** Time of a sample, on the clock the frontends stamp their samples with (ms since the epoch). */
  now?: () => number;
  /** How often the loop runs (default 1 s). */
  intervalMs?: number;
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

export const DEFAULT_AUTOSCALE_INTERVAL_MS = 1_000;

export class AutoscaleLoop {
  private readonly controllers = new Map<string, VersionAutoscaler>();
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<unknown> | undefined;
  private stopped = false;
  private lastFailure: string | undefined;
  private readonly scaleFailures = new Map<string, string>();
  private requestFailure: string | undefined;
  /** Versions scaled up from zero whose first replica has not been seen yet: when the scale was made. */
  private readonly startsFromZero = new Map<string, number>();

  constructor(private readonly options: AutoscaleLoopOptions) {}

  /**
   * Applies the replica counts asked for through the admin API, each reported back by its sequence
   * number (the daemon keeps a newer request for the same version pending: runtime/management/
   * scale-requests.ts). Never throws: a failure is logged once and the round goes on.
   */
  async applyScaleRequests(): Promise<number> {
    const { source, scaler } = this.options;
    let applied = 0;
    try {
      for (const request of (await source.scaleRequests?.()) ?? []) {
        const { model_name: model, model_version: version, num_replicas: to } = request;
        let outcome: { from: number } | { error: string };
        try {
          const from = await scaler.getNumReplicas(model, version);
          await scaler.setNumReplicas(model, version, to);
          outcome = { from };
          applied++;
        } catch (err) {
          outcome = { error: (err as Error).message };
        }
        await source.completeScaleRequest?.(request, outcome);
      }
      this.requestFailure = undefined;
    } catch (err) {
      const message = (err as Error).message;
      if (message !== this.requestFailure) this.options.log?.("autoscaler could not apply scale requests", { error: message });
      this.requestFailure = message;
    }
    return applied;
  }

  /** One round: the requested replica counts, then every autoscaled version's decision, acted on and recorded. */
  async tick(): Promise<ScaleDecision[]> {
    const { source, scaler } = this.options;
    await this.applyScaleRequests();
    const versions = await source.autoscaled();
    const keys = new Set(versions.map((v) => key(v.model, v.version)));
    // A version no longer autoscaled starts afresh if it is autoscaled again.
    for (const k of [...this.controllers.keys()]) if (!keys.has(k)) this.controllers.delete(k);
    for (const k of [...this.scaleFailures.keys()]) if (!keys.has(k)) this.scaleFailures.delete(k);
    for (const k of [...this.startsFromZero.keys()]) if (!keys.has(k)) this.startsFromZero.delete(k);
    if (versions.length === 0) return [];
    const [stats, apps] = await Promise.all([source.liveStats(), source.applications()]);
    const now = (this.options.now ?? Date.now)();
    const decisions: ScaleDecision[] = [];
    for (const v of versions) {
      const routed: RoutedApp[] = v.current ? apps.filter((a) => a.linkedModels.includes(v.model)).map((a) => ({ name: a.name, sloMs: a.sloMs })) : [];
      const replicas = await scaler.getNumReplicas(v.model, v.version);
      const signals = versionSignals({ model: v.model, version: v.version, apps: routed, stats, replicas, now });
      await this.reportFirstReplica(v, stats, now);
      let controller = this.controllers.get(key(v.model, v.version));
      if (!controller) this.controllers.set(key(v.model, v.version), (controller = new VersionAutoscaler()));
      const decision = controller.observe(v.config, signals);
      if (!decision) continue;
      const k = key(v.model, v.version);
      try {
        await scaler.setNumReplicas(v.model, v.version, decision.to);
        this.scaleFailures.delete(k);
        if (decision.from === 0 && decision.to > 0) this.startsFromZero.set(k, now);
        else if (decision.to === 0) this.startsFromZero.delete(k);
      } catch (err) {
        // Logged once per distinct failure (a version autoscaled before it is deployed fails every round).
        const message = (err as Error).message;
        if (this.scaleFailures.get(k) !== message) {
          this.options.log?.("autoscaler could not scale", { model: v.model, version: v.version, to: decision.to, error: message });
        }
        this.scaleFailures.set(k, message);
        continue;
      }
      decisions.push(decision);
      await source.recordEvent(decisionEvent(v.model, v.version, decision)).catch((err: unknown) =>
        this.options.log?.("autoscaler could not record an event", { error: (err as Error).message }));
    }
    return decisions;
  }

  /** Records how long the first replica after a scale from zero took, once the live stats show it connected. */
  private async reportFirstReplica(v: AutoscaledVersion, stats: LiveStats, now: number): Promise<void> {
    const k = key(v.model, v.version);
    const since = this.startsFromZero.get(k);
    if (since === undefined) return;
    const readyAt = firstReadyAt(stats, v.model, v.version, since);
    if (readyAt === undefined) return;
    this.startsFromZero.delete(k);
    const startMs = Math.min(Math.max(0, readyAt - since), MAX_FIRST_REPLICA_START_MS);
    const event: AutoscaleEventInput = {
      kind: "first_replica", model_name: v.model, model_version: v.version, start_ms: startMs,
      reason: `first replica of ${v.model}:${v.version} ready ${(startMs / 1000).toFixed(1)} s after the scale from zero`,
    };
    await this.options.source.recordEvent(event).catch((err: unknown) =>
      this.options.log?.("autoscaler could not record an event", { error: (err as Error).message }));
  }

  /** Runs `tick` every interval until `stop`; a round that fails is logged and the next one runs. */
  start(): void {
    const run = () => {
      this.inFlight = this.tick()
        .then(() => (this.lastFailure = undefined))
        .catch((err: unknown) => {
          // Once per distinct failure: a daemon that is down for a minute is one line, not sixty.
          const message = (err as Error).message;
          if (message !== this.lastFailure) this.options.log?.("autoscaler round failed", { error: message });
          this.lastFailure = message;
        })
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(run, this.options.intervalMs ?? DEFAULT_AUTOSCALE_INTERVAL_MS);
        });
    };
    this.stopped = false;
    this.timer = setTimeout(run, this.options.intervalMs ?? DEFAULT_AUTOSCALE_INTERVAL_MS);
  }

  /** Stops the loop and waits for a round in progress (so nothing scales after it returns). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.inFlight;
  }
}

function key(model: string, version: string): string {
  return `${model}\u0000${version}`;
}
