/**
 * A query refused at admission is answered at its deadline, not at once (model-caller.ts): a
 * closed-loop client that hears an instant refusal asks again at once, and a few dozen of them take
 * the CPU from the model (docs/bench/storm.md). On the dispatcher's fake clock: the refusal waits out
 * the SLO, is never queued nor sent to the model, and the model's own answers are not held back.
 */
import { describe, expect, it } from "vitest";
import { ModelCaller, type CallOutcome, type ModelRef } from "../../runtime/frontend/model-caller.js";
import { outcomeToAnswer } from "../../runtime/frontend/policies/answers.js";
import { harness } from "../support/fake-dispatch.js";

const M: ModelRef = { name: "m", version: "1" };
const flush = () => new Promise((r) => setImmediate(r));

/** One replica of batch size 1 whose batches are measured at 10 ms, and a caller on the fake clock. */
async function busyModel() {
  const h = harness();
  h.dispatcher.configure("m", "1", { batchSize: 1, batchWaitMicros: 0, budgetMs: 50 });
  h.dispatcher.replicaAdded(h.replica(0));
  const caller = new ModelCaller({ dispatcher: h.dispatcher, now: h.clock.now, timers: h.clock });
  const outcomes: Array<CallOutcome | undefined> = [];
  const ask = (slo: number): number => {
    const i = outcomes.length;
    outcomes.push(undefined);
    void caller.call(M, "doubles", Buffer.alloc(8), h.clock.t + slo).then((o) => (outcomes[i] = o));
    return i;
  };
  ask(1_000);
  h.clock.advance(10);
  h.answer(h.sent[0]!);
  await flush();
  expect(outcomes[0]).toMatchObject({ kind: "output" });
  return { h, outcomes, ask };
}

describe("a query refused at admission", () => {
  it("is answered as shed at its deadline, never before, and never reaches the model", async () => {
    const { h, outcomes, ask } = await busyModel();
    // 100 ms of SLO fits about 10 batches of 10 ms: 30 queries overload it.
    const asked = Array.from({ length: 30 }, () => ask(100));
    await flush();
    expect(h.shed).toBeGreaterThan(10);
    const sentBefore = h.sent.length;
    h.clock.advance(99);
    await flush();
    const early = asked.filter((i) => outcomes[i]?.kind === "shed");
    expect(early, "refusals answered before the deadline").toEqual([]);
    h.clock.advance(1);
    await flush();
    const shed = asked.filter((i) => outcomes[i]?.kind === "shed");
    expect(shed.length).toBe(h.shed);
    for (const i of shed) {
      expect((outcomes[i] as { retryAfterSeconds: number }).retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(outcomeToAnswer(outcomes[i]!)).toMatchObject({ kind: "default", reason: "overloaded" });
    }
    // Only admitted queries were sent: one batch in flight at a time, none for a refused query.
    expect(h.sent.length).toBe(sentBefore);
  });

  it("does not hold back the admitted queries: the model's answers come as its batches do", async () => {
    const { h, outcomes, ask } = await busyModel();
    const asked = Array.from({ length: 30 }, () => ask(100));
    await flush();
    const admitted = 30 - h.shed;
    for (let k = 0; k < admitted && k < 5; k++) {
      h.clock.advance(10);
      h.answer(h.sent[h.sent.length - 1]!);
      await flush();
    }
    const answered = asked.filter((i) => outcomes[i]?.kind === "output");
    expect(answered.length).toBe(Math.min(admitted, 5));
    expect(h.clock.t).toBeLessThan(100 + 10);
    expect(asked.filter((i) => outcomes[i]?.kind === "shed")).toEqual([]);
  });
});
