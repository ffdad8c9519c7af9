/**
 * Queries for a version scaled to zero (model-caller.ts), on the dispatcher's fake clock: they wait
 * in the version's queue (counted in its depth, which the live stats report) only when the version
 * is autoscaled with min 0, are served when a replica connects, get `cold_start` when none is
 * connected by their deadline (and `timeout` when one is), and are bounded. Attacks: 50 queries
 * racing on a cold version, a replica that connects and dies at once. The same through a real
 * frontend and daemon is in test/scale-from-zero.test.ts.
 */
import { describe, expect, it } from "vitest";
import { ModelCaller, type CallOutcome, type ModelRef } from "../../runtime/frontend/model-caller.js";
import { outcomeToAnswer } from "../../runtime/frontend/policies/answers.js";
import { scalesFromZero, type AutoscalingConfig } from "../../runtime/shared/autoscaling.js";
import { dict } from "../../runtime/shared/dict.js";
import { harness, type Harness } from "../support/fake-dispatch.js";

const M: ModelRef = { name: "m", version: "1" };

function setup(options: { fromZero?: boolean; maxWaiting?: number } = {}) {
  const h = harness();
  const firstWaiting: string[] = [];
  const caller = new ModelCaller({
    dispatcher: h.dispatcher, now: h.clock.now, timers: h.clock,
    scalesFromZero: (model) => (options.fromZero ?? true) && model.name === M.name && model.version === M.version,
    maxWaitingForFirstReplica: options.maxWaiting,
    firstWaiting: (model) => firstWaiting.push(`${model.name}:${model.version}`),
  });
  const outcomes: CallOutcome[] = [];
  /** Asks the version about `value` with the deadline `slo` ms from now; the outcome lands in `outcomes[i]`. */
  const ask = (value: number, slo: number): number => {
    const input = Buffer.alloc(8);
    input.writeDoubleLE(value);
    const i = outcomes.length;
    outcomes.push(undefined as unknown as CallOutcome);
    void caller.call(M, "doubles", input, h.clock.t + slo).then((o) => (outcomes[i] = o));
    return i;
  };
  return { h, caller, outcomes, ask, firstWaiting };
}

/** Lets promise callbacks run. */
const flush = () => new Promise((r) => setImmediate(r));
const depth = (h: Harness) => h.dispatcher.liveVersions().find((v) => v.key === "m:1")?.queueDepth ?? 0;

/** Answers every batch sent and not yet answered, until none is left. */
async function answerAll(h: Harness, answered: Set<number>): Promise<void> {
  for (let i = 0; i < h.sent.length; i++) {
    if (answered.has(i)) continue;
    answered.add(i);
    h.answer(h.sent[i]!);
    await flush();
  }
}

describe("a query for a version with no replica", () => {
  it("that does not scale from zero is answered 'no connected models' at once, and queues nothing", async () => {
    const { h, outcomes, ask } = setup({ fromZero: false });
    ask(1, 1000);
    await flush();
    expect(outcomes[0]).toEqual({ kind: "unavailable" });
    expect(depth(h)).toBe(0);
    expect(outcomeToAnswer(outcomes[0]!)).toMatchObject({ reason: "no_connected_models" });
  });

  it("that scales from zero waits in the version's queue and is served when the first replica connects", async () => {
    const { h, caller, outcomes, ask } = setup();
    expect(caller.servable(M)).toBe(true);
    expect(caller.available(M)).toBe(false);
    ask(7, 15_000);
    h.clock.advance(2_000);
    await flush();
    expect(outcomes[0]).toBeUndefined();
    expect(depth(h)).toBe(1); // what the live stats report, so the autoscaler starts a replica

    h.dispatcher.replicaAdded(h.replica(0));
    expect(h.sent).toHaveLength(1);
    h.answer(h.sent[0]!);
    await flush();
    expect(outcomes[0]).toMatchObject({ kind: "output", output: "7" });
    expect(depth(h)).toBe(0);
  });

  it("tells the frontend when the first query starts waiting (to report it early), not for every one", async () => {
    const { h, ask, firstWaiting } = setup();
    ask(1, 500);
    ask(2, 500);
    ask(3, 500);
    expect(firstWaiting).toEqual(["m:1"]);
    h.clock.advance(500);
    await flush();
    ask(4, 500); // the queue emptied: news again
    expect(firstWaiting).toEqual(["m:1", "m:1"]);
    const other = setup({ fromZero: false });
    other.ask(1, 500);
    expect(other.firstWaiting).toEqual([]);
  });

  it("gets cold_start when no replica connected by its deadline, and stops counting as waiting", async () => {
    const { h, outcomes, ask } = setup();
    ask(1, 500);
    h.clock.advance(499);
    await flush();
    expect(outcomes[0]).toBeUndefined();
    h.clock.advance(1);
    await flush();
    expect(outcomes[0]).toEqual({ kind: "cold_start", model: "m:1" });
    expect(outcomeToAnswer(outcomes[0]!)).toEqual({
      kind: "default", reason: "starting_from_zero", explanation: "No replica of m:1 yet: starting from zero",
    });
    expect(depth(h)).toBe(0);
  });

  it("gets an SLO miss, not cold_start, when a replica was connected but did not answer in time", async () => {
    const { h, outcomes, ask } = setup();
    ask(1, 500);
    h.dispatcher.replicaAdded(h.replica(0));
    h.clock.advance(500);
    await flush();
    expect(outcomes[0]).toEqual({ kind: "timeout" });
  });

  it("survives a replica that connects and dies at once: the batch goes back to the queue for the next one", async () => {
    const { h, outcomes, ask } = setup();
    ask(3, 10_000);
    ask(4, 1_000);
    const first = h.replica(0);
    h.dispatcher.replicaAdded(first);
    expect(h.sent).toHaveLength(1);
    h.dispatcher.replicaRemoved(first);
    expect(depth(h)).toBe(2);

    h.clock.advance(1_000);
    await flush();
    // None connected at its deadline: still starting, not a missed SLO.
    expect(outcomes[1]).toEqual({ kind: "cold_start", model: "m:1" });
    expect(outcomes[0]).toBeUndefined();

    h.dispatcher.replicaAdded(h.replica(1));
    await answerAll(h, new Set([0]));
    expect(outcomes[0]).toMatchObject({ kind: "output", output: "3" });
  });

  it("is bounded: beyond the queries a cold version may hold, one is shed at once", async () => {
    const { h, outcomes, ask } = setup({ maxWaiting: 3 });
    for (let i = 0; i < 4; i++) ask(i, 5_000);
    await flush();
    expect(outcomes[3]).toMatchObject({ kind: "shed" });
    expect((outcomes[3] as { retryAfterSeconds: number }).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(outcomeToAnswer(outcomes[3]!)).toMatchObject({ reason: "overloaded" });
    expect(outcomes.slice(0, 3)).toEqual([undefined, undefined, undefined]);
    expect(depth(h)).toBe(3);

    // Once those gave up, there is room again.
    h.clock.advance(5_000);
    await flush();
    ask(9, 5_000);
    expect(depth(h)).toBe(1);
  });

  it("50 queries racing on a cold version are all served by the first replica, each with its own answer", async () => {
    const { h, outcomes, ask } = setup();
    for (let i = 0; i < 50; i++) ask(i, 15_000);
    await flush();
    expect(depth(h)).toBe(50);
    h.clock.advance(3_000);
    h.dispatcher.replicaAdded(h.replica(0));
    await answerAll(h, new Set());
    expect(outcomes.map((o) => (o.kind === "output" ? o.output : o.kind))).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
    expect(depth(h)).toBe(0);
  });
});

describe("scalesFromZero", () => {
  const config = (min: number): AutoscalingConfig => ({ min_replicas: min, max_replicas: 2, target_queue_per_replica: 4, scale_down_delay_s: 30 });

  it("is true only for a version configured with min 0, whatever the names", () => {
    const section = dict([
      ["__proto__", dict([["1", config(0)]])],
      ["m", dict([["1", config(1)], ["constructor", config(0)]])],
    ]);
    expect(scalesFromZero(section, "__proto__", "1")).toBe(true);
    expect(scalesFromZero(section, "m", "constructor")).toBe(true);
    expect(scalesFromZero(section, "m", "1")).toBe(false);
    expect(scalesFromZero(section, "m", "2")).toBe(false);
    expect(scalesFromZero(section, "constructor", "1")).toBe(false);
    expect(scalesFromZero(section, "m", "toString")).toBe(false);
    expect(scalesFromZero(undefined, "m", "1")).toBe(false);
  });
});
