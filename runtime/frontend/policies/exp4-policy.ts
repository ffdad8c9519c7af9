/**
 * Exp4 as a weighted ensemble: every linked model is asked; outputs are combined with the learned
 * weights (weighted average for numbers, weighted vote otherwise), with `confidence` the weighted
 * agreement. `/update` feedback charges each model its loss against the label (0 when equal; for
 * numbers |y − label| / scale, capped at 1; else 1) and sets w_i ← w_i · exp(−η · ℓ_i).
 *
 * Like Exp3, feedback is scored against the outputs remembered for (uid, input); feedback for an
 * input not remembered asks every model again and scores their answers.
 */
import { dict, hasOwn, own } from "../../shared/dict.js";
import { APP_WIDE_STATE } from "../../shared/state.js";
import type { CallOutcome } from "../model-caller.js";
import { DEFAULT_ETA, DEFAULT_SCALE, exp4Update } from "./bandits.js";
import { configOf, inLinkOrder, noOutputAnswer, resolveTargets, userOf } from "./common.js";
import type { BanditDeps } from "./exp3-policy.js";
import { combine, type Contribution, outputLoss, parseModelOutput, roundConfidence } from "./outputs.js";
import type { PolicyAnswer, PolicyFeedback, PolicyQuery, SelectionPolicy } from "./policy.js";

export class Exp4Policy implements SelectionPolicy {
  readonly name = "exp4";

  constructor(private readonly deps: BanditDeps) {}

  private weightsOf(app: string, uid: string | undefined, names: readonly string[]): number[] {
    const stored = this.deps.weights.get(app, userOf(uid) ?? APP_WIDE_STATE);
    return names.map((n) => own(stored, n) ?? 1);
  }

  private async askAll(query: Pick<PolicyQuery, "app" | "models" | "pinnedVersion" | "caller" | "inputType" | "input" | "deadline">) {
    const { targets, missing } = resolveTargets(query, query.app.linked_models);
    const outcomes: CallOutcome[] = await Promise.all(
      targets.map((t) => query.caller.call(t, query.inputType, query.input, query.deadline)),
    );
    const values = dict<unknown>();
    targets.forEach((t, i) => {
      const outcome = outcomes[i]!;
      if (outcome.kind === "output") values[t.name] = parseModelOutput(outcome.output).value;
      else missing.push(t.name);
    });
    return { targets, missing, outcomes, values };
  }

  async predict(query: PolicyQuery): Promise<PolicyAnswer> {
    const linked = query.app.linked_models;
    const { missing, outcomes, values } = await this.askAll(query);
    const weights = this.weightsOf(query.app.name, query.uid, linked);
    const arrived: Contribution[] = linked.flatMap((model, i) =>
      hasOwn(values, model) ? [{ model, value: values[model], weight: weights[i]! }] : []);
    this.deps.memory.remember(query.app.name, userOf(query.uid), query.input, { policy: this.name, values });
    const extra = { models: arrived.map((a) => a.model), missing_models: inLinkOrder(missing, linked) };
    const combined = combine(arrived, weights.reduce((a, b) => a + b, 0));
    if (!combined) return noOutputAnswer(outcomes, { confidence: 0, ...extra });
    for (const a of arrived) this.deps.metrics?.policyChoice(query.app.name, this.name, a.model);
    return {
      kind: "output",
      output: JSON.stringify(combined.value),
      extra: { confidence: roundConfidence(combined.confidence), ...extra },
    };
  }

  async feedback(feedback: PolicyFeedback): Promise<void> {
    const config = configOf(feedback, "exp4");
    const linked = feedback.app.linked_models;
    if (linked.length === 0) return;
    const remembered = this.deps.memory.take(feedback.app.name, userOf(feedback.uid), feedback.input);
    const values = remembered?.policy === this.name ? remembered.values : (await this.askAll(feedback)).values;
    const losses = linked.map((m) => (hasOwn(values, m) ? outputLoss(values[m], feedback.label, config?.scale ?? DEFAULT_SCALE) : undefined));
    if (losses.every((l) => l === undefined)) return;
    const next = exp4Update(this.weightsOf(feedback.app.name, feedback.uid, linked), losses, config?.eta ?? DEFAULT_ETA);
    this.deps.weights.set(feedback.app.name, userOf(feedback.uid) ?? APP_WIDE_STATE, dict(linked.map((m, i) => [m, next[i]!])));
  }
}
