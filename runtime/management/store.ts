/**
 * The durable cluster state. The management daemon is its single writer: every change is computed
 * on a copy, checked completely (the schema a loader applies, and the invariants of
 * state-invariants.ts), written to disk (temp file, fsync, rename over state.json, fsync the
 * directory) and only then becomes the current state, is announced to listeners and may be
 * acknowledged. Changes are serialized through one promise chain, so two requests never interleave
 * their read-modify-write, and a `kill -9` at any instant leaves either the old or the new file whole.
 *
 * The last few committed states before the current one stay next to it as state.json.gen-REVISION
 * (hard links to the replaced files: no copy, already durable). A daemon that finds a state.json it
 * cannot load says what is wrong, moves it aside (state.json.bad-TIME) and starts from the newest
 * generation that loads; with none, it refuses to start rather than wipe the configuration.
 */
import { copyFile, link, mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { type ClusterState, ClusterStateSchema, emptyState } from "../shared/state.js";
import { describeViolation, repairLegacyState, stateViolations } from "../shared/state-invariants.js";
import { diffStates, type StateDelta } from "../shared/state-delta.js";

export const STATE_FILE = "state.json";
const TEMP_PREFIX = `${STATE_FILE}.tmp-`;
export const GENERATION_PREFIX = `${STATE_FILE}.gen-`;
export const BAD_PREFIX = `${STATE_FILE}.bad-`;
/** Committed states kept besides the current one. */
export const KEPT_GENERATIONS = 5;

/** The state file exists but cannot be trusted, and no kept generation can: the daemon refuses to start rather than wipe it. */
export class StateFileError extends Error {
  override name = "StateFileError";
}

/** Writing the state to disk failed; the change was not applied. */
export class StatePersistError extends Error {
  override name = "StatePersistError";
}

/** A change would have produced a state that breaks the schema or an invariant; it was not applied. */
export class StateInvalidError extends Error {
  override name = "StateInvalidError";

  constructor(readonly problems: string[]) {
    super(`the change would leave the configuration inconsistent: ${problems.join("; ")}`);
  }
}

/** How the store started when state.json could not be used. */
export interface StateRecovery {
  /** What was wrong with state.json (file, path in the JSON, problem). */
  problem: string;
  /** Where the unusable state.json went, if it existed. */
  movedTo?: string;
  /** The generation file the state was restored from, and its revision. */
  restoredFrom: string;
  revision: number;
}

/** What a change function returns: the next state (or none when nothing changes) and a result. */
export interface Change<R> {
  next?: ClusterState;
  result: R;
}

/** Called with each newly committed state and what the commit changed (the watch stream sends that). */
export type CommitListener = (state: ClusterState, delta: StateDelta) => void;

export class StateStore {
  private current: ClusterState;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<CommitListener>();
  private tempCounter = 0;

  private constructor(
    readonly dir: string,
    initial: ClusterState,
    /** Set when state.json could not be used and a kept generation was restored. */
    readonly recovery?: StateRecovery,
    /** What was repaired in a state an earlier release wrote (repairLegacyState), one line each. */
    readonly repairs: readonly string[] = [],
  ) {
    this.current = deepFreeze(initial);
  }

  /**
   * Opens (creating the directory if needed) and loads the state. An unusable state.json is moved
   * aside and the newest loadable generation restored (see `recovery`); with no such generation
   * it throws StateFileError and leaves every file as it was.
   */
  static async open(dir: string): Promise<StateStore> {
    await mkdir(dir, { recursive: true });
    await removeStaleTempFiles(dir);
    const path = join(dir, STATE_FILE);
    const loaded = await loadState(path);
    if (loaded.ok) return new StateStore(dir, loaded.state, undefined, loaded.repairs);
    // A file we cannot read (EIO, EACCES) may be perfectly good: never replace it with an older one.
    if (loaded.unreadable) throw new StateFileError(`${loaded.problem}; refusing to start until it can be read`);
    const generations = await generationFiles(dir);
    // No state.json and no history: a new cluster.
    if (loaded.missing && generations.length === 0) return new StateStore(dir, emptyState());
    const rejected: string[] = [];
    for (const generation of generations) {
      const candidate = await loadState(join(dir, generation.file));
      if (!candidate.ok) {
        rejected.push(candidate.problem);
        continue;
      }
      const store = new StateStore(dir, candidate.state, {
        problem: loaded.problem,
        restoredFrom: join(dir, generation.file),
        revision: candidate.state.revision,
      }, candidate.repairs);
      if (!loaded.missing) {
        const aside = join(dir, `${BAD_PREFIX}${new Date().toISOString().replace(/[:.]/g, "-")}`);
        await rename(path, aside);
        store.recovery!.movedTo = aside;
      }
      // Restored as state.json at once, so the next start needs no recovery.
      await store.writeDurably(serialize(candidate.state));
      return store;
    }
    throw new StateFileError(
      `${loaded.problem}; refusing to start rather than lose the cluster configuration` +
        (rejected.length > 0 ? ` (no kept generation loads either: ${rejected.join("; ")})` : "") +
        `. Repair the file, or move it (and any ${GENERATION_PREFIX}* files) aside to start with an empty state.`,
    );
  }

  /** The last committed state. Frozen: changes go through update(). */
  get state(): ClusterState {
    return this.current;
  }

  get path(): string {
    return join(this.dir, STATE_FILE);
  }

  /** Calls `listener` with every newly committed state, in commit order. Returns an unsubscribe. */
  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Runs `change` on the current state, after every earlier update has finished. When it returns a
   * next state, that state gets the next revision, is made durable, becomes current and is announced,
   * all before the returned promise resolves. An exception from `change` rejects this call only.
   */
  update<R>(change: (current: ClusterState) => Change<R>): Promise<R> {
    const run = this.chain.then(async () => {
      const { next, result } = change(this.current);
      if (next) await this.commit(next);
      return result;
    });
    // Keep the chain alive after a failed update; the failure belongs to its own caller.
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Resolves when every update queued so far has finished. */
  async drain(): Promise<void> {
    await this.chain;
  }

  private async commit(next: ClusterState): Promise<void> {
    // Checked as the loader will read it back: a state that could not be loaded is never written,
    // and what stays in memory is exactly what a restart would load.
    const checked = checkState(JSON.parse(serialize({ ...next, revision: this.current.revision + 1 })));
    if (!checked.ok) throw new StateInvalidError(checked.problems);
    const committed = checked.state;
    const text = serialize(committed);
    // A generation that cannot be kept (no space for a copy) only narrows what a later recovery can
    // restore: it must not fail a write that can still be made durable.
    await this.keepGeneration(this.current.revision).catch(() => undefined);
    try {
      await this.writeDurably(text);
    } catch (err) {
      throw new StatePersistError(`could not save ${this.path}: ${(err as Error).message}`);
    }
    await this.pruneGenerations().catch(() => undefined); // spare files are harmless
    const delta: StateDelta = { revision: committed.revision, base: this.current.revision, changes: diffStates(this.current, committed) };
    this.current = deepFreeze(committed);
    for (const listener of this.listeners) {
      // The change is durable and current whatever a listener does: its failure must not turn an
      // applied write into an error answer. Listeners report their own errors.
      try {
        listener(this.current, delta);
      } catch {
        // ignored, see above
      }
    }
  }

  /** Keeps the state.json about to be replaced as a generation file (a hard link: no copy). */
  private async keepGeneration(revision: number): Promise<void> {
    const kept = join(this.dir, `${GENERATION_PREFIX}${revision}`);
    await unlink(kept).catch(() => undefined); // left by a crash between link and rename
    try {
      await link(this.path, kept);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return; // nothing committed yet
      if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EXDEV" && code !== "ENOSYS") throw err;
      await copyFile(this.path, kept); // a file system without hard links
    }
  }

  private async pruneGenerations(): Promise<void> {
    const generations = await generationFiles(this.dir);
    for (const old of generations.slice(KEPT_GENERATIONS)) await unlink(join(this.dir, old.file)).catch(() => undefined);
  }

  private async writeDurably(text: string): Promise<void> {
    const temp = join(this.dir, `${TEMP_PREFIX}${process.pid}-${++this.tempCounter}`);
    try {
      const file = await open(temp, "w", 0o600);
      try {
        await file.writeFile(text, "utf8");
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temp, this.path);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    }
    // The rename is durable only once the directory entry is: fsync the directory too.
    // (Windows cannot open a directory for fsync; there the rename is the best we get.)
    if (process.platform !== "win32") {
      const dir = await open(this.dir, "r");
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
  }
}

type Loaded =
  | { ok: true; state: ClusterState; repairs: string[] }
  | { ok: false; missing: boolean; unreadable: boolean; problem: string };

/** Reads and checks one state file; never throws. */
async function loadState(path: string): Promise<Loaded> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
    return {
      ok: false, missing, unreadable: !missing,
      problem: missing ? `the state file ${path} is missing` : `cannot read the state file ${path}: ${(err as Error).message}`,
    };
  }
  const corrupt = (why: string): Loaded => ({ ok: false, missing: false, unreadable: false, problem: `the state file ${path} is corrupt (${why})` });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return corrupt(`invalid JSON: ${(err as Error).message}`);
  }
  const checked = checkState(json, { repairLegacy: true });
  if (!checked.ok) return corrupt(checked.problems.slice(0, 5).join("; "));
  return { ok: true, state: checked.state, repairs: checked.repairs };
}

/** A state parsed from JSON, or its schema problems and invariant violations. */
function checkState(
  json: unknown,
  options: { repairLegacy?: boolean } = {},
): { ok: true; state: ClusterState; repairs: string[] } | { ok: false; problems: string[] } {
  const parsed = ClusterStateSchema.safeParse(json);
  if (!parsed.success) return { ok: false, problems: parsed.error.issues.map(describeIssue) };
  // Only on load: a new state must be consistent as the operations made it.
  const repairs = options.repairLegacy ? repairLegacyState(parsed.data) : [];
  const violations = stateViolations(parsed.data);
  if (violations.length > 0) return { ok: false, problems: violations.map(describeViolation) };
  return { ok: true, state: parsed.data, repairs };
}

function describeIssue(issue: { path: PropertyKey[]; message: string }): string {
  return `${issue.path.map(String).join(".") || "top level"}: ${issue.message}`;
}

function serialize(state: ClusterState): string {
  return JSON.stringify(state, null, 2) + "\n";
}

/** The kept generation files, newest (highest revision) first. */
async function generationFiles(dir: string): Promise<Array<{ file: string; revision: number }>> {
  const found: Array<{ file: string; revision: number }> = [];
  for (const file of await readdir(dir)) {
    if (!file.startsWith(GENERATION_PREFIX)) continue;
    const revision = Number(file.slice(GENERATION_PREFIX.length));
    if (Number.isSafeInteger(revision) && revision >= 0) found.push({ file, revision });
  }
  return found.sort((a, b) => b.revision - a.revision);
}

/** Temp files left by a crash mid-write were never acknowledged: they are safe to remove. */
async function removeStaleTempFiles(dir: string): Promise<void> {
  for (const entry of await readdir(dir)) {
    if (entry.startsWith(TEMP_PREFIX)) await unlink(join(dir, entry)).catch(() => undefined);
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
