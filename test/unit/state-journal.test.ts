/**
 * The state store's journal: writes that cost what they change (a journal line each, group-committed),
 * listeners told (state, delta), and the start after a crash at any point: a torn last line
 * dropped, a kill between a snapshot and the journal's restart, a corrupt line in the middle
 * (moved aside, the state before it restored, never wiped), and 10,000 journaled writes replayed
 * into the very state that was acknowledged.
 */
import { appendFile, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  JOURNAL_BAD_PREFIX, JOURNAL_FILE, readDurableState, STATE_FILE, StateFileError, StateInvalidError, StateStore,
} from "../../runtime/management/store.js";
import { diffStates, type StateDelta } from "../../runtime/shared/state-delta.js";
import { stateViolations } from "../../runtime/shared/state-invariants.js";
import type { ClusterState } from "../../runtime/shared/state.js";
import { appRecord, consistent } from "../support/state-fixtures.js";
import { tempDirs } from "../support/temp-dirs.js";

const tempDir = tempDirs("clipper-journal-");

const addApp = (name: string, linked: string[] = []) => () => ({ changes: [{ field: "applications" as const, key: name, value: appRecord(name, linked) }], result: name });
const journalLines = async (dir: string) => (await readFile(join(dir, JOURNAL_FILE), "utf8")).split("\n").filter((l) => l !== "");
const json = (state: ClusterState) => JSON.parse(JSON.stringify(state)) as unknown;

/** A store at revision 5: `a` links `m` (revision 1), then apps x1..x4, every write in the journal only. */
async function storeWithJournal(): Promise<{ dir: string; store: StateStore; states: unknown[] }> {
  const dir = await tempDir();
  const store = await StateStore.open(dir);
  const states: unknown[] = [json(store.state)];
  await store.update(() => ({ next: consistent(), result: undefined }));
  states.push(json(store.state));
  for (const name of ["x1", "x2", "x3", "x4"]) {
    await store.update(addApp(name));
    states.push(json(store.state));
  }
  await store.close();
  return { dir, store, states };
}

describe("the state journal", () => {
  it("appends one line per write, tells listeners (state, delta), and leaves state.json alone", async () => {
    const dir = await tempDir();
    const store = await StateStore.open(dir);
    const snapshot = await readFile(join(dir, STATE_FILE), "utf8");
    const seen: Array<{ revision: number; delta: StateDelta }> = [];
    store.onCommit((state, delta) => seen.push({ revision: state.revision, delta }));
    await store.update(() => ({ next: consistent(), result: undefined }));
    expect(await store.update(addApp("b", ["m"]))).toBe("b");
    expect(await readFile(join(dir, STATE_FILE), "utf8")).toBe(snapshot);
    const lines = (await journalLines(dir)).map((l) => JSON.parse(l) as StateDelta);
    expect(lines.map((l) => [l.base, l.revision])).toEqual([[0, 1], [1, 2]]);
    expect(lines[1]!.changes).toEqual([{ field: "applications", key: "b", value: appRecord("b", ["m"]) }]);
    expect(seen.map((s) => [s.revision, s.delta.base, s.delta.revision])).toEqual([[1, 0, 1], [2, 1, 2]]);
    expect(JSON.parse(JSON.stringify(seen[1]!.delta))).toEqual(lines[1]);
    // Entries are frozen; the store's own records are changed in place, not copied per write.
    expect(Object.isFrozen(store.state.applications.b)).toBe(true);
    expect(json(await readDurableState(dir))).toEqual(json(store.state));
    await store.close();
  });

  it("checks only what changed, with the link index: a removed model that an application links is refused", async () => {
    const dir = await tempDir();
    const store = await StateStore.open(dir);
    await store.update(() => ({ next: consistent(), result: undefined }));
    await expect(store.update(() => ({ changes: [{ field: "models", key: "m" }], result: 0 }))).rejects.toThrow(
      /applications\.a\.linked_models\.0: links model 'm', which does not exist/);
    await expect(store.update(addApp("c", ["nope"]))).rejects.toThrow(/applications\.c\.linked_models\.0: links model 'nope'/);
    // The index follows the links: once `a` no longer links `m`, `m` may go.
    await store.update(() => ({ changes: [{ field: "applications", key: "a", value: appRecord("a") }], result: 0 }));
    await store.update(() => ({ changes: [{ field: "models", key: "m" }], result: 0 }));
    expect(store.state.revision).toBe(3);
    expect(stateViolations(store.state)).toEqual([]);
    await store.close();
  });

  it("commits concurrent writes in order, a refused one failing alone, and a change sees those queued before it", async () => {
    const dir = await tempDir();
    const store = await StateStore.open(dir);
    await store.update(() => ({ next: consistent(), result: undefined }));
    const deltas: StateDelta[] = [];
    store.onCommit((_, delta) => deltas.push(delta));
    const writes = [
      store.update(addApp("p")),
      store.update(addApp("q", ["gone"])),
      // Sees p, queued before it in the same batch.
      store.update((s) => ({ changes: [{ field: "applications" as const, key: "r", value: appRecord("r", s.applications.p ? ["m"] : []) }], result: "r" })),
      store.update(() => { throw new Error("change function failed"); }),
      store.updateWithRevision(addApp("s")),
    ];
    const settled = await Promise.allSettled(writes);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled", "rejected", "fulfilled"]);
    expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(StateInvalidError);
    expect((settled[4] as PromiseFulfilledResult<unknown>).value).toEqual({ result: "s", revision: 4 });
    expect(deltas.map((d) => [d.base, d.revision, "key" in d.changes[0]! ? d.changes[0].key : ""])).toEqual([[1, 2, "p"], [2, 3, "r"], [3, 4, "s"]]);
    expect(store.state.applications.r!.linked_models).toEqual(["m"]);
    expect(await journalLines(dir)).toHaveLength(4);
    await store.close();
  });

  it("drops a torn last line (an append cut short, never acknowledged) and keeps everything before it", async () => {
    const { dir, states } = await storeWithJournal();
    await appendFile(join(dir, JOURNAL_FILE), '{"revision":6,"base":5,"changes":[{"field":"applications","key":"to');
    const store = await StateStore.open(dir);
    expect(store.recovery).toBeUndefined();
    expect(store.droppedTornBytes).toBeGreaterThan(0);
    expect(json(store.state)).toEqual(states[5]);
    // Folded into state.json and the journal started afresh: the next start replays nothing.
    expect(await readFile(join(dir, JOURNAL_FILE), "utf8")).toBe("");
    expect(JSON.parse(await readFile(join(dir, STATE_FILE), "utf8"))).toEqual(states[5]);
    await store.update(addApp("after"));
    await store.close();
    expect((await readDurableState(dir)).revision).toBe(6);
  });

  it("skips the lines a snapshot already holds (a kill between the snapshot and the journal's restart)", async () => {
    const { dir, states } = await storeWithJournal();
    // The snapshot of revision 3 was renamed into place; the journal still holds lines 1 to 5.
    const journal = await readFile(join(dir, JOURNAL_FILE), "utf8");
    await writeFile(join(dir, STATE_FILE), JSON.stringify(states[3]));
    const store = await StateStore.open(dir);
    expect(store.recovery).toBeUndefined();
    expect(json(store.state)).toEqual(states[5]);
    await store.close();
    // Likewise when every line is in the snapshot (state.json now holds revision 5).
    await writeFile(join(dir, JOURNAL_FILE), journal);
    const again = await StateStore.open(dir);
    expect(again.recovery).toBeUndefined();
    expect(json(again.state)).toEqual(states[5]);
    expect(await readFile(join(dir, JOURNAL_FILE), "utf8")).toBe("");
    await again.close();
  });

  for (const [what, damage] of [
    ["a line that is not JSON", () => "{not json"],
    ["a line that breaks an invariant", () => JSON.stringify({ revision: 3, base: 2, changes: [{ field: "models", key: "m" }] })],
    ["a line for another revision", () => JSON.stringify({ revision: 9, base: 8, changes: [] })],
  ] as const) {
    it(`treats ${what} in the middle as corruption: moves the journal aside and restores the state before it`, async () => {
      const { dir, states } = await storeWithJournal();
      const original = await readFile(join(dir, JOURNAL_FILE), "utf8");
      const lines = original.split("\n");
      lines[2] = damage();
      await writeFile(join(dir, JOURNAL_FILE), lines.join("\n"));
      const store = await StateStore.open(dir);
      expect(store.recovery).toMatchObject({
        problem: expect.stringMatching(/state\.journal is corrupt at line 3 \(/),
        restoredFrom: expect.stringMatching(/state\.json and the 2 journal lines before it$/),
        revision: 2,
      });
      expect(json(store.state)).toEqual(states[2]);
      const aside = (await readdir(dir)).filter((f) => f.startsWith(JOURNAL_BAD_PREFIX));
      expect(aside).toHaveLength(1);
      expect(store.recovery!.journalMovedTo).toBe(join(dir, aside[0]!));
      expect(await readFile(join(dir, aside[0]!), "utf8")).toBe(lines.join("\n"));
      await store.update(addApp("later"));
      await store.close();
      const third = await StateStore.open(dir);
      expect(third.recovery).toBeUndefined();
      expect(third.state.revision).toBe(3);
      await third.close();
    });
  }

  it("refuses to start, touching nothing, when state.json cannot be loaded and nothing else can", async () => {
    const { dir } = await storeWithJournal();
    await writeFile(join(dir, STATE_FILE), "{");
    const before = (await readdir(dir)).sort();
    await expect(StateStore.open(dir)).rejects.toBeInstanceOf(StateFileError);
    expect((await readdir(dir)).sort()).toEqual(before);
  });

  it("replays 10,000 journaled writes into the state that was acknowledged", async () => {
    const dir = await tempDir();
    const store = await StateStore.open(dir, { snapshotAfterChanges: 20_000, snapshotAfterBytes: 1 << 30 });
    await store.update(() => ({ next: consistent(), result: undefined }));
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 9_999; i++) {
      const name = `app-${i % 3_000}`;
      // Add, relink, then remove some: every kind of entry change.
      if (i < 3_000) writes.push(store.update(addApp(name)));
      else if (i < 6_000) writes.push(store.update((s) => ({ changes: [{ field: "applications" as const, key: name, value: { ...s.applications[name]!, linked_models: ["m"] } }], result: 0 })));
      else if (i < 7_000) writes.push(store.update(() => ({ changes: [{ field: "applications" as const, key: name }], result: 0 })));
      else writes.push(store.update(() => ({ changes: [{ field: "policy_state" as const, key: "a", value: { "*": { m: i } } }], result: 0 })));
    }
    await Promise.all(writes);
    expect(store.state.revision).toBe(10_000);
    expect(await journalLines(dir)).toHaveLength(10_000);
    const acknowledged = json(store.state);
    const live = store.state;
    await store.close();
    const reopened = await StateStore.open(dir);
    expect(json(reopened.state)).toEqual(acknowledged);
    expect(diffStates(live, reopened.state)).toEqual([]);
    expect(stateViolations(reopened.state)).toEqual([]);
    expect(Object.keys(reopened.state.applications)).toHaveLength(2_001);
    await reopened.close();
  }, 60_000);
});
