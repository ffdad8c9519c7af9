/**
 * A journal append that fails, with an injected file that fails on cue (no real disk faults): when
 * it can be taken back the write is answered "not applied" and is not applied, now or after a
 * reload; when it cannot, every write that shared the failed fsync is answered "outcome unknown"
 * (never "not applied", since the next start may find it on disk), and later writes are refused
 * without touching the file until the daemon restarts.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  JOURNAL_FILE, readDurableState, StateInvalidError, StateOutcomeUnknownError, StatePersistError, StateStore, StateWritesHaltedError,
} from "../../runtime/management/store.js";
import { faultyJournalFs } from "../support/faulty-journal.js";
import { appRecord, consistent } from "../support/state-fixtures.js";
import { tempDirs } from "../support/temp-dirs.js";

const tempDir = tempDirs("clipper-journal-fault-");

const addApp = (name: string, linked: string[] = []) => () => ({ changes: [{ field: "applications" as const, key: name, value: appRecord(name, linked) }], result: name });
const journalText = (dir: string) => readFile(join(dir, JOURNAL_FILE), "utf8");

/** A store at revision 1 (`a` links `m`), on the faulty file. */
async function faultyStore() {
  const dir = await tempDir();
  const fs = faultyJournalFs();
  const store = await StateStore.open(dir, { openJournal: fs.openJournal });
  await store.update(() => ({ next: consistent(), result: undefined }));
  return { dir, store, ...fs };
}

describe("a journal append that fails", () => {
  for (const failing of ["appendFile", "datasync"] as const) {
    it(`(${failing}) and is taken back: answered not applied, not applied after a reload either, and the next write works`, async () => {
      const { dir, store, fail } = await faultyStore();
      const before = await journalText(dir);
      fail(failing);
      const refused = store.update(addApp("lost"));
      await expect(refused).rejects.toBeInstanceOf(StatePersistError);
      await expect(refused).rejects.not.toBeInstanceOf(StateWritesHaltedError);
      await expect(refused).rejects.toThrow(/could not save the change .*EIO: i\/o error, /);
      expect(store.state.revision).toBe(1);
      expect(store.state.applications.lost).toBeUndefined();
      expect(store.writesHaltedBecause).toBeUndefined();
      // A datasync failure comes after the line was written: the cut-back removed it.
      expect(await journalText(dir)).toBe(before);
      expect(await store.update(addApp("next"))).toBe("next");
      await store.close();
      const durable = await readDurableState(dir);
      expect(durable.revision).toBe(2);
      expect(Object.keys(durable.applications).sort()).toEqual(["a", "next"]);
    });
  }

  it("and cannot be taken back: every write that shared the fsync is answered outcome unknown; later writes are refused untouched", async () => {
    const { dir, store, fail, calls } = await faultyStore();
    // The first batch is this write alone (it goes to the journal at once); the ones queued while its
    // fsync runs share the next append, whose fsync and cut-back fail.
    fail("datasync", 1);
    fail("truncate");
    const first = store.update(addApp("first"));
    const batch = [
      store.update(addApp("b")),
      store.update(addApp("bad", ["no-such-model"])),
      store.update((s) => ({ result: s.applications.b ? "saw b" : "did not see b" })), // no change, computed on b
      store.update(addApp("c")),
    ];
    await expect(first).resolves.toBe("first");
    const settled = await Promise.allSettled(batch);
    expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(StateInvalidError);
    const answers = [settled[0], settled[2], settled[3]].map((s) => (s as PromiseRejectedResult).reason as Error);
    // One honest answer for all of them: not "not applied" (StatePersistError), since a start may replay the line.
    for (const answer of answers) {
      expect(answer).toBeInstanceOf(StateOutcomeUnknownError);
      expect(answer).not.toBeInstanceOf(StatePersistError);
      expect(answer.message).toBe(answers[0]!.message);
    }
    expect(answers[0]!.message).toMatch(/may or may not have been applied: .*EIO: i\/o error, datasync, and it could not be taken back: EIO: i\/o error, truncate/);
    expect(answers[0]!.message).toMatch(/refuses writes until it is restarted/);
    expect(store.state.revision).toBe(2);
    expect(store.state.applications.b).toBeUndefined();
    // What /admin/ping (readiness) reports from now on.
    expect(store.writesHaltedBecause).toMatch(/^an earlier write to .* may or may not have been saved \(EIO: .*\); restart the daemon$/);

    // Refused before the file is touched: it can never come back.
    const journalBefore = await journalText(dir);
    const touches = calls.length;
    await expect(store.update(addApp("after"))).rejects.toBeInstanceOf(StateWritesHaltedError);
    await expect(store.update(addApp("after"))).rejects.toThrow(/writes are refused: an earlier write to .* may or may not have been saved .*restart the daemon/);
    expect(calls.length).toBe(touches);
    expect(await journalText(dir)).toBe(journalBefore);
    await store.close();

    // What the disk holds decides, and the answer covered both outcomes; the refused write is in neither.
    const durable = await readDurableState(dir);
    expect(Object.keys(durable.applications).sort()).toEqual(["a", "b", "c", "first"]);
    expect(durable.revision).toBe(4);
    const reopened = await StateStore.open(dir);
    expect(reopened.writesHaltedBecause).toBeUndefined();
    expect(reopened.state.applications.after).toBeUndefined();
    expect(await reopened.update(addApp("after"))).toBe("after");
    await reopened.close();
  });

  it("and cannot be taken back although nothing was written: still outcome unknown (nothing can tell), and nothing comes back", async () => {
    const { dir, store, fail } = await faultyStore();
    fail("appendFile");
    fail("sync");
    await expect(store.update(addApp("maybe"))).rejects.toBeInstanceOf(StateOutcomeUnknownError);
    await expect(store.update(addApp("after"))).rejects.toBeInstanceOf(StateWritesHaltedError);
    await store.close();
    const durable = await readDurableState(dir);
    expect(durable.revision).toBe(1);
    expect(Object.keys(durable.applications)).toEqual(["a"]);
  });
});
