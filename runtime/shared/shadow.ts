/**
 * Shadow versions (docs/rollouts.md): a version that receives a copy of a sample of the live
 * queries its model's current version answers, whose answers are compared with the live ones and
 * never returned. This is the contract between the daemon (which stores the setting and adds up the
 * figures), the frontends (which mirror queries and report figures in their live stats samples) and
 * the library and CLI (which set it and read the figures).
 *
 * Latencies travel as counts in fixed log-spaced buckets: counts from several frontends and
 * intervals add up exactly, and percentiles are read from the sum (within one bucket, ±12%).
 */
import { z } from "zod";
import { RolloutStatusSchema } from "./rollout.js";

/** Sets (or, with `off`, ends) a model's shadow (POST, a state write). */
export const SET_SHADOW_PATH = "/admin/set_shadow";
/** A model's shadow setting and the figures gathered since it was set (POST, a read). */
export const GET_SHADOW_STATUS_PATH = "/admin/get_shadow_status";

/** Shadow queries one frontend has in flight at most; beyond, copies are skipped (and counted). */
export const DEFAULT_MAX_SHADOW_IN_FLIGHT = 64;

/** A model's shadow, as stored in the state (keyed by model name). */
export const ShadowConfigSchema = z.object({
  /** The version that receives the copies; never the model's current version (state-invariants.ts). */
  model_version: z.string(),
  /** Share of the live queries copied, in (0, 100]. */
  percent: z.number().gt(0).max(100),
  /** The revision that set it: figures are gathered per setting, and start afresh with a new one. */
  since_revision: z.number().int().nonnegative(),
});
export type ShadowConfig = z.infer<typeof ShadowConfigSchema>;

/** What happened to one copy: same output as the live one, another one, no output, or not sent. */
export const SHADOW_OUTCOMES = ["agree", "disagree", "error", "timeout", "skipped"] as const;
export type ShadowOutcome = (typeof SHADOW_OUTCOMES)[number];

/** Upper bounds (ms) of the latency buckets: 0.1 ms to about 100 s, each 1.25 times the last; one more bucket above. */
export const SHADOW_LATENCY_BOUNDS_MS: readonly number[] = Array.from({ length: 63 }, (_, i) => Number((0.1 * 1.25 ** i).toPrecision(4)));
const BUCKETS = SHADOW_LATENCY_BOUNDS_MS.length + 1;

/** The bucket a latency falls in. */
export function latencyBucket(ms: number): number {
  let low = 0;
  let high = SHADOW_LATENCY_BOUNDS_MS.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (ms <= SHADOW_LATENCY_BOUNDS_MS[mid]!) high = mid;
    else low = mid + 1;
  }
  return low;
}

/** A new, empty latency histogram. */
export function emptyHistogram(): number[] {
  return new Array<number>(BUCKETS).fill(0);
}

/** Adds `from` into `into` (same bucket layout). */
export function addHistogram(into: number[], from: readonly number[]): void {
  for (let i = 0; i < BUCKETS; i++) into[i]! += from[i] ?? 0;
}

/** The nearest-rank percentile (q in (0, 1]) of a histogram, as its bucket's upper bound (ms); null when empty. */
export function histogramPercentile(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!;
    // The last bucket has no upper bound: the highest bound is the most we can say.
    if (seen >= rank) return SHADOW_LATENCY_BOUNDS_MS[Math.min(i, SHADOW_LATENCY_BOUNDS_MS.length - 1)]!;
  }
  return SHADOW_LATENCY_BOUNDS_MS[SHADOW_LATENCY_BOUNDS_MS.length - 1]!;
}

const name = z.string().min(1).max(256);
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const histogram = z.array(count).length(BUCKETS);

export const ShadowCountsSchema = z.object({
  agree: count, disagree: count, error: count, timeout: count, skipped: count,
});
export type ShadowCounts = z.infer<typeof ShadowCountsSchema>;

export function emptyCounts(): ShadowCounts {
  return { agree: 0, disagree: 0, error: 0, timeout: 0, skipped: 0 };
}

/** What one frontend saw of one shadow in one live stats interval (an entry of the sample's `shadows`). */
export const ShadowSampleSchema = z.object({
  model_name: name,
  /** The shadow version, and the revision of the setting the copies were made under. */
  model_version: name,
  since_revision: count,
  counts: ShadowCountsSchema,
  /** Latency of the shadow's answers (agree, disagree; ms buckets, SHADOW_LATENCY_BOUNDS_MS). */
  shadow_latency: histogram,
  /** Latency of the live answers those copies were made of. */
  live_latency: histogram,
});
export type ShadowSample = z.infer<typeof ShadowSampleSchema>;

/** The figures of a shadow as `rollout status` shows them. */
export const ShadowFiguresSchema = z.object({
  counts: ShadowCountsSchema,
  /** Copies answered: agree + disagree. */
  compared: count,
  /** agree / compared; null before the first comparison. */
  agreement: z.number().min(0).max(1).nullable(),
  shadow_p50_ms: z.number().nullable(),
  shadow_p99_ms: z.number().nullable(),
  live_p50_ms: z.number().nullable(),
  live_p99_ms: z.number().nullable(),
});
export type ShadowFigures = z.infer<typeof ShadowFiguresSchema>;

/** The answer of GET_SHADOW_STATUS_PATH. */
export const ShadowStatusSchema = z.object({
  model_name: z.string(),
  current_version: z.string().nullable(),
  /** Null when the model has no shadow. */
  shadow: ShadowConfigSchema.nullable(),
  /** Summed over every frontend since the setting (null with no shadow). Kept in the daemon's memory: a restart starts them afresh. */
  figures: ShadowFiguresSchema.nullable(),
  /** The model's gated rollout, running or the last one ended (rollout.ts); null when it never had one. */
  rollout: RolloutStatusSchema.nullable(),
});
export type ShadowStatus = z.infer<typeof ShadowStatusSchema>;

/** The figures of summed counts and histograms. */
export function shadowFigures(counts: ShadowCounts, shadowLatency: readonly number[], liveLatency: readonly number[]): ShadowFigures {
  const compared = counts.agree + counts.disagree;
  return {
    counts: { ...counts },
    compared,
    agreement: compared === 0 ? null : counts.agree / compared,
    shadow_p50_ms: histogramPercentile(shadowLatency, 0.5),
    shadow_p99_ms: histogramPercentile(shadowLatency, 0.99),
    live_p50_ms: histogramPercentile(liveLatency, 0.5),
    live_p99_ms: histogramPercentile(liveLatency, 0.99),
  };
}
