/**
 * Exp3: each query plays one linked model, drawn with p_i = (1 − γ)·w_i/Σw + γ/K over the models
 * with a connected replica; `/update` feedback rewards the played model (1 when its output equals
 * the label, else 0) and updates its weight (bandits.ts). Weights are per uid when the query or
 * feedback carries one, else (and for uid 0, Clipper's default user) application-wide.
 *
 * Feedback is scored against the answer the application saw: the policy remembers, for a bounded
 * time, which model it played for (uid, input) and with what probability. Feedback for an input it
 * does not remember (expired, or never asked) plays a fresh round: it draws a model, asks it, and
 * scores its answer.
 */
import { dict, own } from "../../shared/dict.js";
import { APP_WIDE_STATE } from "../../shared/state.js";
import type { ModelRef } from "../model-caller.js";
import { outcomeToAnswer } from "./answers.js";
import { DEFAULT_GAMMA, exp3Probabilities, exp3Update, sampleIndex } from "./bandits.js";
import { configOf, inLinkOrder, noOutputAnswer, resolveTargets, userOf } from "./common.js";
import type { FeedbackMemory } from "./feedback-memory.js";
import { parseModelOutput, sameLabel } from "./outputs.js";
import type { PolicyAnswer, PolicyFeedback, PolicyMetrics, PolicyQuery, SelectionPolicy, WeightStore } from "./policy.js";

export interface BanditDeps {
  weights: WeightStore;
  memory: FeedbackMemory;
  random: () => number;
  metrics?: PolicyMetrics;
}

interface Arms {
  /** Every linked model with a version to ask: the models whose weights are kept. */
  targets: ModelRef[];
  weights: number[];
  /** Indexes (into targets) of the models with a connected replica. */
  live: number[];
  missing: string[];
}

export class Exp3Policy implements SelectionPolicy {
  readonly name = "exp3";

  constructor(private readonly deps: BanditDeps) {}

  private arms(query: Pick<PolicyQuery, "app" | "models" | "pinnedVersion" | "caller" | "uid">): Arms {
    const { targets, missing } = resolveTargets(query, query.app.linked_models);
    const stored = this.deps.weights.get(query.app.name, userOf(query.uid) ?? APP_WIDE_STATE);
    const weights = targets.map((t) => own(stored, t.name) ?? 1);
    const live: number[] = [];
    targets.forEach((t, i) => (query.caller.available(t) ? live.push(i) : missing.push(t.name)));
    return { targets, weights, live, missing };
  }

  /** Draws one live arm; returns its index into targets and its probability. */
  private draw(arms: Arms, gamma: number): { index: number; probability: number } {
    const probabilities = exp3Probabilities(arms.live.map((i) => arms.weights[i]!), gamma);
    const pick = sampleIndex(probabilities, this.deps.random());
    return { index: arms.live[pick]!, probability: probabilities[pick]! };
  }

  async predict(query: PolicyQuery): Promise<PolicyAnswer> {
    const gamma = configOf(query, "exp3")?.gamma ?? DEFAULT_GAMMA;
    const arms = this.arms(query);
    if (arms.live.length === 0) {
      return noOutputAnswer([], { models: [], missing_models: inLinkOrder(arms.missing, query.app.linked_models) });
    }
    const { index, probability } = this.draw(arms, gamma);
    const target = arms.targets[index]!;
    const outcome = await query.caller.call(target, query.inputType, query.input, query.deadline);
    this.deps.memory.remember(query.app.name, userOf(query.uid), query.input, {
      policy: this.name,
      values: dict(outcome.kind === "output" ? [[target.name, parseModelOutput(outcome.output).value]] : []),
      chosen: target.name,
      probability,
      arms: arms.live.length,
    });
    this.deps.metrics?.policyChoice(query.app.name, this.name, target.name);
    const answer = outcomeToAnswer(outcome, target);
    return { ...answer, extra: { ...answer.extra, answered_by: target.name } };
  }

  async feedback(feedback: PolicyFeedback): Promise<void> {
    const gamma = configOf(feedback, "exp3")?.gamma ?? DEFAULT_GAMMA;
    const arms = this.arms(feedback);
    if (arms.targets.length === 0) return;
    const remembered = this.deps.memory.take(feedback.app.name, userOf(feedback.uid), feedback.input);
    let chosen: string;
    let value: unknown;
    let probability: number;
    let k: number;
    if (remembered?.policy === this.name && remembered.chosen !== undefined && remembered.probability !== undefined) {
      chosen = remembered.chosen;
      value = own(remembered.values, chosen);
      probability = remembered.probability;
      k = remembered.arms ?? arms.live.length;
    } else {
      if (arms.live.length === 0) return;
      const draw = this.draw(arms, gamma);
      const target = arms.targets[draw.index]!;
      const outcome = await feedback.caller.call(target, feedback.inputType, feedback.input, feedback.deadline);
      chosen = target.name;
      value = outcome.kind === "output" ? parseModelOutput(outcome.output).value : undefined;
      probability = draw.probability;
      k = arms.live.length;
    }
    const index = arms.targets.findIndex((t) => t.name === chosen);
    if (index < 0) return; // unlinked since
    const reward = value !== undefined && sameLabel(value, feedback.label) ? 1 : 0;
    // With the K and p the model was played with.
    const next = exp3Update(arms.weights, index, reward, probability, gamma, k);
    this.deps.weights.set(feedback.app.name, userOf(feedback.uid) ?? APP_WIDE_STATE,
      dict(arms.targets.map((t, i) => [t.name, next[i]!])));
  }
}
