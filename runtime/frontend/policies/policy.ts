/**
 * Selection policies: how an application turns its linked models' answers into one answer
 * (the model-selection layer of Clipper's paper). Each policy is one module; `PolicyRegistry`
 * (index.ts) picks one from the application's configuration. docs/policies.md describes them.
 */
import type { InputType } from "../../shared/input-types.js";
import type { AppRecord, ClusterState } from "../../shared/state.js";
import type { DefaultReason } from "../metrics.js";
import type { ModelCaller, ModelRef } from "../model-caller.js";

export interface PolicyQuery {
  app: AppRecord;
  models: ClusterState["models"];
  inputType: InputType;
  input: Buffer;
  /** Absolute deadline (frontend clock, ms). */
  deadline: number;
  /** `version` from the request body, pinning the linked model's version. */
  pinnedVersion?: string;
  /** Caller-supplied user id, for sticky canaries and per-user bandit state. */
  uid?: string;
  caller: ModelCaller;
  /** Gated rollouts (docs/rollouts.md): a running one sends `rolloutPoint` below its share to its new version. */
  rollouts?: ClusterState["rollouts"];
  /**
   * This query's point in [0, 1) for the rollout split: the uid's (sticky), else drawn once per
   * request. A function, asked only while a rollout runs: hashing every uid would cost each query.
   */
  rolloutPoint?: () => number;
}

/** What a policy decided for one input. */
export type PolicyAnswer =
  /**
   * `cached`: the one model answer it is came from the prediction cache (policies that combine or
   * compare several answers never set it: such an answer counts as the models'). `model`: the one
   * model version whose answer it is, when there is one.
   */
  | { kind: "output"; output: string; extra?: Record<string, unknown>; cached?: true; model?: ModelRef }
  | {
    kind: "default"; reason: DefaultReason; explanation: string; extra?: Record<string, unknown>;
    /** The one model version asked, when one was (the query log records which version answered). */
    model?: ModelRef;
    /** For reason "overloaded": when to retry (an application with shed_with_503 answers 503 with it). */
    retryAfterSeconds?: number;
  };

export interface PolicyFeedback {
  app: AppRecord;
  models: ClusterState["models"];
  inputType: InputType;
  input: Buffer;
  uid?: string;
  label: number | string;
  deadline: number;
  caller: ModelCaller;
}

export interface SelectionPolicy {
  readonly name: string;
  predict(query: PolicyQuery): Promise<PolicyAnswer>;
  /**
   * The same answer as `predict`, when it is known at once (a cache hit), or undefined: then ask
   * `predict`. Only for a policy whose answer can be synchronous; its metrics and answers must be
   * `predict`'s exactly (the query path's fast path, query-processor.ts).
   */
  answerNow?(query: PolicyQuery): PolicyAnswer | undefined;
  /** Learns from `/update`; policies that do not learn accept and ignore it, as Clipper did. */
  feedback(feedback: PolicyFeedback): Promise<void>;
}

/** Learned weights per application and state key (a uid, or "*" for application-wide). */
export interface WeightStore {
  get(app: string, key: string): Readonly<Record<string, number>> | undefined;
  /** Replaces the weights of (app, key): only the models given are kept. */
  set(app: string, key: string, weights: Record<string, number>): void;
}

/** Counters the policies feed (FrontendMetrics implements them). */
export interface PolicyMetrics {
  policyChoice(app: string, policy: string, model: string): void;
  canaryQuery(app: string, model: string, version: string, outcome: "output" | "default", seconds: number): void;
}
