/**
 * Autoscaling of a model version (docs/autoscaling.md): the configuration the management daemon
 * stores, the events its controller and its admin API record, and the admin paths of both.
 * Shared by the daemon, the library and the CLI.
 */
import { z } from "zod";
import { own } from "./dict.js";

/** The most replicas one model version may have on every manager (src/managers/common MAX_REPLICAS). */
export const MAX_AUTOSCALE_REPLICAS = 64;
/** Queries waiting per replica above which a version counts as overloaded, unless configured. */
export const DEFAULT_TARGET_QUEUE_PER_REPLICA = 4;
/** Seconds of low load before the first replica is removed, unless configured. */
export const DEFAULT_SCALE_DOWN_DELAY_S = 30;
/** An hour: a longer delay is a typo more likely than a wish. */
export const MAX_SCALE_DOWN_DELAY_S = 3600;
export const MAX_TARGET_QUEUE_PER_REPLICA = 100_000;

/** A version's autoscaling, as stored (every field explicit, so what runs is what is shown). */
export const AutoscalingConfigSchema = z.object({
  min_replicas: z.number().int().min(0).max(MAX_AUTOSCALE_REPLICAS),
  max_replicas: z.number().int().min(1).max(MAX_AUTOSCALE_REPLICAS),
  target_queue_per_replica: z.number().positive().max(MAX_TARGET_QUEUE_PER_REPLICA),
  scale_down_delay_s: z.number().int().min(0).max(MAX_SCALE_DOWN_DELAY_S),
});
export type AutoscalingConfig = z.infer<typeof AutoscalingConfigSchema>;

/** The state's autoscaling section: model → version → configuration (null-prototype records). */
export type AutoscalingSection = Readonly<Record<string, Readonly<Record<string, AutoscalingConfig>>>>;

/**
 * Whether a version may scale to zero (min 0): a query for it that finds no replica waits for the
 * first one (the autoscaler starts it) instead of being answered "no connected models" at once.
 * Own properties only: names are user input (`constructor` is an ordinary model name).
 */
export function scalesFromZero(autoscaling: AutoscalingSection | undefined, model: string, version: string): boolean {
  return own(own(autoscaling, model), version)?.min_replicas === 0;
}

/**
 * What a change of direction or a configuration change did; `config` and `off` come from the admin
 * API, `manual` from a replica count asked for through it (set_num_replicas) and from its outcome;
 * `first_replica`: the first replica after a scale from zero connected (`start_ms` after it).
 * `rollout_*`: a gated rollout (docs/rollouts.md) of `model_version` started, moved from one step to
 * the next (`from`, `to`: percent of the queries), was made current, or rolled back; `reason` says why.
 */
export const AUTOSCALE_EVENT_KINDS = [
  "scale_up", "scale_down", "config", "off", "manual", "first_replica",
  "rollout_start", "rollout_step", "rollout_promoted", "rollout_rolled_back",
] as const;
export type AutoscaleEventKind = (typeof AUTOSCALE_EVENT_KINDS)[number];

/** One entry of the daemon's autoscaler event log. */
export const AutoscaleEventSchema = z.object({
  /** Increases by one per event of one daemon instance; `since` pages by it. */
  seq: z.number().int().nonnegative(),
  /** ISO time the event was recorded. */
  at: z.string(),
  kind: z.enum(AUTOSCALE_EVENT_KINDS),
  model_name: z.string(),
  model_version: z.string(),
  /** Replicas before and after (scale and applied manual events), or the configured bounds (config events). */
  from: z.number().int().nonnegative().optional(),
  to: z.number().int().nonnegative().optional(),
  /** first_replica events: ms from the scale from zero until the first replica was seen connected. */
  start_ms: z.number().nonnegative().optional(),
  reason: z.string(),
});
export type AutoscaleEvent = z.infer<typeof AutoscaleEventSchema>;
/** An event before the log numbers and stamps it. */
export type AutoscaleEventInput = Omit<AutoscaleEvent, "seq" | "at">;

/** The answer of GET AUTOSCALER_EVENTS_PATH. */
export const AutoscaleEventPageSchema = z.object({
  events: z.array(AutoscaleEventSchema),
  /** Pass as `since` to get only later events. */
  next_seq: z.number().int().nonnegative(),
  /** Events older than the log's bound that a reader asking from `since` missed. */
  missed: z.number().int().nonnegative(),
});
export type AutoscaleEventPage = z.infer<typeof AutoscaleEventPageSchema>;

/** One version's autoscaling as the admin API lists it. */
export interface AutoscalingEntry {
  model_name: string;
  model_version: string;
  autoscaling: AutoscalingConfig;
}

export const SET_AUTOSCALING_PATH = "/admin/set_autoscaling";
export const GET_AUTOSCALING_PATH = "/admin/get_autoscaling";
/** Where the process that scales (the autoscaler loop) POSTs each decision it acted on. */
export const RECORD_AUTOSCALER_EVENT_PATH = "/admin/record_autoscaler_event";

/** The body of RECORD_AUTOSCALER_EVENT_PATH: a scale decision; configuration events come from the admin writes only. */
export const AutoscaleDecisionEventSchema = z.object({
  kind: z.enum(["scale_up", "scale_down"]),
  model_name: z.string().min(1).max(256),
  model_version: z.string().min(1).max(256),
  from: z.number().int().nonnegative().max(MAX_AUTOSCALE_REPLICAS * 4),
  to: z.number().int().nonnegative().max(MAX_AUTOSCALE_REPLICAS),
  reason: z.string().min(1).max(2_000),
}).strict();

/** Longest first-replica start a body may carry: a day (a replica that took longer is no start to report). */
export const MAX_FIRST_REPLICA_START_MS = 86_400_000;

/** The body of RECORD_AUTOSCALER_EVENT_PATH for the first replica after a scale from zero. */
export const AutoscaleFirstReplicaEventSchema = z.object({
  kind: z.literal("first_replica"),
  model_name: z.string().min(1).max(256),
  model_version: z.string().min(1).max(256),
  start_ms: z.number().nonnegative().max(MAX_FIRST_REPLICA_START_MS),
  reason: z.string().min(1).max(2_000),
}).strict();

/** Every body the autoscaler loop may record. */
export const AutoscaleLoopEventSchema = z.discriminatedUnion("kind", [AutoscaleDecisionEventSchema, AutoscaleFirstReplicaEventSchema]);
/** GET with `?since=SEQ` (default 0) and `&limit=N` (default and most: the log's bound). */
export const AUTOSCALER_EVENTS_PATH = "/admin/get_autoscaler_events";

/**
 * Replica counts asked for through the admin API (the dashboard's Scale button): the daemon holds
 * no container manager, so it keeps each request until the process that does (the autoscaler
 * loop's host) applies it and reports back by sequence number. docs/autoscaling.md.
 */
export const SET_NUM_REPLICAS_PATH = "/admin/set_num_replicas";
/** GET: the requests not yet applied, oldest first. */
export const SCALE_REQUESTS_PATH = "/admin/get_scale_requests";
/** POST by the loop once it applied (or failed to apply) one request. */
export const COMPLETE_SCALE_REQUEST_PATH = "/admin/complete_scale_request";

/** One pending request; a newer request for the same version replaces it (and takes a new seq). */
export const ScaleRequestSchema = z.object({
  seq: z.number().int().positive(),
  model_name: z.string(),
  model_version: z.string(),
  num_replicas: z.number().int().min(0).max(MAX_AUTOSCALE_REPLICAS),
  /** ISO time the daemon accepted it. */
  requested_at: z.string(),
});
export type ScaleRequest = z.infer<typeof ScaleRequestSchema>;

export const ScaleRequestListSchema = z.object({ requests: z.array(ScaleRequestSchema) });

/** The answer of SET_NUM_REPLICAS_PATH. */
export const ScaleRequestReplySchema = z.object({ message: z.string(), request: ScaleRequestSchema });

/**
 * The body of COMPLETE_SCALE_REQUEST_PATH: the request as the loop read it (all of it: a daemon
 * that restarted numbers its requests afresh, so a seq alone could name another one), and the
 * replica count before (applied) or why it failed.
 */
const completionBase = {
  seq: z.number().int().positive(),
  model_name: z.string().min(1).max(256),
  model_version: z.string().min(1).max(256),
  num_replicas: z.number().int().min(0).max(MAX_AUTOSCALE_REPLICAS),
};
export const ScaleRequestCompletionSchema = z.union([
  z.object({ ...completionBase, from: z.number().int().nonnegative().max(MAX_AUTOSCALE_REPLICAS * 4) }).strict(),
  z.object({ ...completionBase, error: z.string().min(1).max(2_000) }).strict(),
]);
export type ScaleRequestCompletion = z.infer<typeof ScaleRequestCompletionSchema>;

/** The completion body for a request and its outcome (an error's text bounded like the schema's). */
export function scaleRequestCompletion(request: ScaleRequest, outcome: { from: number } | { error: string }): ScaleRequestCompletion {
  const { seq, model_name, model_version, num_replicas } = request;
  const reported = "error" in outcome ? { error: (outcome.error || "unknown error").slice(0, 2_000) } : { from: outcome.from };
  return { seq, model_name, model_version, num_replicas, ...reported };
}
