/**
 * Cascade ("IDK prediction cascades"): ask the listed models in order, fastest first, and stop at
 * the first answer whose confidence reaches the threshold. A model that is not linked, has no
 * version or replica, fails or misses the deadline is skipped and reported in `missing_models`.
 * When no answer reaches the threshold, the most confident one answers (the earliest on ties).
 * `answered_by` names the model whose answer it is; `models` lists those that answered.
 */
import type { CallOutcome, ModelRef } from "../model-caller.js";
import { configOf, noOutputAnswer, resolveTargets } from "./common.js";
import { type ParsedOutput, parseModelOutput, roundConfidence } from "./outputs.js";
import type { PolicyAnswer, PolicyMetrics, PolicyQuery, SelectionPolicy } from "./policy.js";

export class CascadePolicy implements SelectionPolicy {
  readonly name = "cascade";

  constructor(private readonly metrics?: PolicyMetrics) {}

  async predict(query: PolicyQuery): Promise<PolicyAnswer> {
    const config = configOf(query, "cascade");
    const order = config?.models ?? query.app.linked_models;
    const threshold = config?.threshold ?? 1;
    const missing: string[] = [];
    const answered: string[] = [];
    const failures: CallOutcome[] = [];
    let best: { model: string; target: ModelRef; output: ParsedOutput } | undefined;
    for (const name of order) {
      if (!query.app.linked_models.includes(name)) {
        missing.push(name);
        continue;
      }
      const target = resolveTargets(query, [name]).targets[0];
      if (!target || !query.caller.available(target)) {
        missing.push(name);
        continue;
      }
      const outcome = await query.caller.call(target, query.inputType, query.input, query.deadline);
      if (outcome.kind !== "output") {
        failures.push(outcome);
        missing.push(name);
        continue;
      }
      const output = parseModelOutput(outcome.output);
      answered.push(name);
      if (!best || output.confidence > best.output.confidence) best = { model: name, target, output };
      if (output.confidence >= threshold) break;
    }
    if (!best) return noOutputAnswer(failures, { models: answered, missing_models: missing });
    this.metrics?.policyChoice(query.app.name, this.name, best.model);
    return {
      kind: "output",
      output: JSON.stringify(best.output.value),
      model: best.target,
      extra: { confidence: roundConfidence(best.output.confidence), answered_by: best.model, models: answered, missing_models: missing },
    };
  }

  async feedback(): Promise<void> {}
}
