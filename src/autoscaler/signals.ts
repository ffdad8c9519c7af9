/**
 * What the autoscaler knows of one model version at one instant, put together from the frontends'
 * live stats (runtime/shared/live-stats.ts: queue depth and connected replicas per version, answers
 * and latency per application), the applications that route to the version (those linking the
 * model while this version is current) and the replica count the manager runs. Pure: the loop
 * fetches, this adds up.
 */
import type { VersionSignals } from "../../runtime/autoscaler/controller.js";
import type { LiveStats, LiveStatsSample } from "../../runtime/shared/live-stats.js";

export interface RoutedApp {
  name: string;
  /** The application's latency SLO, ms. */
  sloMs: number;
}

export interface SignalInputs {
  model: string;
  version: string;
  /** Applications whose queries reach this version now (empty for a version that is not current). */
  apps: readonly RoutedApp[];
  stats: LiveStats;
  /** Replicas the manager runs or is starting for the version. */
  replicas: number;
  /** Now, on the same clock as the samples' `at` (ms since the epoch). */
  now: number;
}

/** A frontend's newest sample, if it is recent enough to describe now (three intervals). */
function freshSample(samples: readonly LiveStatsSample[], now: number, intervalMs: number): LiveStatsSample | undefined {
  const newest = samples.at(-1);
  return newest && now - newest.at <= 3 * intervalMs ? newest : undefined;
}

export function versionSignals(input: SignalInputs): VersionSignals {
  const routed = new Set(input.apps.map((a) => a.name));
  let queueDepth = 0;
  let readyReplicas = 0;
  let requestsPerS = 0;
  let answered = 0;
  let degraded = 0;
  let p99Ms: number | undefined;
  for (const frontend of input.stats.frontends) {
    const sample = freshSample(frontend.samples, input.now, input.stats.interval_ms);
    if (!sample) continue;
    const version = sample.versions.find((v) => v.model_name === input.model && v.model_version === input.version);
    if (version) {
      queueDepth += version.queue_depth;
      // Every replica connects to every frontend: the best-connected frontend sees them all.
      readyReplicas = Math.max(readyReplicas, version.replicas.length);
    }
    for (const app of sample.apps) {
      if (!routed.has(app.app)) continue;
      requestsPerS += app.requests_per_s;
      const defaults = app.answers.default.reduce((n, d) => n + d.count, 0);
      answered += app.answers.model + (app.answers.cache ?? 0) + app.answers.shed + defaults;
      degraded += app.answers.shed + defaults;
      if (app.p99_ms !== null) p99Ms = Math.max(p99Ms ?? 0, app.p99_ms);
    }
  }
  const slos = input.apps.map((a) => a.sloMs);
  return {
    at: input.now,
    replicas: input.replicas,
    readyReplicas,
    queueDepth,
    requestsPerS,
    degradedShare: answered === 0 ? 0 : degraded / answered,
    ...(p99Ms !== undefined ? { p99Ms } : {}),
    ...(slos.length ? { sloMs: Math.min(...slos) } : {}),
  };
}

/**
 * When a frontend's live stats first showed a replica of the version connected at or after `since`
 * (the earliest such sample over every frontend, ms on the samples' clock), or undefined when none
 * has yet. A sample closes an interval, so this is at most one interval after the replica connected.
 */
export function firstReadyAt(stats: LiveStats, model: string, version: string, since: number): number | undefined {
  let first: number | undefined;
  for (const frontend of stats.frontends) {
    const seen = frontend.samples.find((sample) => sample.at >= since &&
      sample.versions.some((v) => v.model_name === model && v.model_version === version && v.replicas.length > 0));
    if (seen && (first === undefined || seen.at < first)) first = seen.at;
  }
  return first;
}
