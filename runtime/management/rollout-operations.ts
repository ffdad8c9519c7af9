/**
 * The admin API of gated rollouts (our extension; docs/rollouts.md#gated-rollouts): start one, or
 * roll it back. The steps themselves are written by the daemon's driver (rollout-driver.ts); the
 * status is part of the shadow status answer (shadow-operations.ts). Pure functions over the state
 * like operations.ts.
 */
import { z } from "zod";
import { own } from "../shared/dict.js";
import {
  ABORT_ROLLOUT_PATH,
  DEFAULT_ROLLOUT_MIN_QUERIES,
  DEFAULT_ROLLOUT_STEP_S,
  DEFAULT_ROLLOUT_STEPS,
  MAX_ROLLOUT_STEP_S,
  type Rollout,
  RolloutGatesSchema,
  START_ROLLOUT_PATH,
  stepsProblem,
} from "../shared/rollout.js";
import { editModelEntries } from "./model-entries.js";
import { badRequest } from "./errors.js";
import { parseBody, spec, type WriteOperation } from "./operations.js";
import { endRollout } from "./rollout-state.js";
import { setShadow } from "./shadow-operations.js";

const BODIES = {
  start: spec(
    z.object({
      model_name: z.string(),
      model_version: z.string(),
      steps: z.array(z.number()).optional(),
      step_s: z.number().optional(),
      min_queries: z.number().optional(),
      max_p99_ms: z.number().optional(),
      min_agreement: z.number().optional(),
      max_default_rate: z.number().optional(),
    }),
    `{"model_name" := string, "model_version" := string, "steps" := [int] (optional: [1, 10, 50, 100]), ` +
      `"step_s" := number (optional: ${DEFAULT_ROLLOUT_STEP_S}), "min_queries" := int (optional: ${DEFAULT_ROLLOUT_MIN_QUERIES}), ` +
      `"max_p99_ms" := number > 0, "min_agreement" := number in [0, 1], "max_default_rate" := number in [0, 1] (each optional)}`,
  ),
  abort: spec(z.object({ model_name: z.string() }), `{"model_name" := string}`),
};

export const startRollout: WriteOperation = (state, body, replicas) => {
  const b = parseBody(body, BODIES.start);
  const model = own(state.models, b.model_name);
  if (!model) throw badRequest(`No model with name '${b.model_name}' exists.`);
  const running = own(state.rollouts, b.model_name);
  if (running?.phase === "running") {
    throw badRequest(`A rollout of '${b.model_name}' to version '${running.to_version}' is already running: abort it first`);
  }
  const steps = b.steps ?? [...DEFAULT_ROLLOUT_STEPS];
  const problem = stepsProblem(steps);
  if (problem) throw badRequest(problem);
  const stepS = b.step_s ?? DEFAULT_ROLLOUT_STEP_S;
  if (!Number.isFinite(stepS) || stepS <= 0 || stepS > MAX_ROLLOUT_STEP_S) throw badRequest(`step_s must be a number of seconds above 0 and at most ${MAX_ROLLOUT_STEP_S}, got ${stepS}`);
  const minQueries = b.min_queries ?? DEFAULT_ROLLOUT_MIN_QUERIES;
  if (!Number.isSafeInteger(minQueries) || minQueries < 1) throw badRequest(`min_queries must be a whole number ≥ 1, got ${minQueries}`);
  const gates = RolloutGatesSchema.safeParse({ max_p99_ms: b.max_p99_ms, min_agreement: b.min_agreement, max_default_rate: b.max_default_rate });
  if (!gates.success) {
    throw badRequest(`bad gate: ${gates.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")} ` +
      `(max_p99_ms above 0; min_agreement and max_default_rate from 0 to 1)`);
  }
  // The new version is compared through a shadow of it on every live query of the current one: the
  // shadow's checks (registered, not current, same input type, a connected replica) are the rollout's.
  setShadow(state, JSON.stringify({ model_name: b.model_name, model_version: b.model_version, percent: 100 }), replicas);
  // Always a fresh setting: the gates judge only what the version did during this rollout.
  const shadow = { model_version: b.model_version, percent: 100, since_revision: state.revision + 1 };
  const rollout: Rollout = {
    from_version: model.current_version!, to_version: b.model_version, steps, step: 0, step_s: stepS,
    min_queries: minQueries, gates: gates.data, phase: "running",
  };
  const text = `Rolling out ${b.model_name}:${b.model_version} over ${model.current_version} through ${steps.map((s) => `${s}%`).join(", ")}`;
  return {
    changes: [{ field: "shadows", key: b.model_name, value: shadow }, { field: "rollouts", key: b.model_name, value: rollout }],
    text,
    event: { kind: "rollout_start", model_name: b.model_name, model_version: b.model_version, from: 0, to: steps[0]!, reason: `started from version '${model.current_version}'` },
  };
};

export const abortRollout: WriteOperation = (state, body) => {
  const b = parseBody(body, BODIES.abort);
  if (!own(state.models, b.model_name)) throw badRequest(`No model with name '${b.model_name}' exists.`);
  const rollout = own(state.rollouts, b.model_name);
  if (rollout?.phase !== "running") throw badRequest(`Model '${b.model_name}' has no rollout running`);
  const { changes, result: event } = editModelEntries(state, b.model_name, (next) => endRollout(next, b.model_name, "rolled_back", "aborted through the admin API")!);
  return { changes, event, text: `Rolled back the rollout of ${b.model_name}:${rollout.to_version}; version '${rollout.from_version}' answers every query` };
};

export const ROLLOUT_WRITE_OPERATIONS: Readonly<Record<string, WriteOperation>> = {
  [START_ROLLOUT_PATH]: startRollout,
  [ABORT_ROLLOUT_PATH]: abortRollout,
};
