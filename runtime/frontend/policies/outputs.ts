/**
 * How policies read and compare model outputs, and combine several into one answer.
 *
 * - A model output that parses to a JSON object with a numeric `confidence` in [0, 1] carries its
 *   own confidence, and its value is its `label` (or `output`) field; any other output has
 *   confidence 1 and is its own value (parsed as JSON when it parses, else the text).
 * - Labels compare after JSON parsing: numbers numerically, strings exactly, anything else by its
 *   JSON text.
 */

export interface ParsedOutput {
  value: unknown;
  confidence: number;
}

export function parseModelOutput(text: string): ParsedOutput {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { value: text, confidence: 1 };
  }
  if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) {
    const record = parsed as Record<string, unknown>;
    const confidence = record.confidence;
    if (typeof confidence === "number" && confidence >= 0 && confidence <= 1) {
      if ("label" in record) return { value: record.label, confidence };
      if ("output" in record) return { value: record.output, confidence };
      const { confidence: _dropped, ...rest } = record;
      return { value: rest, confidence };
    }
  }
  return { value: parsed, confidence: 1 };
}

/** A key equal for equal labels: numbers numerically, strings exactly, others by JSON text. */
export function labelKey(value: unknown): string {
  if (typeof value === "number") return `n:${value === 0 ? 0 : value}`;
  if (typeof value === "string") return `s:${value}`;
  return `j:${JSON.stringify(value)}`;
}

export function sameLabel(a: unknown, b: unknown): boolean {
  return labelKey(a) === labelKey(b);
}

/**
 * Exp4's loss of one model's output against the feedback label, in [0, 1]: 0 when equal; for a
 * number against a numeric label, the distance divided by `scale`, capped at 1; else 1.
 */
export function outputLoss(value: unknown, label: unknown, scale = 1): number {
  if (sameLabel(value, label)) return 0;
  if (typeof value === "number" && typeof label === "number" && Number.isFinite(value)) {
    return Math.min(1, Math.abs(value - label) / scale);
  }
  return 1;
}

export interface Contribution {
  model: string;
  value: unknown;
  /** 1 in a plain ensemble; the model's bandit weight in Exp4. */
  weight: number;
}

export interface Combined {
  value: unknown;
  /** In [0, 1]. */
  confidence: number;
  method: "average" | "vote";
}

/**
 * Combines the outputs that arrived. `askedWeight` is the total weight of every model that should
 * have answered (arrived or missing), so a missing model lowers the confidence.
 *
 * - Every value a finite number: the weighted average. Confidence = (arrived weight / asked weight)
 *   × (1 − min(1, spread)), where spread is the weighted mean absolute deviation from the average
 *   divided by |average| (by the largest |value| when the average is 0).
 * - Otherwise a weighted majority vote (ties go to the label that reached the top score first, in
 *   the order the contributions are given). Confidence = weight for the winner / asked weight.
 */
export function combine(contributions: readonly Contribution[], askedWeight: number): Combined | undefined {
  if (contributions.length === 0) return undefined;
  // All-zero weights (every model unlearned to nothing) count equally rather than not at all.
  const allZero = contributions.every((c) => !(c.weight > 0));
  const weightOf = (c: Contribution) => (allZero ? 1 : Math.max(0, c.weight));
  const arrived = contributions.reduce((sum, c) => sum + weightOf(c), 0);
  const asked = Math.max(allZero ? contributions.length : askedWeight, arrived);
  if (contributions.every((c) => typeof c.value === "number" && Number.isFinite(c.value))) {
    const mean = contributions.reduce((sum, c) => sum + weightOf(c) * (c.value as number), 0) / arrived;
    const deviation = contributions.reduce((sum, c) => sum + weightOf(c) * Math.abs((c.value as number) - mean), 0) / arrived;
    const reference = mean !== 0 ? Math.abs(mean) : Math.max(...contributions.map((c) => Math.abs(c.value as number)));
    const spread = reference === 0 ? 0 : deviation / reference;
    return { value: mean, confidence: clampUnit((arrived / asked) * (1 - Math.min(1, spread))), method: "average" };
  }
  const tally = new Map<string, { value: unknown; weight: number }>();
  let winner: { value: unknown; weight: number } | undefined;
  for (const c of contributions) {
    const key = labelKey(c.value);
    const entry = tally.get(key) ?? { value: c.value, weight: 0 };
    entry.weight += weightOf(c);
    tally.set(key, entry);
    if (!winner || entry.weight > winner.weight) winner = entry;
  }
  return { value: winner!.value, confidence: clampUnit(winner!.weight / asked), method: "vote" };
}

function clampUnit(x: number): number {
  return Math.min(1, Math.max(0, x));
}

/** Confidence as reported in responses: six decimals are plenty. */
export function roundConfidence(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
