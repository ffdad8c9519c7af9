import pino from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ReplicaReporter } from "../../runtime/frontend/replica-reporter.js";
import type { AppliedRevision, ReplicaReport } from "../../runtime/shared/state.js";

describe("ReplicaReporter applied-revision reports", () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  /** A reporter whose reports are recorded (each answered at once); `applied` is what it reports. */
  function reporter() {
    const sent: ReplicaReport[] = [];
    const state: { applied?: AppliedRevision } = {};
    const r = new ReplicaReporter({
      managementUrl: "http://127.0.0.1:1", frontendId: "f", log: pino({ level: "silent" }), intervalMs: 60_000,
      replicas: () => [], applied: () => state.applied, appliedSpacingMs: 25,
      post: async (_target, _path, body) => {
        sent.push(body as ReplicaReport);
        return "accepted";
      },
    });
    const apply = (revision: number) => {
      state.applied = { daemon: "d", revision };
      r.appliedChanged();
    };
    return { r, sent, apply, revisions: () => sent.map((s) => s.applied?.revision) };
  }

  it("reports a change at once when none went out within the window", async () => {
    const { sent, apply, revisions } = reporter();
    apply(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(revisions()).toEqual([1]);
    await vi.advanceTimersByTimeAsync(100);
    apply(2); // the window since the last report has passed
    await vi.advanceTimersByTimeAsync(0);
    expect(revisions()).toEqual([1, 2]);
    expect(sent.every((s) => s.frontend_id === "f")).toBe(true);
  });

  it("sends the changes of a burst as one report at the end of the window, with the latest revision", async () => {
    const { apply, revisions } = reporter();
    apply(1);
    await vi.advanceTimersByTimeAsync(0);
    for (let revision = 2; revision <= 10; revision++) {
      apply(revision);
      await vi.advanceTimersByTimeAsync(2); // a write every 2 ms
    }
    expect(revisions()).toEqual([1]); // 18 ms after the first: still within its window
    await vi.advanceTimersByTimeAsync(7);
    expect(revisions()).toEqual([1, 10]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(revisions()).toEqual([1, 10]); // nothing new: nothing more (until the periodic report)
  });

  it("reports nothing after close but the farewell", async () => {
    const { r, apply, sent } = reporter();
    apply(1);
    await vi.advanceTimersByTimeAsync(0);
    apply(2); // waits for the window
    await r.close();
    await vi.advanceTimersByTimeAsync(100);
    expect(sent.map((s) => s.leaving ?? false)).toEqual([false, true]);
  });
});
