/**
 * Queue depth and p99 latency per model version, read from the query frontend's own Prometheus
 * text (`/metrics`, runtime/frontend/metrics.ts) for `clipper status`: what the frontend measures,
 * not an estimate of ours.
 */
import { fetchText } from "./http-fetch.js";

export interface ModelVersionLoad {
  /** `name:version`, as the frontend labels its series. */
  model: string;
  /** Queries waiting in the version's queue now. */
  queueDepth?: number;
  /** 99th percentile of batch latency (sending a batch to its answer), in ms; absent before any batch. */
  p99Ms?: number;
  /** Batches answered so far. */
  batches?: number;
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every sample line of a Prometheus text exposition (comments and malformed lines are skipped). */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const l of (m[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    const value = m[4] === "+Inf" ? Infinity : m[4] === "-Inf" ? -Infinity : Number(m[4]);
    if (!Number.isNaN(value)) samples.push({ name: m[1]!, labels, value });
  }
  return samples;
}

/** A quantile from cumulative histogram buckets, interpolated within its bucket as Prometheus' histogram_quantile does. */
export function histogramQuantile(q: number, buckets: readonly { le: number; count: number }[]): number | undefined {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const total = sorted.at(-1)?.count ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let previous = { le: 0, count: 0 };
  for (const bucket of sorted) {
    if (bucket.count >= rank) {
      // In the +Inf bucket the best bound known is the highest finite one.
      if (!Number.isFinite(bucket.le)) return previous.le;
      const inBucket = bucket.count - previous.count;
      return inBucket <= 0 ? bucket.le : previous.le + ((bucket.le - previous.le) * (rank - previous.count)) / inBucket;
    }
    previous = bucket;
  }
  return previous.le;
}

const QUEUE = "clipper_model_queue_depth";
const LATENCY_BUCKET = "clipper_model_batch_latency_seconds_bucket";

/** Queue depth and p99 per model version out of the frontend's metrics text. */
export function modelVersionLoads(text: string): ModelVersionLoad[] {
  const byModel = new Map<string, { queueDepth?: number; buckets: { le: number; count: number }[] }>();
  const entry = (model: string) => {
    let e = byModel.get(model);
    if (!e) byModel.set(model, (e = { buckets: [] }));
    return e;
  };
  for (const s of parsePrometheusText(text)) {
    const model = s.labels.model;
    if (model === undefined) continue;
    if (s.name === QUEUE) entry(model).queueDepth = s.value;
    else if (s.name === LATENCY_BUCKET && s.labels.le !== undefined) {
      entry(model).buckets.push({ le: s.labels.le === "+Inf" ? Infinity : Number(s.labels.le), count: s.value });
    }
  }
  return [...byModel.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([model, e]) => {
    const p99 = histogramQuantile(0.99, e.buckets);
    const batches = e.buckets.length ? Math.max(...e.buckets.map((b) => b.count)) : undefined;
    return {
      model,
      ...(e.queueDepth === undefined ? {} : { queueDepth: e.queueDepth }),
      ...(p99 === undefined ? {} : { p99Ms: Math.round(p99 * 10_000) / 10 }),
      ...(batches === undefined ? {} : { batches }),
    };
  });
}

/** GETs the frontend's /metrics (with the cluster's token when it has one) and reads the loads. */
export async function fetchModelVersionLoads(metricsUrl: string, token: string | undefined, timeoutMs = 5_000): Promise<ModelVersionLoad[]> {
  const res = await fetchText(metricsUrl, { headers: token ? { authorization: `Bearer ${token}` } : {} }, timeoutMs);
  if (res.status !== 200) throw new Error(`${metricsUrl} answered ${res.status}`);
  return modelVersionLoads(res.text);
}
