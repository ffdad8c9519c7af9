/**
 * Gated rollouts (docs/rollouts.md#gated-rollouts): a model's traffic moves from its current version
 * to another through canary steps; after each step the daemon judges the new version on its shadow
 * figures (runtime/shared/shadow.ts) against the gates, and goes on, rolls back, or at the last step
 * makes it current. This is the contract between the daemon (which stores and drives the rollout),
 * the frontends (which split the traffic) and the library and CLI (which start, abort and show it).
 */
import { z } from "zod";

/** Starts a rollout (POST, a state write). */
export const START_ROLLOUT_PATH = "/admin/start_rollout";
/** Rolls a running rollout back (POST, a state write). */
export const ABORT_ROLLOUT_PATH = "/admin/abort_rollout";

export const DEFAULT_ROLLOUT_STEPS: readonly number[] = [1, 10, 50, 100];
export const DEFAULT_ROLLOUT_STEP_S = 60;
/** Shadow copies a step must see (answered, failed or timed out) before it is judged: a quiet step waits. */
export const DEFAULT_ROLLOUT_MIN_QUERIES = 20;
/** Longest step: a day, which also keeps step_s * 1000 within setTimeout's range. */
export const MAX_ROLLOUT_STEP_S = 86_400;

export const RolloutGatesSchema = z.object({
  /** The new version's p99 latency (ms) on the copies must not be above this. */
  max_p99_ms: z.number().positive().finite().optional(),
  /** Its agreement rate with the current version must not be below this, in [0, 1]. */
  min_agreement: z.number().min(0).max(1).optional(),
  /** Its share of copies with no output (model error, no replica, timeout) must not be above this, in [0, 1]. */
  max_default_rate: z.number().min(0).max(1).optional(),
});
export type RolloutGates = z.infer<typeof RolloutGatesSchema>;

export const ROLLOUT_PHASES = ["running", "promoted", "rolled_back"] as const;
export type RolloutPhase = (typeof ROLLOUT_PHASES)[number];

/** A model's rollout as stored in the state (keyed by model name); the last one stays after it ends. */
export const RolloutSchema = z.object({
  from_version: z.string(),
  to_version: z.string(),
  /** Percent of the queries to `to_version` at each step: whole numbers, increasing, in [1, 100], the last 100. */
  steps: z.array(z.number().int().min(1).max(100)).min(2),
  /** Index in `steps` of the step now (or last) in force. */
  step: z.number().int().nonnegative(),
  step_s: z.number().positive().max(MAX_ROLLOUT_STEP_S),
  min_queries: z.number().int().positive(),
  gates: RolloutGatesSchema,
  phase: z.enum(ROLLOUT_PHASES),
  /** Why it ended (absent while running). */
  reason: z.string().optional(),
});
export type Rollout = z.infer<typeof RolloutSchema>;

/** The share (percent) of a model's queries a running rollout sends to its new version; 0 when none applies. */
export function rolloutPercent(rollout: Rollout | undefined, currentVersion: string | null | undefined): number {
  if (!rollout || rollout.phase !== "running" || rollout.from_version !== currentVersion) return 0;
  return rollout.steps[rollout.step] ?? 0;
}

/** What `steps` is wrong with, or undefined when it is a valid list of steps. */
export function stepsProblem(steps: readonly number[]): string | undefined {
  if (steps.length < 2) return "--steps needs at least one step below 100 before the last, 100 (set-version switches at once)";
  for (const [i, s] of steps.entries()) {
    if (!Number.isInteger(s) || s < 1 || s > 100) return `each step must be a whole percent from 1 to 100, got ${s}`;
    if (i > 0 && s <= steps[i - 1]!) return `steps must increase, got ${steps[i - 1]} then ${s}`;
  }
  if (steps[steps.length - 1] !== 100) return `the last step must be 100 (the new version made current), got ${steps[steps.length - 1]}`;
  return undefined;
}

/** How far the step in force has got (kept in the daemon's memory; a restart starts the step over). */
export const RolloutProgressSchema = z.object({
  /** Seconds since the step began (or since the daemon took it up again after a restart). */
  step_elapsed_s: z.number().nonnegative(),
  /** Copies counted in the step so far, against `min_queries`. */
  step_queries: z.number().int().nonnegative(),
});
export type RolloutProgress = z.infer<typeof RolloutProgressSchema>;

/** The `rollout` field of the rollout status answer. */
export const RolloutStatusSchema = RolloutSchema.extend({
  /** The share of queries the new version answers now (0 once ended). */
  percent: z.number().min(0).max(100),
  progress: RolloutProgressSchema.nullable(),
});
export type RolloutStatus = z.infer<typeof RolloutStatusSchema>;
