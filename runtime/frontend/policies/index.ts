/** Chooses an application's selection policy from its configuration (docs/policies.md). */
import type { AppRecord, PolicyName } from "../../shared/state.js";
import { CanaryPolicy } from "./canary-policy.js";
import { CascadePolicy } from "./cascade-policy.js";
import { DefaultPolicy } from "./default-policy.js";
import { EnsemblePolicy } from "./ensemble-policy.js";
import { Exp3Policy } from "./exp3-policy.js";
import { Exp4Policy } from "./exp4-policy.js";
import { FeedbackMemory } from "./feedback-memory.js";
import type { PolicyMetrics, SelectionPolicy, WeightStore } from "./policy.js";
import { InMemoryWeightStore } from "./weight-store.js";

export interface PolicyDeps {
  /** Learned weights; the query frontend passes its PolicyStateSync (durable via the daemon). */
  weights: WeightStore;
  /** Answers remembered for feedback. */
  memory: FeedbackMemory;
  /** Uniform in [0, 1); seeded in tests. */
  random: () => number;
  metrics?: PolicyMetrics;
  /** Monotonic milliseconds, for per-version latency. */
  clock?: () => number;
}

export class PolicyRegistry {
  private readonly policies: Record<PolicyName, SelectionPolicy>;

  constructor(deps: Partial<PolicyDeps> = {}) {
    const full: PolicyDeps = {
      weights: deps.weights ?? new InMemoryWeightStore(),
      memory: deps.memory ?? new FeedbackMemory(),
      random: deps.random ?? Math.random,
      metrics: deps.metrics,
      clock: deps.clock,
    };
    this.policies = {
      default: new DefaultPolicy(),
      ensemble: new EnsemblePolicy(full.metrics),
      exp3: new Exp3Policy(full),
      exp4: new Exp4Policy(full),
      canary: new CanaryPolicy(full),
      cascade: new CascadePolicy(full.metrics),
    };
  }

  forApp(app: AppRecord): SelectionPolicy {
    return this.policies[app.policy?.name ?? "default"];
  }
}

export type { PolicyAnswer, PolicyFeedback, PolicyMetrics, PolicyQuery, SelectionPolicy, WeightStore } from "./policy.js";
export { httpPolicyStateSender, PolicyStateSync, type PolicyStateUpdate } from "./state-sync.js";
export { FeedbackMemory } from "./feedback-memory.js";
export { InMemoryWeightStore } from "./weight-store.js";
