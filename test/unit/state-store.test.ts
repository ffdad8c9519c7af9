/**
 * The state store's integrity on files, with no daemon: the invariants function, a change that
 * would break the schema or an invariant refused before it reaches the disk, the kept generations,
 * and recovery from the newest good generation. The daemon process's side is in
 * test/state-store.test.ts.
 */
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  BAD_PREFIX, GENERATION_PREFIX, JOURNAL_FILE, KEPT_GENERATIONS, STATE_FILE, StateFileError, StateInvalidError, StateStore,
} from "../../runtime/management/store.js";
import { dict } from "../../runtime/shared/dict.js";
import { describeViolation, stateViolations } from "../../runtime/shared/state-invariants.js";
import { cloneState, type ClusterState, emptyState } from "../../runtime/shared/state.js";
import { appRecord, consistent, versionRecord } from "../support/state-fixtures.js";
import { tempDirs } from "../support/temp-dirs.js";

const tempDir = tempDirs("clipper-store-");

/** A snapshot (state.json, and a generation of the one before) after every write, as the generation tests need. */
const EVERY_WRITE = { snapshotAfterChanges: 1 };

const problems = (state: ClusterState) => stateViolations(state).map(describeViolation);

describe("stateViolations", () => {
  it("finds nothing wrong in a consistent state, the empty one included", () => {
    expect(problems(emptyState())).toEqual([]);
    expect(problems(consistent())).toEqual([]);
  });

  it("names every broken rule with its path", () => {
    const state = consistent();
    state.applications.a!.linked_models.push("gone", "m");
    state.applications.b = appRecord("other");
    state.models.m!.current_version = "9";
    state.models.m!.versions["1"] = versionRecord("m", "7");
    state.models.e = { name: "e", current_version: null, versions: dict() };
    state.policy_state = dict([["nobody", dict<Record<string, number>>()]]);
    expect(problems(state)).toEqual([
      "models.m.versions.1: names 'm:7', not the record's key 'm:1'",
      "models.m.current_version: version '9' does not exist",
      "models.e.versions: a model record must have at least one version",
      "applications.a.linked_models.1: links model 'gone', which does not exist",
      "applications.a.linked_models.2: model 'm' is linked twice",
      "applications.b.name: is 'other', not the record's key 'b'",
      "policy_state.nobody: holds weights of application 'nobody', which does not exist",
    ]);
  });

  it("checks a linked model's current input type against the application's", () => {
    const state = consistent();
    state.models.m!.versions["2"] = versionRecord("m", "2", "strings");
    expect(problems(state)).toEqual([
      "applications.a.linked_models.0: links model 'm' whose current version '2' takes 'strings', not the application's 'doubles'",
    ]);
    state.models.m!.current_version = "1";
    expect(problems(state)).toEqual([]);
  });

  it("treats prototype names as ordinary keys", () => {
    const state = emptyState();
    const name: string = "constructor"; // a plain string: TypeScript types `.constructor` as Function
    state.applications[name] = appRecord(name, [name]);
    expect(problems(state)).toEqual(["applications.constructor.linked_models.0: links model 'constructor', which does not exist"]);
    state.models[name] = { name, current_version: name, versions: dict([[name, versionRecord(name, name)]]) };
    expect(problems(state)).toEqual([]);
  });
});

describe("StateStore", () => {
  it("refuses a change that breaks an invariant or the schema, and writes nothing", async () => {
    const dir = await tempDir();
    const store = await StateStore.open(dir);
    await store.update(() => ({ next: consistent(), result: undefined }));
    const before = await readFile(join(dir, STATE_FILE), "utf8");
    const journalBefore = await readFile(join(dir, JOURNAL_FILE), "utf8");
    const dangling = cloneState(store.state);
    delete dangling.models.m;
    await expect(store.update(() => ({ next: dangling, result: undefined }))).rejects.toThrow(StateInvalidError);
    await expect(store.update(() => ({ next: dangling, result: undefined }))).rejects.toThrow(/applications\.a\.linked_models\.0: links model 'm'/);
    // What JSON cannot carry (a function stored as an input type) is caught as the loader would see it.
    const broken = cloneState(store.state);
    (broken.applications.a as unknown as { input_type: unknown }).input_type = Object;
    await expect(store.update(() => ({ next: broken, result: undefined }))).rejects.toThrow(/applications\.a\.input_type/);
    expect(store.state.revision).toBe(1);
    expect(await readFile(join(dir, STATE_FILE), "utf8")).toBe(before);
    expect(await readFile(join(dir, JOURNAL_FILE), "utf8")).toBe(journalBefore);
    // The store goes on accepting good changes.
    await store.update((s) => {
      const next = cloneState(s);
      next.applications.b = appRecord("b");
      return { next, result: undefined };
    });
    expect(store.state.revision).toBe(2);
  });

  it(`keeps the last ${KEPT_GENERATIONS} snapshots as generation files`, async () => {
    const dir = await tempDir();
    const store = await StateStore.open(dir, EVERY_WRITE);
    for (let i = 0; i < 9; i++) {
      await store.update((s) => {
        const next = cloneState(s);
        next.applications[`a${i}`] = appRecord(`a${i}`);
        return { next, result: undefined };
      });
    }
    await store.drain(); // snapshots are written after the acknowledgement
    const generations = (await readdir(dir)).filter((f) => f.startsWith(GENERATION_PREFIX)).sort();
    expect(generations).toEqual([4, 5, 6, 7, 8].map((r) => `${GENERATION_PREFIX}${r}`));
    const kept = JSON.parse(await readFile(join(dir, `${GENERATION_PREFIX}8`), "utf8")) as ClusterState;
    expect(kept.revision).toBe(8);
    expect(Object.keys(kept.applications)).toHaveLength(8);
  });

  it("moves an unloadable state.json aside, says why, and starts from the newest good generation", async () => {
    const dir = await tempDir();
    const store = await StateStore.open(dir, EVERY_WRITE);
    for (const name of ["x", "y", "constructor"]) {
      await store.update((s) => {
        const next = cloneState(s);
        next.applications[name] = appRecord(name);
        return { next, result: undefined };
      });
    }
    await store.drain();
    // state.json (revision 3) damaged by hand: a function-less input type, as the old bug left it.
    const damaged = JSON.parse(await readFile(join(dir, STATE_FILE), "utf8"));
    delete damaged.applications.constructor.input_type;
    await writeFile(join(dir, STATE_FILE), JSON.stringify(damaged));
    // The newest generation is damaged too: the next one back is used.
    await writeFile(join(dir, `${GENERATION_PREFIX}2`), "{");

    const reopened = await StateStore.open(dir);
    expect(reopened.state.revision).toBe(1);
    expect(Object.keys(reopened.state.applications)).toEqual(["x"]);
    expect(reopened.recovery).toMatchObject({
      problem: expect.stringMatching(/state\.json is corrupt \(applications\.constructor\.input_type: /),
      restoredFrom: join(dir, `${GENERATION_PREFIX}1`),
      revision: 1,
    });
    const aside = (await readdir(dir)).filter((f) => f.startsWith(BAD_PREFIX));
    expect(aside).toHaveLength(1);
    expect(reopened.recovery!.movedTo).toBe(join(dir, aside[0]!));
    expect(JSON.parse(await readFile(join(dir, aside[0]!), "utf8"))).toEqual(damaged);
    // state.json was restored: the next start needs no recovery, and writes go on from revision 1.
    await reopened.update((s) => {
      const next = cloneState(s);
      next.applications.z = appRecord("z");
      return { next, result: undefined };
    });
    const third = await StateStore.open(dir);
    expect(third.recovery).toBeUndefined();
    expect(third.state.revision).toBe(2);
    expect(Object.keys(third.state.applications)).toEqual(["x", "z"]);
  });

  it("restores the newest generation when state.json is missing but history exists", async () => {
    const dir = await tempDir();
    const store = await StateStore.open(dir, EVERY_WRITE);
    for (const name of ["p", "q"]) {
      await store.update((s) => {
        const next = cloneState(s);
        next.applications[name] = appRecord(name);
        return { next, result: undefined };
      });
    }
    await store.drain();
    await rm(join(dir, STATE_FILE));
    const reopened = await StateStore.open(dir);
    expect(reopened.state.revision).toBe(1);
    expect(reopened.recovery).toMatchObject({ problem: expect.stringMatching(/is missing/), revision: 1 });
    expect(reopened.recovery!.movedTo).toBeUndefined();
  });

  it("refuses to start, touching nothing, when no generation loads either", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, STATE_FILE), '{"revision": 3, "applications": {');
    await writeFile(join(dir, `${GENERATION_PREFIX}2`), '{"revision": 2}');
    const open = StateStore.open(dir);
    await expect(open).rejects.toBeInstanceOf(StateFileError);
    await expect(open).rejects.toThrow(/state\.json is corrupt \(invalid JSON.*no kept generation loads either: .*state\.json\.gen-2 is corrupt \(applications: /);
    expect((await readdir(dir)).sort()).toEqual([STATE_FILE, `${GENERATION_PREFIX}2`]);
    expect(await readFile(join(dir, STATE_FILE), "utf8")).toBe('{"revision": 3, "applications": {');
  });

  it("refuses a state.json whose invariants do not hold", async () => {
    const dir = await tempDir();
    const bad = consistent();
    bad.models.m!.current_version = "5";
    await writeFile(join(dir, STATE_FILE), JSON.stringify(bad));
    await expect(StateStore.open(dir)).rejects.toThrow(/models\.m\.current_version: version '5' does not exist/);
  });
});

describe("StateStore on files it did not write", () => {
  it("repairs what an earlier release could leave (links to a deleted model) and says so", async () => {
    const dir = await tempDir();
    // Before the invariants, deleting a model's last version kept the applications' links to it.
    const legacy = { revision: 7, applications: { a: { ...appRecord("a"), linked_models: ["gone", "m"] } }, models: consistent().models };
    await writeFile(join(dir, STATE_FILE), JSON.stringify(legacy));
    const store = await StateStore.open(dir);
    expect(store.recovery).toBeUndefined();
    expect(store.state.revision).toBe(7);
    expect(store.state.applications.a!.linked_models).toEqual(["m"]);
    expect(store.repairs).toEqual(["applications.a.linked_models: dropped the link to 'gone' (no such model)"]);
    expect(stateViolations(store.state)).toEqual([]);
  });

  it("refuses to start on a state.json it cannot read, rather than replace it with an older generation", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, `${GENERATION_PREFIX}2`), JSON.stringify({ ...consistent(), revision: 2 }));
    // A directory in its place: reading fails with EISDIR, as it would with EIO or EACCES.
    await mkdir(join(dir, STATE_FILE));
    await expect(StateStore.open(dir)).rejects.toThrow(/cannot read the state file .*refusing to start until it can be read/);
    expect((await readdir(dir)).sort()).toEqual([STATE_FILE, `${GENERATION_PREFIX}2`]);
  });
});
