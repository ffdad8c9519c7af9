/**
 * Selection policies without a cluster: the bandit arithmetic against hand-computed numbers,
 * convergence on simulated streams, ensemble / cascade / canary decisions with a scripted model
 * caller and seeded randomness, the frontend's weight sync, and the policy spec syntax. The CLI and admin API
 * halves are in test/policies.test.ts.
 */
import { describe, expect, it } from "vitest";
import type { CallOutcome, ModelCaller, ModelRef } from "../../runtime/frontend/model-caller.js";
import { exp3Probabilities, exp3Update, exp4Update, normalizeWeights, sampleIndex } from "../../runtime/frontend/policies/bandits.js";
import { pickVersion } from "../../runtime/frontend/policies/canary-policy.js";
import { FeedbackMemory } from "../../runtime/frontend/policies/feedback-memory.js";
import { InMemoryWeightStore, PolicyRegistry, PolicyStateSync, type PolicyStateUpdate } from "../../runtime/frontend/policies/index.js";
import { combine, outputLoss, parseModelOutput, sameLabel } from "../../runtime/frontend/policies/outputs.js";
import type { PolicyAnswer } from "../../runtime/frontend/policies/policy.js";
import { seededRandom } from "../../runtime/frontend/policies/random.js";
import { QueryError } from "../../runtime/frontend/query-errors.js";
import { SLO_MISSED } from "../../runtime/frontend/policies/answers.js";
import type { AppRecord, ClusterState, PolicyConfig } from "../../runtime/shared/state.js";
import { formatPolicy, parsePolicySpec, PolicySpecError } from "../../src/policy-spec.js";

// ---------------------------------------------------------------------------------------------
// A scripted model caller and small builders

type Script = (version: string, input: Buffer) => CallOutcome | Promise<CallOutcome>;

function scriptedCaller(scripts: Record<string, Script>, unavailable: string[] = []) {
  const calls: string[] = [];
  const caller = {
    available: (m: ModelRef) => m.name in scripts && !unavailable.includes(m.name) && !unavailable.includes(`${m.name}:${m.version}`),
    call: async (m: ModelRef, _type: string, input: Buffer): Promise<CallOutcome> => {
      calls.push(`${m.name}:${m.version}`);
      const script = scripts[m.name];
      if (!script || unavailable.includes(m.name) || unavailable.includes(`${m.name}:${m.version}`)) return { kind: "unavailable" };
      return script(m.version, input);
    },
  };
  return { calls, caller: caller as unknown as ModelCaller };
}

const out = (output: string): CallOutcome => ({ kind: "output", output });

function modelsOf(spec: Record<string, string[]>): ClusterState["models"] {
  return Object.fromEntries(Object.entries(spec).map(([name, versions]) => [name, {
    name,
    current_version: versions.at(-1) ?? null,
    versions: Object.fromEntries(versions.map((v) => [v, {
      model_name: name, model_version: v, labels: [], input_type: "doubles" as const,
      container_name: "NO_CONTAINER", model_data_path: "x", batch_size: -1,
    }])),
  }]));
}

function appOf(policy: PolicyConfig | undefined, linked: string[], name = "app"): AppRecord {
  return { name, input_type: "doubles", default_output: "-1", latency_slo_micros: 100_000, linked_models: linked, ...(policy ? { policy } : {}) };
}

const INPUT = Buffer.from([1, 2, 3]);

function query(app: AppRecord, models: ClusterState["models"], caller: ModelCaller, extra: { uid?: string; pinnedVersion?: string; input?: Buffer } = {}) {
  return { app, models, inputType: "doubles" as const, input: extra.input ?? INPUT, deadline: performance.now() + 1000, caller, ...extra };
}

function feedbackOf(app: AppRecord, models: ClusterState["models"], caller: ModelCaller, label: number | string, extra: { uid?: string; input?: Buffer } = {}) {
  return { app, models, inputType: "doubles" as const, input: extra.input ?? INPUT, label, deadline: performance.now() + 1000, caller, ...extra };
}

function extraOf(answer: PolicyAnswer): Record<string, unknown> {
  return answer.extra ?? {};
}

// ---------------------------------------------------------------------------------------------

describe("Exp3 arithmetic (hand-computed)", () => {
  it("mixes weights with uniform exploration: p_i = (1 − γ)·w_i/Σw + γ/K", () => {
    expect(exp3Probabilities([1, 1, 1], 0.3)).toEqual([1 / 3, 1 / 3, 1 / 3].map((p) => expect.closeTo(p, 12)));
    // w = [2, 1, 1], γ = 0.2: 0.8·2/4 + 0.2/3 = 0.466667; 0.8·1/4 + 0.2/3 = 0.266667.
    const p = exp3Probabilities([2, 1, 1], 0.2);
    expect(p[0]).toBeCloseTo(0.4666667, 6);
    expect(p[1]).toBeCloseTo(0.2666667, 6);
    expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  it("multiplies the played arm by exp(γ·(r/p)/K), then normalizes so the largest weight is 1", () => {
    // w = [1,1,1], γ = 0.3, arm 0 played with p = 1/3, reward 1: x̂ = 3, w0 = e^(0.3·3/3) = e^0.3 = 1.3498588.
    // Normalized by the largest: [1, e^-0.3, e^-0.3] = [1, 0.7408182, 0.7408182].
    const next = exp3Update([1, 1, 1], 0, 1, 1 / 3, 0.3);
    expect(next[0]).toBe(1);
    expect(next[1]).toBeCloseTo(0.7408182, 6);
    expect(next[2]).toBeCloseTo(0.7408182, 6);
    // w = [1, 0.5], γ = 0.2, arm 1 played with p = 0.4, reward 1: x̂ = 2.5, factor e^(0.2·2.5/2) = e^0.25 = 1.2840254,
    // w1 = 0.6420127; the largest is still 1.
    const second = exp3Update([1, 0.5], 1, 1, 0.4, 0.2);
    expect(second[0]).toBe(1);
    expect(second[1]).toBeCloseTo(0.6420127, 6);
    // Reward 0 changes nothing.
    expect(exp3Update([1, 0.5], 1, 0, 0.4, 0.2)).toEqual([1, 0.5]);
    // K given explicitly (the arms live when the draw was made): factor e^(0.3·3/2) = e^0.45 = 1.5683122.
    const withK = exp3Update([1, 1, 1], 0, 1, 1 / 3, 0.3, 2);
    expect(withK[1]).toBeCloseTo(1 / 1.5683122, 6);
  });

  it("normalizes without overflow over a long winning streak, with a floor for losers", () => {
    let w = [1, 1];
    for (let i = 0; i < 100_000; i++) w = exp3Update(w, 0, 1, 0.5, 1);
    expect(w[0]).toBe(1);
    expect(Number.isFinite(w[1])).toBe(true);
    expect(w[1]).toBeGreaterThan(0);
    expect(normalizeWeights([0, 0])).toEqual([1, 1]);
  });

  it("samples by cumulative probability", () => {
    expect(sampleIndex([0.2, 0.5, 0.3], 0)).toBe(0);
    expect(sampleIndex([0.2, 0.5, 0.3], 0.2)).toBe(1);
    expect(sampleIndex([0.2, 0.5, 0.3], 0.69)).toBe(1);
    expect(sampleIndex([0.2, 0.5, 0.3], 0.7)).toBe(2);
    expect(sampleIndex([0.2, 0.5, 0.3], 0.9999999)).toBe(2);
  });

  it("converges on the always-right model: p ≥ 0.9 within 200 rounds (K = 3, γ = 0.1), for every seed", () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 42]) {
      const random = seededRandom(seed);
      let w = [1, 1, 1];
      let converged: number | undefined;
      for (let round = 1; round <= 400; round++) {
        const p = exp3Probabilities(w, 0.1);
        const i = sampleIndex(p, random());
        w = exp3Update(w, i, i === 1 ? 1 : 0, p[i]!, 0.1);
        if (converged === undefined && exp3Probabilities(w, 0.1)[1]! >= 0.9) converged = round;
      }
      expect(converged, `seed ${seed}`).toBeLessThanOrEqual(200);
      // And it stays there: the best reachable is (1 − γ) + γ/K = 0.9333.
      expect(exp3Probabilities(w, 0.1)[1]).toBeGreaterThan(0.93);
    }
  });
});

describe("Exp4 arithmetic (hand-computed)", () => {
  it("multiplies each weight by exp(−η·ℓ) and normalizes", () => {
    // [1,1,1], η = 0.5, losses [0, 1, 0.5] → [1, e^-0.5, e^-0.25] = [1, 0.6065307, 0.7788008].
    const next = exp4Update([1, 1, 1], [0, 1, 0.5], 0.5);
    expect(next[0]).toBe(1);
    expect(next[1]).toBeCloseTo(0.6065307, 6);
    expect(next[2]).toBeCloseTo(0.7788008, 6);
    // An unknown loss (no output) keeps the weight; then normalized by the largest (the third, 1):
    // [e^-0.5, e^-0.5, 1] = [0.6065307, 0.6065307, 1].
    const partial = exp4Update([1, 1, 1], [1, 1, undefined], 0.5);
    expect(partial[0]).toBeCloseTo(0.6065307, 6);
    expect(partial[2]).toBe(1);
  });

  it("charges numeric outputs |y − label| / scale, capped at 1, and labels 0 or 1", () => {
    expect(outputLoss(7, 5, 4)).toBe(0.5);
    expect(outputLoss(100, 5, 4)).toBe(1);
    expect(outputLoss(5, 5, 4)).toBe(0);
    expect(outputLoss("cat", "cat")).toBe(0);
    expect(outputLoss("cat", "dog")).toBe(1);
    expect(outputLoss("6", 6)).toBe(1); // a string is not a number
  });
});

describe("outputs: confidence, labels and combination", () => {
  it("reads a model's own confidence and label, else confidence 1", () => {
    expect(parseModelOutput('{"label": "cat", "confidence": 0.7}')).toEqual({ value: "cat", confidence: 0.7 });
    expect(parseModelOutput('{"output": 3.5, "confidence": 1}')).toEqual({ value: 3.5, confidence: 1 });
    expect(parseModelOutput('{"label": "cat", "confidence": 7}')).toEqual({ value: { label: "cat", confidence: 7 }, confidence: 1 });
    expect(parseModelOutput("6.0")).toEqual({ value: 6, confidence: 1 });
    expect(parseModelOutput("cat")).toEqual({ value: "cat", confidence: 1 });
    expect(sameLabel(parseModelOutput("6.0").value, 6)).toBe(true);
    expect(sameLabel(parseModelOutput('"cat"').value, parseModelOutput("cat").value)).toBe(true);
  });

  it("averages numbers: confidence = arrived share × (1 − mean absolute deviation / |mean|)", () => {
    const c = (values: number[], asked = values.length) =>
      combine(values.map((value, i) => ({ model: `m${i}`, value, weight: 1 })), asked)!;
    expect(c([6, 6, 6])).toEqual({ value: 6, confidence: 1, method: "average" });
    // [1, 2]: mean 1.5, deviation 0.5, spread 1/3 → 2/3.
    expect(c([1, 2]).value).toBe(1.5);
    expect(c([1, 2]).confidence).toBeCloseTo(2 / 3, 12);
    // Two of three answered, and agree: 2/3.
    expect(c([6, 6], 3).confidence).toBeCloseTo(2 / 3, 12);
    expect(c([-1, 1]).confidence).toBe(0); // mean 0: spread measured against the largest |value|
  });

  it("votes on labels: confidence = votes for the winner / models asked; ties go to the first", () => {
    const v = (values: unknown[], asked = values.length) =>
      combine(values.map((value, i) => ({ model: `m${i}`, value, weight: 1 })), asked)!;
    expect(v(["cat", "cat", "dog"])).toEqual({ value: "cat", confidence: 2 / 3, method: "vote" });
    expect(v(["dog", "cat"], 3)).toEqual({ value: "dog", confidence: 1 / 3, method: "vote" });
    expect(v([6, "6", 6]).value).toBe(6); // mixed: a vote, numbers compared numerically
    // Weighted (Exp4): 0.2 + 0.2 for "dog" against 1 for "cat".
    const weighted = combine([
      { model: "a", value: "dog", weight: 0.2 }, { model: "b", value: "cat", weight: 1 }, { model: "c", value: "dog", weight: 0.2 },
    ], 1.4)!;
    expect(weighted.value).toBe("cat");
    expect(weighted.confidence).toBeCloseTo(1 / 1.4, 12);
  });
});

describe("ensemble policy", () => {
  const models = modelsOf({ a: ["1"], b: ["1"], c: ["1"] });
  const policies = new PolicyRegistry({ random: seededRandom(1) });

  it("combines every linked model's output and names who answered", async () => {
    const { caller, calls } = scriptedCaller({ a: () => out("cat"), b: () => out('{"label": "cat", "confidence": 0.4}'), c: () => out('"dog"') });
    const app = appOf({ name: "ensemble" }, ["a", "b", "c"]);
    const answer = await policies.forApp(app).predict(query(app, models, caller));
    expect(answer).toMatchObject({ kind: "output", output: '"cat"' });
    expect(extraOf(answer)).toEqual({ confidence: 0.666667, models: ["a", "b", "c"], missing_models: [] });
    expect(calls.sort()).toEqual(["a:1", "b:1", "c:1"]);
  });

  it("answers at the deadline with what arrived and says which models are missing", async () => {
    const { caller } = scriptedCaller({ a: () => out("6.0"), b: () => ({ kind: "timeout" }), c: () => out("6") }, []);
    const app = appOf({ name: "ensemble" }, ["a", "b", "c", "d"]);
    const answer = await policies.forApp(app).predict(query(app, models, caller));
    expect(answer).toMatchObject({ kind: "output", output: "6" });
    expect(extraOf(answer)).toEqual({ confidence: 0.5, models: ["a", "c"], missing_models: ["b", "d"] });
  });

  it("answers the default output marked unsure below the threshold", async () => {
    const { caller } = scriptedCaller({ a: () => out("cat"), b: () => out("dog"), c: () => out("bird") });
    const app = appOf({ name: "ensemble", threshold: 0.6 }, ["a", "b", "c"]);
    const answer = await policies.forApp(app).predict(query(app, models, caller));
    expect(answer).toMatchObject({ kind: "default", reason: "unsure" });
    expect(extraOf(answer)).toMatchObject({ confidence: 0.333333, unsure: true, models: ["a", "b", "c"] });
  });

  it("answers the default with the SLO explanation when nothing arrived", async () => {
    const { caller } = scriptedCaller({ a: () => ({ kind: "timeout" }), b: () => ({ kind: "unavailable" }) });
    const app = appOf({ name: "ensemble" }, ["a", "b"]);
    const answer = await policies.forApp(app).predict(query(app, models, caller));
    expect(answer).toMatchObject({ kind: "default", reason: "slo_missed", explanation: SLO_MISSED });
    expect(extraOf(answer)).toEqual({ confidence: 0, models: [], missing_models: ["a", "b"] });
  });

  it("accepts and ignores feedback", async () => {
    const { caller, calls } = scriptedCaller({ a: () => out("1") });
    const app = appOf({ name: "ensemble" }, ["a"]);
    await policies.forApp(app).feedback(feedbackOf(app, models, caller, 1));
    expect(calls).toEqual([]);
  });
});

describe("Exp3 and Exp4 policies on a simulated stream", () => {
  const models = modelsOf({ a: ["1"], b: ["1"], c: ["1"] });

  it("Exp3 learns from /update feedback to play the always-right model (p ≥ 0.9 within 200 rounds)", async () => {
    const weights = new InMemoryWeightStore();
    const policies = new PolicyRegistry({ random: seededRandom(7), weights });
    // b is always right: its output is the label (the input's first byte); the others are off by one.
    const { caller } = scriptedCaller({
      a: (_v, input) => out(String(input[0]! + 1)), b: (_v, input) => out(String(input[0]!)), c: (_v, input) => out(String(input[0]! + 2)),
    });
    const app = appOf({ name: "exp3", gamma: 0.1 }, ["a", "b", "c"]);
    const policy = policies.forApp(app);
    let converged: number | undefined;
    for (let round = 1; round <= 300; round++) {
      const input = Buffer.from([round % 50]);
      const answer = await policy.predict(query(app, models, caller, { input }));
      expect(extraOf(answer).answered_by).toMatch(/^[abc]$/);
      await policy.feedback(feedbackOf(app, models, caller, round % 50, { input }));
      const w = weights.get("app", "*")!;
      const p = exp3Probabilities([w.a!, w.b!, w.c!], 0.1);
      if (converged === undefined && p[1]! >= 0.9) converged = round;
    }
    expect(converged).toBeLessThanOrEqual(200);
  });

  it("Exp3 keeps per-uid weights apart from the application-wide ones", async () => {
    const weights = new InMemoryWeightStore();
    const policies = new PolicyRegistry({ random: seededRandom(3), weights });
    const { caller } = scriptedCaller({ a: () => out("1"), b: () => out("2") });
    const app = appOf({ name: "exp3" }, ["a", "b"]);
    await policies.forApp(app).predict(query(app, models, caller, { uid: "7" }));
    await policies.forApp(app).feedback(feedbackOf(app, models, caller, 1, { uid: "7" }));
    expect(weights.get("app", "7")).toBeDefined();
    expect(weights.get("app", "*")).toBeUndefined();
  });

  it("Exp3 scores feedback for an input it never answered by playing a fresh round", async () => {
    const weights = new InMemoryWeightStore();
    const policies = new PolicyRegistry({ random: () => 0, weights }); // always draws the first arm
    const { caller, calls } = scriptedCaller({ a: () => out("5"), b: () => out("6") });
    const app = appOf({ name: "exp3", gamma: 0.5 }, ["a", "b"]);
    await policies.forApp(app).feedback(feedbackOf(app, models, caller, 5));
    expect(calls).toEqual(["a:1"]);
    // p_a = 0.5·0.5 + 0.25 = 0.5, reward 1: w_a = e^(0.5·2/2) = e^0.5 → normalized [1, e^-0.5].
    expect(weights.get("app", "*")!.b).toBeCloseTo(Math.exp(-0.5), 9);
  });

  it("Exp4 answers with the always-right model after 2 feedback rounds, confidence ≥ 0.98 after 10", async () => {
    const weights = new InMemoryWeightStore();
    const policies = new PolicyRegistry({ weights });
    // a and c agree on a wrong label; b is right.
    const { caller } = scriptedCaller({ a: () => out('"dog"'), b: () => out('"cat"'), c: () => out('"dog"') });
    const app = appOf({ name: "exp4", eta: 0.5 }, ["a", "b", "c"]);
    const policy = policies.forApp(app);
    const first = await policy.predict(query(app, models, caller));
    expect(first).toMatchObject({ output: '"dog"' });
    const outputs: string[] = [];
    const confidences: number[] = [];
    for (let round = 1; round <= 10; round++) {
      await policy.feedback(feedbackOf(app, models, caller, "cat"));
      const answer = await policy.predict(query(app, models, caller));
      outputs.push((answer as { output: string }).output);
      confidences.push(extraOf(answer).confidence as number);
    }
    // After round r: w_a = w_c = e^(-0.5r); "cat" wins once 1 > 2e^(-0.5r), i.e. r ≥ 2.
    expect(outputs[0]).toBe('"dog"');
    expect(outputs.slice(1).every((o) => o === '"cat"')).toBe(true);
    // Round 10: 1 / (1 + 2e^-5) = 0.98670.
    expect(confidences[9]).toBeCloseTo(1 / (1 + 2 * Math.exp(-5)), 5);
    expect(weights.get("app", "*")!.a).toBeCloseTo(Math.exp(-5), 9);
  });

  it("Exp4 with numbers: a weighted average, losses scaled", async () => {
    const weights = new InMemoryWeightStore();
    weights.set("app", "*", { a: 1, b: 0.25 });
    const policies = new PolicyRegistry({ weights });
    const { caller } = scriptedCaller({ a: () => out("10"), b: () => out("20") });
    const app = appOf({ name: "exp4", eta: 1, scale: 20 }, ["a", "b"]);
    const answer = await policies.forApp(app).predict(query(app, models, caller));
    // (1·10 + 0.25·20) / 1.25 = 12.
    expect(answer).toMatchObject({ kind: "output", output: "12" });
    await policies.forApp(app).feedback(feedbackOf(app, models, caller, 20));
    // a's loss |10 − 20| / 20 = 0.5 → e^-0.5; b's 0. Normalized by the largest (a's e^-0.5 vs b's 0.25).
    const w = weights.get("app", "*")!;
    expect(w.a).toBe(1);
    expect(w.b).toBeCloseTo(0.25 / Math.exp(-0.5), 9);
  });
});

describe("cascade policy", () => {
  const models = modelsOf({ fast: ["1"], slow: ["1"] });
  const policies = new PolicyRegistry();
  const app = appOf({ name: "cascade", models: ["fast", "slow"], threshold: 0.8 }, ["fast", "slow"]);

  it("answers from the fast model when it is confident enough, without asking the slow one", async () => {
    const { caller, calls } = scriptedCaller({ fast: () => out('{"label": "cat", "confidence": 0.9}'), slow: () => out('"dog"') });
    const answer = await policies.forApp(app).predict(query(app, models, caller));
    expect(answer).toMatchObject({ kind: "output", output: '"cat"' });
    expect(extraOf(answer)).toEqual({ confidence: 0.9, answered_by: "fast", models: ["fast"], missing_models: [] });
    expect(calls).toEqual(["fast:1"]);
  });

  it("asks the slow model when the fast one is unsure (confidence exactly at the threshold is enough)", async () => {
    const { caller, calls } = scriptedCaller({ fast: () => out('{"label": "cat", "confidence": 0.79}'), slow: () => out('"dog"') });
    const answer = await policies.forApp(app).predict(query(app, models, caller));
    expect(answer).toMatchObject({ output: '"dog"' });
    expect(extraOf(answer)).toMatchObject({ confidence: 1, answered_by: "slow", models: ["fast", "slow"] });
    expect(calls).toEqual(["fast:1", "slow:1"]);
    const atThreshold = scriptedCaller({ fast: () => out('{"label": "cat", "confidence": 0.8}'), slow: () => out('"dog"') });
    expect(extraOf(await policies.forApp(app).predict(query(app, models, atThreshold.caller))).answered_by).toBe("fast");
  });

  it("keeps the best answer so far when the slow model fails, and skips models it cannot ask", async () => {
    const { caller } = scriptedCaller({ fast: () => out('{"label": "cat", "confidence": 0.5}'), slow: () => ({ kind: "failed", reason: "boom" }) });
    const answer = await policies.forApp(app).predict(query(app, models, caller));
    expect(answer).toMatchObject({ output: '"cat"' });
    expect(extraOf(answer)).toEqual({ confidence: 0.5, answered_by: "fast", models: ["fast"], missing_models: ["slow"] });
    const down = scriptedCaller({ fast: () => out("1"), slow: () => out('"dog"') }, ["fast"]);
    const fallback = await policies.forApp(app).predict(query(app, models, down.caller));
    expect(extraOf(fallback)).toMatchObject({ answered_by: "slow", missing_models: ["fast"] });
  });
});

describe("canary policy", () => {
  const models = modelsOf({ m: ["1", "2"] });
  const app = appOf({ name: "canary", weights: { "1": 95, "2": 5 } }, ["m"]);
  const scripts = { m: (v: string) => out(`"v${v}"`) };

  it("splits traffic by weight (95/5 over 10,000 queries, seeded)", async () => {
    const policies = new PolicyRegistry({ random: seededRandom(2024) });
    const { caller } = scriptedCaller(scripts);
    const counts: Record<string, number> = { "1": 0, "2": 0 };
    for (let i = 0; i < 10_000; i++) {
      const answer = await policies.forApp(app).predict(query(app, models, caller));
      counts[extraOf(answer).version as string]!++;
    }
    expect(counts["2"]! / 10_000).toBeGreaterThan(0.043);
    expect(counts["2"]! / 10_000).toBeLessThan(0.057);
  });

  it("is sticky per uid, and spreads uids by weight", async () => {
    const policies = new PolicyRegistry({ random: seededRandom(1) });
    const { caller } = scriptedCaller(scripts);
    const versionOf = async (uid: string) => extraOf(await policies.forApp(app).predict(query(app, models, caller, { uid }))).version;
    const first = await versionOf("user-42");
    for (let i = 0; i < 20; i++) expect(await versionOf("user-42")).toBe(first);
    let onTwo = 0;
    for (let u = 0; u < 5_000; u++) if ((await versionOf(String(u))) === "2") onTwo++;
    expect(onTwo / 5_000).toBeGreaterThan(0.035);
    expect(onTwo / 5_000).toBeLessThan(0.065);
    // Growing the last version's share keeps its users there.
    expect(pickVersion([["1", 90], ["2", 10]], 0.96)).toBe("2");
    expect(pickVersion([["1", 95], ["2", 5]], 0.96)).toBe("2");
    expect(pickVersion([["1", 0], ["2", 0]], 0.5)).toBeUndefined();
  });

  it("treats a missing or unreachable version as weight 0 and says so; a pinned version wins", async () => {
    const policies = new PolicyRegistry({ random: () => 0.99 });
    const { caller } = scriptedCaller(scripts);
    const toMissing = appOf({ name: "canary", weights: { "1": 50, "3": 50 } }, ["m"]);
    const answer = await policies.forApp(toMissing).predict(query(toMissing, models, caller));
    expect(answer).toMatchObject({ kind: "output", output: '"v1"' });
    expect(extraOf(answer)).toEqual({ version: "1", missing_versions: ["3"] });
    const down = scriptedCaller(scripts, ["m:2"]);
    const rerouted = await policies.forApp(app).predict(query(app, models, down.caller));
    expect(extraOf(rerouted)).toEqual({ version: "1", missing_versions: ["2"] });
    const pinned = await policies.forApp(app).predict(query(app, models, caller, { pinnedVersion: "2" }));
    expect(extraOf(pinned)).toEqual({ version: "2" });
    await expect(policies.forApp(app).predict(query(app, models, caller, { pinnedVersion: "9" }))).rejects.toBeInstanceOf(QueryError);
  });
});

describe("feedback memory", () => {
  it("matches exact input bytes, expires, and stays bounded", () => {
    let now = 0;
    const memory = new FeedbackMemory({ maxEntries: 2, ttlMs: 100, now: () => now });
    memory.remember("a", "1", Buffer.from("x"), { policy: "exp3", values: {} });
    expect(memory.take("a", "2", Buffer.from("x"))).toBeUndefined(); // another uid
    expect(memory.take("a", "1", Buffer.from("x"))).toEqual({ policy: "exp3", values: {} });
    expect(memory.take("a", "1", Buffer.from("x"))).toBeUndefined(); // consumed
    memory.remember("a", undefined, Buffer.from("y"), { policy: "exp4", values: {} });
    now = 101;
    expect(memory.take("a", undefined, Buffer.from("y"))).toBeUndefined(); // expired
    for (const s of ["p", "q", "r"]) memory.remember("a", undefined, Buffer.from(s), { policy: "exp4", values: {} });
    expect(memory.size).toBe(2);
    expect(memory.take("a", undefined, Buffer.from("p"))).toBeUndefined(); // evicted first
  });
});

describe("the frontend's weight sync with the management daemon", () => {
  function snapshot(weights: Record<string, Record<string, number>> | undefined, policy: PolicyConfig = { name: "exp3" }): ClusterState {
    return {
      revision: 1,
      applications: { app: appOf(policy, ["a", "b"]) },
      models: {},
      ...(weights ? { policy_state: { app: weights } } : {}),
    };
  }

  it("sends changes in one batch, keeps local changes over older snapshots, adopts confirmed ones", async () => {
    const sent: PolicyStateUpdate[][] = [];
    const sync = new PolicyStateSync({ send: async (u) => (sent.push(u), "ok"), flushDelayMs: 10_000 });
    sync.onSnapshot(snapshot({ "*": { a: 1, b: 0.5 } }));
    expect(sync.get("app", "*")).toEqual({ a: 1, b: 0.5 });
    sync.set("app", "*", { a: 1, b: 0.25 });
    sync.set("app", "7", { a: 0.1, b: 1 });
    sync.onSnapshot(snapshot({ "*": { a: 1, b: 0.5 } })); // older: ignored for the changed entry
    expect(sync.get("app", "*")).toEqual({ a: 1, b: 0.25 });
    await sync.flush();
    expect(sent).toEqual([[
      { app_name: "app", policy: "exp3", weights: { a: 1, b: 0.25 } },
      { app_name: "app", uid: "7", policy: "exp3", weights: { a: 0.1, b: 1 } },
    ]]);
    sync.onSnapshot(snapshot({ "*": { a: 1, b: 0.5 } })); // still older than what was acknowledged
    expect(sync.get("app", "*")).toEqual({ a: 1, b: 0.25 });
    sync.onSnapshot(snapshot({ "*": { a: 1, b: 0.25 }, "7": { a: 0.1, b: 1 } })); // confirmed
    sync.onSnapshot(snapshot({ "*": { a: 0.3, b: 1 }, "7": { a: 0.1, b: 1 } })); // another frontend's later write
    expect(sync.get("app", "*")).toEqual({ a: 0.3, b: 1 });
    expect(sync.appWideWeights()).toEqual([{ app: "app", model: "a", weight: 0.3 }, { app: "app", model: "b", weight: 1 }]);
    // A policy change or deletion drops the learned state.
    sync.onSnapshot(snapshot(undefined, { name: "exp4" }));
    expect(sync.get("app", "*")).toBeUndefined();
    await sync.close();
  });

  it("on a delta syncs only the applications it names", async () => {
    const sync = new PolicyStateSync({ send: async () => "ok", flushDelayMs: 10_000 });
    const both = snapshot({ "*": { a: 1, b: 0.5 } });
    both.applications.other = appOf({ name: "exp3" }, ["a", "b"]);
    both.policy_state!.other = { "*": { a: 0.2, b: 1 } };
    sync.onSnapshot(both);
    const next = snapshot({ "*": { a: 0.7, b: 1 } });
    next.applications.other = appOf({ name: "exp3" }, ["a", "b"]);
    next.policy_state!.other = { "*": { a: 0.9, b: 1 } }; // not named by the delta: left as it was
    sync.onApps(next, ["app"]);
    expect(sync.get("app", "*")).toEqual({ a: 0.7, b: 1 });
    expect(sync.get("other", "*")).toEqual({ a: 0.2, b: 1 });
    delete next.applications.other;
    sync.onApps(next, ["other"]); // deleted: its learned state goes
    expect(sync.get("other", "*")).toBeUndefined();
    await sync.close();
  });

  it("retries after a failed send", async () => {
    let fail = true;
    const sent: PolicyStateUpdate[][] = [];
    const sync = new PolicyStateSync({
      send: async (u) => {
        if (fail) throw new Error("down");
        sent.push(u);
        return "ok";
      },
      flushDelayMs: 10_000,
    });
    sync.set("app", "*", { a: 1 });
    await sync.flush();
    expect(sent).toEqual([]);
    fail = false;
    await sync.flush();
    expect(sent).toHaveLength(1);
    await sync.close();
  });
});

describe("policy specs (CLI and library)", () => {
  it("parses name, name:key=value and JSON", () => {
    expect(parsePolicySpec("default")).toEqual({ name: "default" });
    expect(parsePolicySpec("ensemble:threshold=0.6")).toEqual({ name: "ensemble", threshold: 0.6 });
    expect(parsePolicySpec("exp4:eta=0.5,scale=10")).toEqual({ name: "exp4", eta: 0.5, scale: 10 });
    expect(parsePolicySpec("canary:1=95,2=5")).toEqual({ name: "canary", weights: { "1": 95, "2": 5 } });
    expect(parsePolicySpec("cascade:models=fast|slow,threshold=0.8")).toEqual({ name: "cascade", models: ["fast", "slow"], threshold: 0.8 });
    expect(parsePolicySpec('{"name": "exp3", "gamma": 0.2}')).toEqual({ name: "exp3", gamma: 0.2 });
    for (const bad of ["", "ensemble:threshold", "ensemble:threshold=0.6,threshold=0.7", "{nope", ":x=1"]) {
      expect(() => parsePolicySpec(bad), bad).toThrow(PolicySpecError);
    }
  });

  it("formats policies back to one line", () => {
    expect(formatPolicy(undefined)).toBe("default");
    expect(formatPolicy({ name: "ensemble", threshold: 0.6 })).toBe("ensemble:threshold=0.6");
    expect(formatPolicy({ name: "canary", weights: { "1": 95, "2": 5 } })).toBe("canary:1=95,2=5");
    expect(formatPolicy({ name: "cascade", models: ["fast", "slow"], threshold: 0.8 })).toBe("cascade:models=fast|slow,threshold=0.8");
  });
});
