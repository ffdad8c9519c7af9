/**
 * The autoscaling controller on a scripted clock: a small simulated version (closed-loop clients,
 * replicas that take a few seconds to connect, each serving one query at a time) sampled once a
 * second. Step load, oscillating load, the min/max clamps, scale to zero, and the guards.
 */
import { describe, expect, it } from "vitest";
import { decisionEvent, type ScaleDecision, VersionAutoscaler, type VersionSignals } from "../../runtime/autoscaler/controller.js";
import type { AutoscalingConfig } from "../../runtime/shared/autoscaling.js";

const CONFIG: AutoscalingConfig = { min_replicas: 1, max_replicas: 4, target_queue_per_replica: 4, scale_down_delay_s: 30 };

interface Step {
  at: number;
  decision: ScaleDecision;
}

/**
 * Runs the controller for `seconds`, one sample a second. `load(t)` is the number of closed-loop
 * clients at second t; a replica serves one at a time, so the rest wait. Replicas asked for connect
 * `startS` seconds later.
 */
function simulate(
  config: AutoscalingConfig, seconds: number, load: (t: number) => number,
  options: { replicas?: number; startS?: number; extra?: (t: number) => Partial<VersionSignals> } = {},
) {
  const controller = new VersionAutoscaler();
  let replicas = options.replicas ?? 1;
  const starts: number[] = []; // when each replica beyond the first `ready` ones connects
  let ready = replicas;
  const steps: Step[] = [];
  const counts: number[] = [];
  for (let t = 0; t <= seconds; t++) {
    while (starts.length > 0 && starts[0]! <= t) {
      starts.shift();
      ready++;
    }
    ready = Math.min(ready, replicas);
    const clients = load(t);
    const signals: VersionSignals = {
      at: t * 1000, replicas, readyReplicas: ready, queueDepth: Math.max(0, clients - ready),
      requestsPerS: clients * 10, degradedShare: 0, ...options.extra?.(t),
    };
    const decision = controller.observe(config, signals);
    if (decision) {
      steps.push({ at: t, decision });
      if (decision.to > replicas) for (let i = replicas; i < decision.to; i++) starts.push(t + (options.startS ?? 3));
      replicas = decision.to;
    }
    counts.push(replicas);
  }
  return { steps, counts, final: replicas };
}

/** How often the direction of scaling reversed: the measure of flapping. */
function reversals(steps: Step[]): number {
  let n = 0;
  for (let i = 1; i < steps.length; i++) if (steps[i]!.decision.direction !== steps[i - 1]!.decision.direction) n++;
  return n;
}

describe("the autoscaling controller", () => {
  it("scales up fast and by several replicas at once under a step of load", () => {
    const { steps } = simulate(CONFIG, 20, (t) => (t >= 5 ? 16 : 1));
    expect(steps).toHaveLength(1);
    const [first] = steps;
    // Overload from t=5 must last 2 s: the decision comes at t=7, straight to the queue's need (15 waiting / 4 → 4).
    expect(first!.at).toBe(7);
    expect(first!.decision).toMatchObject({ direction: "up", from: 1, to: 4 });
    expect(first!.decision.reason).toMatch(/overloaded for 2 s: 15 queries waiting, 15 per replica \(target 4\)/);
  });

  it("scales down one replica at a time, only after the delay, and stops at the minimum", () => {
    const { steps, final } = simulate(CONFIG, 200, (t) => (t < 40 ? 16 : 0));
    const downs = steps.filter((s) => s.decision.direction === "down");
    expect(downs.map((s) => [s.decision.from, s.decision.to])).toEqual([[4, 3], [3, 2], [2, 1]]);
    // Low from t=40: the first removal after 30 s, then one every 10 s.
    expect(downs.map((s) => s.at)).toEqual([70, 80, 90]);
    expect(downs[0]!.decision.reason).toMatch(/^low load for 30 s: 0 queries waiting/);
    expect(final).toBe(1);
  });

  it("does not flap under load that oscillates faster than its timers", () => {
    // 16 clients for 10 s, then 2 for 10 s, for ten minutes.
    const { steps, counts } = simulate(CONFIG, 600, (t) => (Math.floor(t / 10) % 2 === 0 ? 16 : 2));
    expect(reversals(steps)).toBe(0);
    expect(steps.map((s) => [s.at, s.decision.to])).toEqual([[2, 4]]);
    expect(counts.at(-1)).toBe(4);
  });

  it("ignores spikes shorter than the sustain time", () => {
    const { steps } = simulate(CONFIG, 120, (t) => (t % 20 === 0 ? 40 : 1));
    expect(steps).toEqual([]);
  });

  it("holds in the band between low and overloaded (hysteresis)", () => {
    // 4 replicas, 12 clients: 8 waiting, 2 per replica; on 3 replicas 2.7 > half the target: neither.
    const { steps } = simulate(CONFIG, 300, () => 12, { replicas: 4 });
    expect(steps).toEqual([]);
  });

  it("clamps to the maximum however long the queue", () => {
    const { steps, counts } = simulate(CONFIG, 120, () => 1000);
    expect(Math.max(...counts)).toBe(4);
    expect(steps.every((s) => s.decision.to <= 4)).toBe(true);
  });

  it("moves a count outside the bounds into them at once, with the reason", () => {
    const below = new VersionAutoscaler().observe({ ...CONFIG, min_replicas: 2 }, signals({ replicas: 1 }));
    expect(below).toEqual({ direction: "up", from: 1, to: 2, reason: "below the minimum of 2" });
    const above = new VersionAutoscaler().observe(CONFIG, signals({ replicas: 9, readyReplicas: 9 }));
    expect(above).toEqual({ direction: "down", from: 9, to: 4, reason: "above the maximum of 4" });
  });

  it("scales to zero only when the configuration allows it, and back up at the first query", () => {
    const idle = () => 0;
    expect(simulate(CONFIG, 300, idle).final).toBe(1);
    const toZero = simulate({ ...CONFIG, min_replicas: 0 }, 300, idle);
    expect(toZero.final).toBe(0);
    expect(toZero.steps.at(-1)!.decision.reason).toMatch(/no queries/);

    const fromZero = simulate({ ...CONFIG, min_replicas: 0 }, 10, (t) => (t >= 5 ? 6 : 0), { replicas: 0 });
    // No sustain for a version that cannot answer at all: up at the first sample with queries.
    expect(fromZero.steps[0]).toMatchObject({ at: 5, decision: { direction: "up", from: 0, to: 2 } });
    expect(fromZero.steps[0]!.decision.reason).toMatch(/no replica/);
  });

  it("keeps the last replica while queries still arrive, even with nothing queued", () => {
    const controller = new VersionAutoscaler();
    const config = { ...CONFIG, min_replicas: 0, scale_down_delay_s: 0 };
    for (let t = 0; t < 100; t++) {
      expect(controller.observe(config, signals({ at: t * 1000, requestsPerS: 5 }))).toBeUndefined();
    }
  });

  it("does not ask for more replicas while those it asked for are still starting", () => {
    // Replicas take 20 s to connect: one scale-up, no pile-up, although the queue stays long.
    const { steps } = simulate(CONFIG, 25, () => 6, { startS: 20 });
    expect(steps.map((s) => s.decision.to)).toEqual([2]);
    // ...but after the start grace it does not wait forever on replicas that never come.
    const stuck = simulate({ ...CONFIG, max_replicas: 8 }, 80, () => 3, { startS: 1000, extra: () => ({ degradedShare: 0.5 }) });
    expect(stuck.steps.map((s) => s.at)).toEqual([2, 32, 62]);
  });

  it("scales up on queries answered by the default output or on p99 above the SLO", () => {
    const degraded = simulate(CONFIG, 10, () => 1, { extra: () => ({ degradedShare: 0.2 }) });
    expect(degraded.steps[0]!.decision).toMatchObject({ direction: "up", from: 1, to: 2 });
    expect(degraded.steps[0]!.decision.reason).toMatch(/20% of queries answered by the default output or shed/);
    const slow = simulate(CONFIG, 10, () => 1, { extra: () => ({ p99Ms: 250, sloMs: 100 }) });
    expect(slow.steps[0]!.decision.reason).toMatch(/p99 250 ms above the SLO of 100 ms/);
    // A p99 close to the SLO keeps the replicas although the queue is short.
    const close = simulate(CONFIG, 200, () => 0, { replicas: 3, extra: () => ({ p99Ms: 80, sloMs: 100 }) });
    expect(close.steps).toEqual([]);
  });

  it("waits the scale-down delay after a scale-up before removing anything", () => {
    const config = { ...CONFIG, scale_down_delay_s: 60 };
    // A burst of 5 s, then idle: up at t=2, first down no sooner than 60 s after the scale-up.
    const { steps } = simulate(config, 200, (t) => (t < 5 ? 16 : 0));
    const firstDown = steps.find((s) => s.decision.direction === "down")!;
    expect(firstDown.at - steps[0]!.at).toBeGreaterThanOrEqual(60);
  });

  it("turns a decision into an event with its reason", () => {
    expect(decisionEvent("m", "1", { direction: "up", from: 1, to: 3, reason: "r" })).toEqual({
      kind: "scale_up", model_name: "m", model_version: "1", from: 1, to: 3, reason: "r",
    });
  });
});

function signals(extra: Partial<VersionSignals>): VersionSignals {
  return { at: 0, replicas: 1, readyReplicas: 1, queueDepth: 0, requestsPerS: 0, degradedShare: 0, ...extra };
}
