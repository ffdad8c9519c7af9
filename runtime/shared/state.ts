/**
 * The cluster configuration the management daemon owns and publishes to query frontends.
 * Field names follow Clipper's admin API so records can be returned as they are stored.
 */
import { z } from "zod";
import { cloneData, dict, dictSchema } from "./dict.js";
import { INPUT_TYPES } from "./input-types.js";
import { ApiKeysSchema } from "./api-keys.js";
import { AutoscalingConfigSchema } from "./autoscaling.js";
import { RolloutSchema } from "./rollout.js";
import { ShadowConfigSchema } from "./shadow.js";
import { QueryLogConfigSchema } from "./query-log.js";

/**
 * An application's selection policy (docs/policies.md). Absent means `default`, Clipper's single
 * model with its default output.
 */
export const POLICY_NAMES = ["default", "ensemble", "exp3", "exp4", "canary", "cascade"] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

const unitInterval = (key: string) =>
  z.number({ error: `${key} must be a number between 0 and 1` })
    .min(0, { error: `${key} must be between 0 and 1` })
    .max(1, { error: `${key} must be between 0 and 1` });
const positive = (key: string) =>
  z.number({ error: `${key} must be a positive number` }).positive({ error: `${key} must be a positive number` });

/**
 * Strict objects (a misspelt parameter is refused) when the admin API validates a policy; lenient
 * ones (unknown parameters dropped) when a stored state or snapshot is read, so a frontend is not
 * cut off from its configuration by a parameter a newer daemon added.
 */
function policyConfigSchema(strict: boolean) {
  const object = strict ? z.strictObject : z.object;
  return z.discriminatedUnion("name", [
    object({ name: z.literal("default") }),
    /** Below `threshold` confidence the default output is answered, marked unsure. */
    object({ name: z.literal("ensemble"), threshold: unitInterval("threshold").optional() }),
    /** `gamma`: exploration, in (0, 1]. */
    object({
      name: z.literal("exp3"),
      gamma: positive("gamma").max(1, { error: "gamma must be in (0, 1]" }).optional(),
    }),
    /** `eta`: learning rate; `scale`: distance at which a numeric output's loss reaches 1. */
    object({ name: z.literal("exp4"), eta: positive("eta").optional(), scale: positive("scale").optional() }),
    /** Share of traffic per version of the one linked model. */
    object({
      name: z.literal("canary"),
      weights: dictSchema(z.number({ error: "each weight must be a number ≥ 0" }).min(0, { error: "each weight must be ≥ 0" }), {
        error: "weights must be an object of version → weight, such as {\"1\": 95, \"2\": 5}",
      }),
    }),
    /** Linked models to ask in order; the next is asked only while confidence < threshold. */
    object({
      name: z.literal("cascade"),
      models: z.array(z.string(), { error: "models must be a list of model names, fastest first" })
        .min(1, { error: "models must name at least one model" }),
      threshold: unitInterval("threshold"),
    }),
  ]);
}

export const PolicyConfigSchema = policyConfigSchema(true);
const StoredPolicyConfigSchema = policyConfigSchema(false);
export type PolicyConfig = z.infer<typeof PolicyConfigSchema>;

export const AppRecordSchema = z.object({
  name: z.string(),
  input_type: z.enum(INPUT_TYPES),
  default_output: z.string(),
  latency_slo_micros: z.number().int().positive(),
  linked_models: z.array(z.string()),
  /** The selection policy; absent means "default" (Clipper's behaviour). */
  policy: StoredPolicyConfigSchema.optional(),
  /** Queries shed under overload answer 503 with Retry-After instead of the default output (absent: false). */
  shed_with_503: z.boolean().optional(),
});
export type AppRecord = z.infer<typeof AppRecordSchema>;

export const ModelVersionRecordSchema = z.object({
  model_name: z.string(),
  model_version: z.string(),
  labels: z.array(z.string()),
  input_type: z.enum(INPUT_TYPES),
  container_name: z.string(),
  model_data_path: z.string(),
  /** A fixed batch size, or -1 to let the frontend choose. */
  batch_size: z.number().int(),
  /** How long a free replica may hold a batch smaller than its cap to fill it, in µs (absent: 0, never). */
  batch_wait_micros: z.number().int().nonnegative().optional(),
});
export type ModelVersionRecord = z.infer<typeof ModelVersionRecordSchema>;

export const ModelRecordSchema = z.object({
  name: z.string(),
  current_version: z.string().nullable(),
  versions: dictSchema(ModelVersionRecordSchema),
});
export type ModelRecord = z.infer<typeof ModelRecordSchema>;

/**
 * The schema of one entry of each name-keyed field of the state. The change feed (state-delta.ts)
 * sends and checks changes per entry with these, so they are the single definition of each entry.
 */
export const STATE_ENTRY_SCHEMAS = {
  applications: AppRecordSchema,
  models: ModelRecordSchema,
  /** Learned bandit weights of one application: uid (or "*" for application-wide) → model → weight. */
  policy_state: dictSchema(dictSchema(z.number().min(0))),
  /** Autoscaling of one model: version → settings. */
  autoscaling: dictSchema(AutoscalingConfigSchema),
  shadows: ShadowConfigSchema,
  query_log: QueryLogConfigSchema,
  rollouts: RolloutSchema,
} as const;

/**
 * The records keyed by names (applications, models, versions, policy-state levels) are
 * null-prototype objects (see dict.ts): `constructor` or `__proto__` is an ordinary key there.
 */
export const ClusterStateSchema = z.object({
  /** Increases by one with every acknowledged write. */
  revision: z.number().int().nonnegative(),
  applications: dictSchema(STATE_ENTRY_SCHEMAS.applications),
  models: dictSchema(STATE_ENTRY_SCHEMAS.models),
  /**
   * Learned bandit weights: application → uid (or "*" for application-wide) → model → weight.
   * Written by query frontends through /admin/update_policy_state; absent until a policy learns.
   */
  policy_state: dictSchema(STATE_ENTRY_SCHEMAS.policy_state).optional(),
  /** Query API keys, hashed (api-keys.ts); absent until the first key is created. */
  api_keys: ApiKeysSchema.optional(),
  /**
   * Autoscaling per model → version (docs/autoscaling.md); absent until the first is set. Kept
   * beside the version records rather than in them: a version record's text is the frontends'
   * cache fingerprint, and changing a version's scaling must not flush its cached predictions.
   */
  autoscaling: dictSchema(STATE_ENTRY_SCHEMAS.autoscaling).optional(),
  /** Shadow version per model (shadow.ts, docs/rollouts.md); absent until the first is set. Beside the version records, as autoscaling. */
  shadows: dictSchema(STATE_ENTRY_SCHEMAS.shadows).optional(),
  /** Query log settings per application (shared/query-log.ts); absent: no application logs. */
  query_log: dictSchema(STATE_ENTRY_SCHEMAS.query_log).optional(),
  /** Gated rollout per model, running or the last one ended (rollout.ts, docs/rollouts.md); absent until the first. */
  rollouts: dictSchema(STATE_ENTRY_SCHEMAS.rollouts).optional(),
});
export type ClusterState = z.infer<typeof ClusterStateSchema>;

export function emptyState(): ClusterState {
  return { revision: 0, applications: dict(), models: dict() };
}

/** A mutable deep copy whose records stay null-prototype (structuredClone would not keep that). */
export function cloneState(state: ClusterState): ClusterState {
  return cloneData(state);
}

/** A model replica connected to a query frontend, as get_all_containers reports it. */
export const ReplicaRecordSchema = z.object({
  model_id: z.string(),
  model_name: z.string(),
  model_version: z.string(),
  model_replica_id: z.number().int().nonnegative(),
  input_type: z.enum(INPUT_TYPES),
});
export type ReplicaRecord = z.infer<typeof ReplicaRecordSchema>;

/**
 * A state revision as one daemon instance numbered it. Revisions are only comparable within one
 * instance: a restarted daemon that restored an older generation numbers its states again.
 */
export const AppliedRevisionSchema = z.object({
  daemon: z.string().min(1).max(100),
  revision: z.number().int().nonnegative(),
});
export type AppliedRevision = z.infer<typeof AppliedRevisionSchema>;

/** What a query frontend reports to the management daemon (our extension of the admin API). */
export const ReplicaReportSchema = z.object({
  frontend_id: z.string().min(1),
  replicas: z.array(ReplicaRecordSchema),
  /** The snapshot this frontend has applied: which daemon instance numbered it, and its revision. */
  applied: AppliedRevisionSchema.optional(),
  /** Sent by a frontend that is shutting down: forget it now rather than after the TTL. */
  leaving: z.boolean().optional(),
});
export type ReplicaReport = z.infer<typeof ReplicaReportSchema>;

/**
 * The daemon's answer on APPLIED_REVISIONS_PATH: its instance and current revision, and for each
 * live frontend the revision it has applied of this instance's states (null: none yet, or only an
 * earlier instance's).
 */
export const AppliedRevisionsSchema = z.object({
  daemon: z.string(),
  revision: z.number().int().nonnegative(),
  frontends: z.array(z.object({ frontend_id: z.string(), revision: z.number().int().nonnegative().nullable() })),
});
export type AppliedRevisions = z.infer<typeof AppliedRevisionsSchema>;

/** Paths of our extensions to Clipper's admin API. */
export const WATCH_PATH = "/admin/watch";
/**
 * Liveness (GET; open like /admin/ping): answers while the process serves HTTP, even when
 * /admin/ping (readiness) answers 503 because writes are refused (docs/operations.md).
 */
export const LIVE_PATH = "/admin/live";
export const REPORT_REPLICAS_PATH = "/admin/report_replicas";
/** Which revision each live frontend has applied (GET; our extension). */
export const APPLIED_REVISIONS_PATH = "/admin/get_applied_revisions";
/** Response headers of every admin write: the revision it produced, and the daemon instance that numbered it. */
export const REVISION_HEADER = "x-clipper-revision";
export const DAEMON_INSTANCE_HEADER = "x-clipper-daemon";
/** Set to WRITE_OUTCOME_UNKNOWN on an error answer to a write that may nevertheless have been applied (the disk failed mid-write). */
export const WRITE_OUTCOME_HEADER = "x-clipper-write-outcome";
export const WRITE_OUTCOME_UNKNOWN = "unknown";
export const SET_APP_POLICY_PATH = "/admin/set_app_policy";
export const UPDATE_POLICY_STATE_PATH = "/admin/update_policy_state";
export const GET_POLICY_STATE_PATH = "/admin/get_policy_state";
/** The policy-state key of application-wide weights (feedback without a uid). */
export const APP_WIDE_STATE = "*";
/** Per-uid weight sets kept per application (beyond this, older uids are forgotten). */
export const MAX_POLICY_UIDS_PER_APP = 1000;
