/** Clipper's default-output explanations, and how a model call's outcome becomes an answer. */
import type { CallOutcome, ModelRef } from "../model-caller.js";
import type { PolicyAnswer } from "./policy.js";

export const NO_CONNECTED_MODELS = "No connected models found for query";
export const SLO_MISSED = "Failed to retrieve a prediction response within the specified latency SLO";
export const MODEL_FAILED = "The model failed to produce a prediction";
export const QUERY_SHED = "Query shed: the model cannot answer within the latency SLO with the work queued ahead of it";
export const QUERY_LATE = "Query dropped: the model's measured batch latency leaves no time to answer within the latency SLO";

/** Ours: a version scaled to zero had no replica connected by the deadline (docs/autoscaling.md). */
export function startingFromZero(model: string): string {
  return `No replica of ${model} yet: starting from zero`;
}

/** `model`: the version that was asked, recorded on the answer (the query log says who answered). */
export function outcomeToAnswer(outcome: CallOutcome, model?: ModelRef): PolicyAnswer {
  const answer = answerOf(outcome);
  if (model) answer.model = model;
  return answer;
}

function answerOf(outcome: CallOutcome): PolicyAnswer {
  switch (outcome.kind) {
    case "output":
      return outcome.cached ? { kind: "output", output: outcome.output, cached: true } : { kind: "output", output: outcome.output };
    case "unavailable":
      return { kind: "default", reason: "no_connected_models", explanation: NO_CONNECTED_MODELS };
    case "timeout":
      return { kind: "default", reason: "slo_missed", explanation: SLO_MISSED };
    case "failed":
      return { kind: "default", reason: "model_error", explanation: `${MODEL_FAILED}: ${outcome.reason}` };
    case "shed":
      return { kind: "default", reason: "overloaded", explanation: QUERY_SHED, retryAfterSeconds: outcome.retryAfterSeconds };
    case "late":
      return { kind: "default", reason: "dropped_late", explanation: `${QUERY_LATE} (${Math.round(outcome.latencyMs)} ms)` };
    case "cold_start":
      return { kind: "default", reason: "starting_from_zero", explanation: startingFromZero(outcome.model) };
  }
}
