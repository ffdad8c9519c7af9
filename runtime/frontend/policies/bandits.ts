/**
 * The bandit arithmetic of Exp3 and Exp4 (Auer, Cesa-Bianchi, Freund, Schapire 2002), as pure
 * functions so tests can check them against hand-computed numbers.
 *
 * Weights are kept normalized so the largest is 1 (probabilities and weighted votes depend only on
 * ratios, and this keeps exp() from overflowing or underflowing over a long stream), and never
 * below WEIGHT_FLOOR, so a model that was wrong for a long time can still win back weight.
 */

export const WEIGHT_FLOOR = 1e-12;
export const DEFAULT_GAMMA = 0.1;
export const DEFAULT_ETA = 0.5;
export const DEFAULT_SCALE = 1;

export function normalizeWeights(weights: readonly number[]): number[] {
  const max = Math.max(...weights.filter((w) => Number.isFinite(w)));
  if (!(max > 0)) return weights.map(() => 1);
  return weights.map((w) => (Number.isFinite(w) ? Math.max(WEIGHT_FLOOR, w / max) : 1));
}

/** Exp3: p_i = (1 − γ)·w_i/Σw + γ/K. */
export function exp3Probabilities(weights: readonly number[], gamma: number): number[] {
  const k = weights.length;
  const sum = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => (1 - gamma) * (w / sum) + gamma / k);
}

/**
 * Exp3's update after playing arm `chosen` (drawn with `probability`) and seeing `reward` in [0, 1]:
 * x̂ = r / p, w_chosen ← w_chosen · exp(γ · x̂ / K); the others are unchanged. Then normalized.
 * K is the number of arms the draw was made among (by default, all of `weights`).
 */
export function exp3Update(
  weights: readonly number[], chosen: number, reward: number, probability: number, gamma: number,
  k: number = weights.length,
): number[] {
  const estimate = reward / probability;
  const next = weights.map((w, i) => (i === chosen ? w * Math.exp((gamma * estimate) / k) : w));
  return normalizeWeights(next);
}

/**
 * Exp4 (here: experts = the linked models, the policy = their weighted ensemble): after feedback
 * every model with a known loss ℓ_i in [0, 1] gets w_i ← w_i · exp(−η · ℓ_i); models whose output
 * is unknown (`undefined` loss) keep their weight. Then normalized.
 */
export function exp4Update(weights: readonly number[], losses: readonly (number | undefined)[], eta: number): number[] {
  return normalizeWeights(weights.map((w, i) => {
    const loss = losses[i];
    return loss === undefined ? w : w * Math.exp(-eta * loss);
  }));
}

/** The index whose cumulative probability first exceeds `u` in [0, 1). */
export function sampleIndex(probabilities: readonly number[], u: number): number {
  let cumulative = 0;
  for (let i = 0; i < probabilities.length; i++) {
    cumulative += probabilities[i]!;
    if (u < cumulative) return i;
  }
  return probabilities.length - 1;
}
