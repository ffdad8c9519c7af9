/**
 * The live stats feed: what each query frontend saw in its last few seconds, reported to the
 * management daemon, which keeps the last minutes per frontend in memory and serves them to the
 * dashboard (and to an autoscaler) on GET LIVE_STATS_PATH. The schema here is the contract between
 * the three: the frontend builds samples, the daemon validates them with it, readers parse with it.
 *
 * Names (applications, models) are user input: samples carry them as array entries, never as object
 * keys, so `__proto__` or `constructor` is just another name.
 */
import { z } from "zod";
import { ShadowSampleSchema } from "./shadow.js";

/** Where a frontend POSTs its samples. */
export const REPORT_LIVE_STATS_PATH = "/admin/report_live_stats";
/** Where anyone on the admin plane GETs the recent samples of every live frontend. */
export const LIVE_STATS_PATH = "/admin/live_stats";

/** How often a frontend takes and reports a sample (ms). */
export const DEFAULT_LIVE_STATS_INTERVAL_MS = 2_000;
/** How many samples the daemon keeps per frontend: five minutes at the default interval. */
export const LIVE_STATS_HISTORY = 150;
/** Frontends the daemon keeps samples for at once; a report from one more evicts the stalest. */
export const LIVE_STATS_MAX_FRONTENDS = 256;
/** Bytes of samples (as JSON) the daemon keeps in all; beyond, the stalest frontend's oldest go first. */
export const LIVE_STATS_MAX_BYTES = 32 * 1024 * 1024;

/** Bounds on one sample, so a lying frontend cannot make the daemon hold much. */
const MAX_NAME = 256;
const MAX_ENTRIES = 1_000;
/** Samples one report may carry (a frontend catching up after the daemon was away). */
export const MAX_SAMPLES_PER_REPORT = 10;

const name = z.string().min(1).max(MAX_NAME);
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const quantity = z.number().nonnegative().finite();

/** Answers given in the interval, by where they came from. */
export const AnswerCountsSchema = z.object({
  /** Answered by a model call (a query that joined an identical call in flight included). */
  model: count,
  /**
   * Answered from the prediction cache, with no model call (single-model policies: default, canary,
   * exp3). Absent from frontends older than this field, which counted those answers in `model`;
   * read it as 0 then.
   */
  cache: count.optional(),
  /** Refused at admission: the query could not have been answered by its deadline. */
  shed: count,
  /** Answered with the application's default output, by reason (docs/metrics.md), shed excluded. */
  default: z.array(z.object({ reason: name, count })).max(MAX_ENTRIES),
});

export const AppSampleSchema = z.object({
  app: name,
  /** Queries answered per second over the interval. */
  requests_per_s: quantity,
  /** Latency percentiles over the interval (ms), null with no query. */
  p50_ms: quantity.nullable(),
  p99_ms: quantity.nullable(),
  /** The application's latency SLO (ms), null if the frontend does not know the application. */
  slo_ms: quantity.nullable(),
  answers: AnswerCountsSchema,
});

export const ReplicaSampleSchema = z.object({
  replica_id: count,
  /** Mean batch size sent to this replica in the interval, null with no batch. */
  batch_size: quantity.nullable(),
  /** The replica's batch size cap now (adaptive AIMD cap, or the model's fixed batch size). */
  batch_cap: quantity,
});

export const VersionSampleSchema = z.object({
  model_name: name,
  model_version: name,
  /** Queries waiting in the version's queue when the sample was taken. */
  queue_depth: count,
  /** Connected replicas when the sample was taken. */
  replicas: z.array(ReplicaSampleSchema).max(MAX_ENTRIES),
  /** Prediction-cache lookups in the interval; the hit rate is hits / (hits + misses). */
  cache_hits: count,
  cache_misses: count,
});

export const LiveStatsSampleSchema = z.object({
  /** When the interval ended (ms since the epoch, the frontend's clock). */
  at: count,
  /** Length of the interval (ms). */
  interval_ms: z.number().positive().finite().max(3_600_000),
  apps: z.array(AppSampleSchema).max(MAX_ENTRIES),
  versions: z.array(VersionSampleSchema).max(MAX_ENTRIES),
  /** Shadow versions' figures of the interval (shadow.ts); absent with none, and from older frontends. */
  shadows: z.array(ShadowSampleSchema).max(MAX_ENTRIES).optional(),
});

/** The body a frontend POSTs to REPORT_LIVE_STATS_PATH. */
export const LiveStatsReportSchema = z.object({
  frontend_id: name,
  samples: z.array(LiveStatsSampleSchema).min(1).max(MAX_SAMPLES_PER_REPORT),
});

/** The daemon's answer on GET LIVE_STATS_PATH: per live frontend, its samples, oldest first. */
export const LiveStatsSchema = z.object({
  interval_ms: z.number().positive(),
  frontends: z.array(z.object({ frontend_id: name, samples: z.array(LiveStatsSampleSchema) })),
});

export type AnswerCounts = z.infer<typeof AnswerCountsSchema>;
export type AppSample = z.infer<typeof AppSampleSchema>;
export type ReplicaSample = z.infer<typeof ReplicaSampleSchema>;
export type VersionSample = z.infer<typeof VersionSampleSchema>;
export type LiveStatsSample = z.infer<typeof LiveStatsSampleSchema>;
export type LiveStatsReport = z.infer<typeof LiveStatsReportSchema>;
export type LiveStats = z.infer<typeof LiveStatsSchema>;

/** The text of the report's schema, for the 400 answer to a body that does not fit it. */
export const LIVE_STATS_REPORT_TEXT =
  `{"frontend_id" := string, "samples" := [{"at" := int, "interval_ms" := number, ` +
  `"apps" := [{"app", "requests_per_s", "p50_ms", "p99_ms", "slo_ms", "answers" := {"model", "cache" (optional), "shed", "default" := [{"reason", "count"}]}}], ` +
  `"versions" := [{"model_name", "model_version", "queue_depth", "replicas" := [{"replica_id", "batch_size", "batch_cap"}], ` +
  `"cache_hits", "cache_misses"}], "shadows" (optional) := [{"model_name", "model_version", "since_revision", "counts", "shadow_latency", "live_latency"}]}] (1 to ${MAX_SAMPLES_PER_REPORT})}`;
