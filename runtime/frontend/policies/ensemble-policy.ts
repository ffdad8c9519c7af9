/**
 * Ensemble: ask every linked model (current versions), combine what arrives by the deadline
 * (average for numbers, majority vote otherwise), report the agreement as `confidence` and which
 * models answered and which are missing. Below `threshold` the default output is answered, marked
 * `unsure` (the talk's "CAT / UNSURE").
 */
import { configOf, inLinkOrder, noOutputAnswer, resolveTargets } from "./common.js";
import { combine, type Contribution, parseModelOutput, roundConfidence } from "./outputs.js";
import type { PolicyAnswer, PolicyMetrics, PolicyQuery, SelectionPolicy } from "./policy.js";

export const UNSURE = "The models' confidence is below the application's threshold";

export class EnsemblePolicy implements SelectionPolicy {
  readonly name = "ensemble";

  constructor(private readonly metrics?: PolicyMetrics) {}

  async predict(query: PolicyQuery): Promise<PolicyAnswer> {
    const threshold = configOf(query, "ensemble")?.threshold;
    const linked = query.app.linked_models;
    const { targets, missing } = resolveTargets(query, linked);
    const outcomes = await Promise.all(targets.map((t) => query.caller.call(t, query.inputType, query.input, query.deadline)));
    const arrived: Contribution[] = [];
    targets.forEach((target, i) => {
      const outcome = outcomes[i]!;
      if (outcome.kind === "output") arrived.push({ model: target.name, value: parseModelOutput(outcome.output).value, weight: 1 });
      else missing.push(target.name);
    });
    const extra = { models: arrived.map((a) => a.model), missing_models: inLinkOrder(missing, linked) };
    const combined = combine(arrived, linked.length);
    if (!combined) return noOutputAnswer(outcomes, { confidence: 0, ...extra });
    for (const a of arrived) this.metrics?.policyChoice(query.app.name, this.name, a.model);
    const confidence = roundConfidence(combined.confidence);
    if (threshold !== undefined && combined.confidence < threshold) {
      return {
        kind: "default", reason: "unsure",
        explanation: `${UNSURE} (${confidence} < ${threshold})`,
        extra: { confidence, ...extra, unsure: true },
      };
    }
    return { kind: "output", output: JSON.stringify(combined.value), extra: { confidence, ...extra } };
  }

  async feedback(): Promise<void> {}
}
