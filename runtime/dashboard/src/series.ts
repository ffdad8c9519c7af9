/**
 * Turns the live stats feed (runtime/shared/live-stats.ts), one sample list per frontend, into the
 * dashboard's chart series: one time axis for the cluster, samples of the same interval summed
 * across frontends. Pure, so it is tested without a browser.
 *
 * Across frontends: rates and counts add up, the p99 is the worst frontend's (a percentile cannot
 * be added), the p50 is the frontends' p50s weighted by their request rates.
 */
import type { AutoscaleEvent } from "../../shared/autoscaling.js";
import type { LiveStats } from "../../shared/live-stats.js";
import { describeChange } from "../../shared/event-change.js";

export interface Series {
  label: string;
  values: Array<number | null>;
}

/** A moment drawn across a chart: an autoscaler event of the chart's version. */
export interface Marker {
  /** Seconds since the epoch. */
  t: number;
  kind: AutoscaleEvent["kind"];
  label: string;
}

export interface Chart {
  title: string;
  unit: string;
  /** Seconds since the epoch, one per point. */
  t: number[];
  series: Series[];
  markers?: Marker[];
}

export interface AppCharts {
  app: string;
  requests: Chart;
  latency: Chart;
  answers: Chart;
}

export interface VersionCharts {
  model: string;
  queue: Chart;
  batches: Chart;
  cacheHitRate: Chart;
}

type Bucket = number;

/** The time axis: every interval some frontend reported, oldest first. */
function buckets(stats: LiveStats): Bucket[] {
  const set = new Set<Bucket>();
  for (const f of stats.frontends) for (const s of f.samples) set.add(Math.round(s.at / stats.interval_ms));
  return [...set].sort((a, b) => a - b);
}

/** One series per key, a value per bucket (null where nothing was reported), summed by default. */
class Accumulator {
  private readonly byKey = new Map<string, Map<Bucket, number>>();

  add(key: string, bucket: Bucket, value: number, combine: (a: number, b: number) => number = (a, b) => a + b): void {
    let m = this.byKey.get(key);
    if (!m) this.byKey.set(key, (m = new Map()));
    const prev = m.get(bucket);
    m.set(bucket, prev === undefined ? value : combine(prev, value));
  }

  series(key: string, axis: Bucket[], label = key): Series {
    const m = this.byKey.get(key);
    return { label, values: axis.map((b) => m?.get(b) ?? null) };
  }

  keys(prefix: string): string[] {
    return [...this.byKey.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
}

const key = (...parts: string[]) => JSON.stringify(parts);

export function appCharts(stats: LiveStats): AppCharts[] {
  const axis = buckets(stats);
  const acc = new Accumulator();
  const apps = new Set<string>();
  for (const f of stats.frontends) {
    for (const s of f.samples) {
      const b = Math.round(s.at / stats.interval_ms);
      const perSecond = 1000 / s.interval_ms;
      for (const a of s.apps) {
        apps.add(a.app);
        acc.add(key(a.app, "rps"), b, a.requests_per_s);
        if (a.p99_ms !== null) acc.add(key(a.app, "p99"), b, a.p99_ms, Math.max);
        if (a.p50_ms !== null) {
          acc.add(key(a.app, "p50w"), b, a.p50_ms * a.requests_per_s);
          acc.add(key(a.app, "p50n"), b, a.requests_per_s);
        }
        if (a.slo_ms !== null) acc.add(key(a.app, "slo"), b, a.slo_ms, Math.max);
        acc.add(key(a.app, "answers", "model"), b, a.answers.model * perSecond);
        // Older frontends send no cache count (their model count includes cache answers).
        if (a.answers.cache !== undefined) acc.add(key(a.app, "answers", "cache"), b, a.answers.cache * perSecond);
        acc.add(key(a.app, "answers", "shed"), b, a.answers.shed * perSecond);
        for (const d of a.answers.default) acc.add(key(a.app, "answers", `default: ${d.reason}`), b, d.count * perSecond);
      }
    }
  }
  const t = axis.map((b) => (b * stats.interval_ms) / 1000);
  return [...apps].sort().map((app) => {
    const weighted = acc.series(key(app, "p50w"), axis).values;
    const rates = acc.series(key(app, "p50n"), axis).values;
    const p50 = weighted.map((w, i) => (w === null || !rates[i] ? null : w / rates[i]!));
    const answerKeys = acc.keys(JSON.stringify([app, "answers"]).slice(0, -1));
    return {
      app,
      requests: { title: `${app}: requests/s`, unit: "/s", t, series: [acc.series(key(app, "rps"), axis, "requests/s")] },
      latency: {
        title: `${app}: latency vs SLO`, unit: "ms", t,
        series: [{ label: "p50", values: p50 }, acc.series(key(app, "p99"), axis, "p99"), acc.series(key(app, "slo"), axis, "SLO")],
      },
      answers: {
        title: `${app}: answers by source`, unit: "/s", t,
        series: answerKeys.map((k) => acc.series(k, axis, (JSON.parse(k) as string[])[2])),
      },
    };
  });
}

export function versionCharts(stats: LiveStats): VersionCharts[] {
  const axis = buckets(stats);
  const acc = new Accumulator();
  const models = new Set<string>();
  for (const f of stats.frontends) {
    for (const s of f.samples) {
      const b = Math.round(s.at / stats.interval_ms);
      for (const v of s.versions) {
        const m = `${v.model_name}:${v.model_version}`;
        models.add(m);
        acc.add(key(m, "queue"), b, v.queue_depth);
        acc.add(key(m, "hits"), b, v.cache_hits);
        acc.add(key(m, "lookups"), b, v.cache_hits + v.cache_misses);
        for (const r of v.replicas) {
          // Replica ids are per version; a replica connected to two frontends shows its larger value.
          if (r.batch_size !== null) acc.add(key(m, "batch", `replica ${r.replica_id} batch`), b, r.batch_size, Math.max);
          acc.add(key(m, "batch", `replica ${r.replica_id} cap`), b, r.batch_cap, Math.max);
        }
      }
    }
  }
  const t = axis.map((b) => (b * stats.interval_ms) / 1000);
  // A version no replica served and nothing waited for in the whole window has nothing to draw.
  const idle = (model: string) =>
    acc.keys(JSON.stringify([model, "batch"]).slice(0, -1)).length === 0 &&
    acc.series(key(model, "queue"), axis).values.every((v) => !v);
  return [...models].sort().filter((model) => !idle(model)).map((model) => {
    const hits = acc.series(key(model, "hits"), axis).values;
    const lookups = acc.series(key(model, "lookups"), axis).values;
    const batchKeys = acc.keys(JSON.stringify([model, "batch"]).slice(0, -1));
    return {
      model,
      queue: { title: `${model}: queue depth`, unit: "queries", t, series: [acc.series(key(model, "queue"), axis, "queued")] },
      batches: {
        title: `${model}: batch size and AIMD cap per replica`, unit: "queries", t,
        series: batchKeys.map((k) => acc.series(k, axis, (JSON.parse(k) as string[])[2])),
      },
      cacheHitRate: {
        title: `${model}: cache hit rate`, unit: "%", t,
        series: [{ label: "hit rate", values: lookups.map((n, i) => (n ? (100 * hits[i]!) / n : null)) }],
      },
    };
  });
}

/**
 * The events of one version ("model:version") since a chart's first point, as markers (one newer
 * than the last point is drawn at the right edge: it happened after the last sample).
 */
export function eventMarkers(events: readonly AutoscaleEvent[], version: string, t: readonly number[]): Marker[] {
  if (t.length === 0) return [];
  return events.flatMap((e) => {
    const at = Date.parse(e.at) / 1000;
    if (`${e.model_name}:${e.model_version}` !== version || !(at >= t[0]!)) return [];
    return [{ t: at, kind: e.kind, label: `${describeChange(e)}: ${e.reason}` }];
  });
}
