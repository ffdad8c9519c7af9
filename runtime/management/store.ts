/**
 * The durable cluster state. The management daemon is its single writer, and a write costs what it
 * changes, not the size of the state:
 *
 * - A change function answers the changes it makes (state-delta.ts: entries set or removed), or, for
 *   rare operations, a whole next state that the store diffs against the current one.
 * - The store checks only what changed: each changed entry against its schema as the loader will
 *   read it back (a JSON round trip), and the invariants that entry takes part in
 *   (changeViolations, with an index of which applications link each model instead of a walk).
 * - It appends the change to state.journal (one NDJSON line) and fdatasyncs it before anything sees
 *   the change. Updates queued while an fsync runs share the next one (group commit), so many
 *   writers cost one fsync per batch, not one each.
 * - Only then is the change applied in place to the current state (its top-level records are the
 *   store's own; every entry is frozen when set), announced to listeners as (state, delta), and
 *   acknowledged.
 * - Every so many journal lines or bytes, the whole state is written to state.json (temp file,
 *   fsync, rename, fsync the directory) and the journal restarted: the rewrite is paid once per
 *   thousands of writes, and a start replays a bounded journal.
 *
 * Why a journal rather than one file per object: one append and one fdatasync per batch, whatever
 * it touches (a link, an application, its policy state and API keys together), atomic across
 * objects; per-object files would need a rename and a directory fsync per object and their own
 * scheme to make multi-object writes atomic.
 *
 * A `kill -9` at any instant loses nothing acknowledged: a last journal line cut short was never
 * acknowledged and is dropped at the next start; a kill between a snapshot's rename and the
 * journal's restart leaves lines the snapshot already holds, which the start skips by revision.
 *
 * The last few state.json files before the current one stay next to it as state.json.gen-REVISION
 * (hard links to the replaced files: no copy, already durable). A state.json that cannot be loaded
 * is moved aside (state.json.bad-TIME) and the newest generation that loads is restored; a journal
 * line in the middle that cannot be read or applied is treated the same way: the journal is moved
 * aside (state.journal.bad-TIME) and the state as of the line before it is restored. With nothing
 * that loads, the daemon refuses to start rather than wipe the configuration.
 */
import { copyFile, link, mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { ApiKeysSchema } from "../shared/api-keys.js";
import { type ClusterState, ClusterStateSchema, emptyState, STATE_ENTRY_SCHEMAS } from "../shared/state.js";
import { applyStateDelta, diffStates, KEYED_FIELDS, type StateChange, type StateDelta } from "../shared/state-delta.js";
import { changeViolations, describeViolation, repairLegacyState, stateViolations } from "../shared/state-invariants.js";
import { LinkIndex } from "../shared/link-index.js";
import {
  JOURNAL_BAD_PREFIX, JOURNAL_FILE, JournalFile, JournalHaltedError, journalLine, JournalOutcomeUnknownError, type OpenJournalHandle,
  parseJournalLine, splitJournal, syncDirectory,
} from "./state-journal.js";

export { JOURNAL_BAD_PREFIX, JOURNAL_FILE } from "./state-journal.js";
export const STATE_FILE = "state.json";
const TEMP_PREFIX = `${STATE_FILE}.tmp-`;
export const GENERATION_PREFIX = `${STATE_FILE}.gen-`;
export const BAD_PREFIX = `${STATE_FILE}.bad-`;
/** Committed states kept besides the current one. */
export const KEPT_GENERATIONS = 5;
/** Journal lines after which the state is written whole and the journal restarted (default). */
export const SNAPSHOT_AFTER_CHANGES = 10_000;
/** The journal may grow to the size of the last state.json, and at least to this, before a snapshot (default). */
const MIN_SNAPSHOT_AFTER_BYTES = 1024 * 1024;

/** The state file exists but cannot be trusted, and no kept generation can: the daemon refuses to start rather than wipe it. */
export class StateFileError extends Error {
  override name = "StateFileError";
}

/** Writing the state to disk failed; the change was not applied. */
export class StatePersistError extends Error {
  override name = "StatePersistError";
}

/** The store refuses writes until the daemon restarts, since an earlier write's outcome became unknown; this one was not applied. */
export class StateWritesHaltedError extends StatePersistError {
  override name = "StateWritesHaltedError";
}

/**
 * Writing the change to disk failed in a way that leaves the disk's content unknown (state-journal.ts
 * explains the rule): the change may have been applied, and will be if the next start finds it on
 * disk. The running daemon does not show it and refuses every later write until it is restarted.
 */
export class StateOutcomeUnknownError extends Error {
  override name = "StateOutcomeUnknownError";
}

/** A change would have produced a state that breaks the schema or an invariant; it was not applied. */
export class StateInvalidError extends Error {
  override name = "StateInvalidError";

  constructor(readonly problems: string[]) {
    super(`the change would leave the configuration inconsistent: ${problems.join("; ")}`);
  }
}

/** How the store started when state.json or the journal could not be used. */
export interface StateRecovery {
  /** What was wrong (file, where, problem). */
  problem: string;
  /** Where the unusable state.json went, if it existed and was unusable. */
  movedTo?: string;
  /** Where the journal went, when it was unusable or belonged to the unusable state.json. */
  journalMovedTo?: string;
  /** What the state was restored from, and its revision. */
  restoredFrom: string;
  revision: number;
}

/**
 * What a change function returns: the changes it makes (the cheap path), or the next state (the
 * store diffs it: O(size), for rare operations), or neither when nothing changes; and a result.
 */
export interface Change<R> {
  changes?: StateChange[];
  next?: ClusterState;
  result: R;
}

/** Computes a change from the current state; `links` answers which applications link a model. */
export type ChangeFunction<R> = (current: ClusterState, links: LinkIndex) => Change<R>;

/** Called with the current state and what the committed write changed, once it is durable. */
export type CommitListener = (state: ClusterState, delta: StateDelta) => void;

export interface StateStoreOptions {
  /** Journal lines after which the state is written whole and the journal restarted (default SNAPSHOT_AFTER_CHANGES). */
  snapshotAfterChanges?: number;
  /** Journal bytes after which likewise (default: the larger of 1 MiB and the last state.json's size). */
  snapshotAfterBytes?: number;
  /** Opens the journal's file (default: node:fs; tests inject one that fails on cue). */
  openJournal?: OpenJournalHandle;
}

interface Queued {
  change: ChangeFunction<unknown>;
  resolve: (done: { result: unknown; revision: number }) => void;
  reject: (err: unknown) => void;
}

export class StateStore {
  private readonly listeners = new Set<CommitListener>();
  private readonly queue: Queued[] = [];
  private running = false;
  private readonly idleWaiters: Array<() => void> = [];
  private tempCounter = 0;
  private journal!: JournalFile;
  private journalLines = 0;
  private snapshotBytes = 0;
  /** A failed snapshot is tried again once the journal has grown this far. */
  private snapshotRetryBytes = 0;

  private constructor(
    readonly dir: string,
    private readonly current: ClusterState,
    private readonly links: LinkIndex,
    /** The revision of the state.json on disk (its generation file is named after it when replaced). */
    private snapshotRevision: number,
    private readonly options: StateStoreOptions,
    /** Set when state.json or the journal could not be used and an earlier state was restored. */
    readonly recovery?: StateRecovery,
    /** What was repaired in a state an earlier release wrote (repairLegacyState), one line each. */
    readonly repairs: readonly string[] = [],
    /** Bytes of a torn last journal line dropped at open (a write cut short by a crash, never acknowledged). */
    readonly droppedTornBytes = 0,
  ) {}

  /**
   * Opens (creating the directory if needed) and loads the state: state.json, then the journal's
   * lines after its revision. An unusable state.json or journal is moved aside and the newest state
   * that loads restored (see `recovery`); with none it throws StateFileError and leaves every file
   * as it was.
   */
  static async open(dir: string, options: StateStoreOptions = {}): Promise<StateStore> {
    await mkdir(dir, { recursive: true });
    await removeStaleTempFiles(dir);
    const path = join(dir, STATE_FILE);
    const journalPath = join(dir, JOURNAL_FILE);
    const loaded = await loadState(path);
    // A file we cannot read (EIO, EACCES) may be perfectly good: never replace it with an older one.
    if (!loaded.ok && loaded.unreadable) throw new StateFileError(`${loaded.problem}; refusing to start until it can be read`);
    const journalBytes = await readJournal(journalPath);
    const journal = splitJournal(journalBytes);

    let base: { state: ClusterState; repairs: string[]; from?: string };
    if (loaded.ok) {
      base = loaded;
    } else {
      const generations = await generationFiles(dir);
      const rejected: string[] = [];
      let found: typeof base | undefined;
      if (loaded.missing && generations.length === 0) found = { state: emptyState(), repairs: [] }; // a new cluster
      for (const generation of found ? [] : generations) {
        const candidate = await loadState(join(dir, generation.file));
        if (candidate.ok) {
          found = { ...candidate, from: join(dir, generation.file) };
          break;
        }
        rejected.push(candidate.problem);
      }
      if (!found) {
        throw new StateFileError(
          `${loaded.problem}; refusing to start rather than lose the cluster configuration` +
            (rejected.length > 0 ? ` (no kept generation loads either: ${rejected.join("; ")})` : "") +
            `. Repair the file, or move it (and any ${GENERATION_PREFIX}* and ${JOURNAL_FILE} files) aside to start with an empty state.`,
        );
      }
      base = found;
    }
    const snapshotRevision = base.state.revision;
    const replay = replayJournal(base.state, journal.lines);
    // No state.json and no history, but a journal that does not start from the empty state: not ours to discard.
    if (!loaded.ok && base.from === undefined && replay.stopped) {
      throw new StateFileError(`${loaded.problem}, and ${journalPath} cannot be replayed from an empty state (line ${replay.stopped.line}: ` +
        `${replay.stopped.problem}); refusing to start rather than lose the cluster configuration`);
    }
    let recovery: StateRecovery | undefined;
    if (base.from !== undefined) {
      recovery = { problem: (loaded as { problem: string }).problem, restoredFrom: base.from, revision: base.state.revision };
    } else if (replay.stopped) {
      const kept = replay.stopped.line - 1;
      recovery = {
        problem: `the state journal ${journalPath} is corrupt at line ${replay.stopped.line} (${replay.stopped.problem})`,
        restoredFrom: `${path} and the ${kept} journal line${kept === 1 ? "" : "s"} before it`,
        revision: base.state.revision,
      };
    }
    deepFreezeEntries(base.state);
    const store = new StateStore(dir, base.state, replay.links, snapshotRevision, options, recovery, base.repairs, journal.tornBytes);
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    if (recovery) {
      if (!loaded.ok && !loaded.missing) {
        recovery.movedTo = join(dir, `${BAD_PREFIX}${stamp}`);
        await rename(path, recovery.movedTo);
      }
      // Lines of a lost state.json, or a journal broken in the middle: kept aside, never deleted.
      if (journalBytes.length > 0) {
        recovery.journalMovedTo = join(dir, `${JOURNAL_BAD_PREFIX}${stamp}`);
        await rename(journalPath, recovery.journalMovedTo);
      }
    }
    store.journal = await JournalFile.open(journalPath, options.openJournal);
    // Folded into state.json at once: the next start replays nothing and needs no recovery.
    if (recovery || replay.applied > 0 || !loaded.ok) await store.writeSnapshot();
    if (store.journal.bytes > 0) await store.journal.restart();
    return store;
  }

  /** The last committed state. Its entries are frozen, and it changes only through update(): never modify it. */
  get state(): ClusterState {
    return this.current;
  }

  /** Why every write is refused until the daemon restarts (an earlier write's outcome is unknown), or undefined. */
  get writesHaltedBecause(): string | undefined {
    return this.journal.haltedBecause;
  }

  get path(): string {
    return join(this.dir, STATE_FILE);
  }

  /** Calls `listener` after every committed write, in commit order. Returns an unsubscribe. */
  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Runs `change` on the current state, after every earlier update has been computed. When it
   * changes something, the change gets the next revision, is checked, made durable, applied and
   * announced, all before the returned promise resolves. An exception from `change` (or a change
   * the checks refuse) rejects this call only.
   */
  async update<R>(change: ChangeFunction<R>): Promise<R> {
    return (await this.updateWithRevision(change)).result;
  }

  /** update(), also answering the revision the state had once this write was applied. */
  updateWithRevision<R>(change: ChangeFunction<R>): Promise<{ result: R; revision: number }> {
    return new Promise((resolve, reject) => {
      this.queue.push({ change, resolve, reject } as Queued);
      this.schedule();
    });
  }

  /** Resolves when every update queued so far has finished. */
  drain(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Finishes the queued updates and closes the journal; later updates fail. */
  async close(): Promise<void> {
    await this.drain();
    await this.journal.close();
  }

  private schedule(): void {
    if (this.running) return;
    this.running = true;
    void (async () => {
      while (this.queue.length > 0) {
        await this.commitBatch(this.queue.splice(0));
        if (this.snapshotDue()) {
          await this.snapshot().catch(() => {
            // The journal still holds every write: try again once it has grown as far again.
            this.snapshotRetryBytes = this.journal.bytes + this.snapshotAfterBytes();
          });
        }
      }
      // Set in the same tick as the loop's last look at the queue, so no update is left waiting.
      this.running = false;
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    })();
  }

  /**
   * Computes, checks, and makes durable with one append and one fdatasync the updates queued while
   * the previous batch was written. Each change function sees the changes of those before it, so
   * they are applied as they are computed and all taken back before the await: nothing outside
   * sees a change before it is durable.
   */
  private async commitBatch(batch: Queued[]): Promise<void> {
    const prepared: Array<{ item: Queued; result: unknown; delta?: StateDelta; afterChange: boolean }> = [];
    const undos: Array<() => void> = [];
    for (const item of batch) {
      try {
        const { changes, next, result } = item.change(this.current, this.links);
        const raw = changes ?? (next ? diffStates(this.current, next) : []);
        if (raw.length === 0) {
          prepared.push({ item, result, afterChange: undos.length > 0 });
          continue;
        }
        const delta = { revision: this.current.revision + 1, base: this.current.revision, changes: checkedChanges(raw) };
        const applied = applyChecked(this.current, this.links, delta);
        if (!applied.ok) throw new StateInvalidError(applied.problems);
        undos.push(applied.undo);
        prepared.push({ item, result, delta, afterChange: true });
      } catch (err) {
        item.reject(err);
      }
    }
    for (const undo of undos.reverse()) undo();
    const deltas = prepared.flatMap((p) => (p.delta ? [p.delta] : []));
    if (deltas.length > 0) {
      try {
        await this.journal.append(deltas.map(journalLine).join(""));
      } catch (err) {
        const failure = this.appendFailure(err);
        // An answer computed on a change that did not reach the disk is no answer either: every write
        // that shared the failed append gets the same answer, whichever of them it was.
        for (const p of prepared) {
          if (p.afterChange) p.item.reject(failure);
          else p.item.resolve({ result: p.result, revision: this.current.revision });
        }
        return;
      }
      this.journalLines += deltas.length;
    }
    for (const p of prepared) {
      if (p.delta) {
        applyStateDelta(this.current, p.delta, this.links);
        for (const listener of this.listeners) {
          // The change is durable and current whatever a listener does: its failure must not turn an
          // applied write into an error answer. Listeners report their own errors.
          try {
            listener(this.current, p.delta);
          } catch {
            // ignored, see above
          }
        }
      }
      p.item.resolve({ result: p.result, revision: p.delta?.revision ?? this.current.revision });
    }
  }

  /** What a failed append means for the writes in it (state-journal.ts: not applied, halted, or unknown). */
  private appendFailure(err: unknown): Error {
    const message = (err as Error).message;
    if (err instanceof JournalOutcomeUnknownError) {
      return new StateOutcomeUnknownError(`The change may or may not have been applied: saving it to ${this.journal.path} failed (${message}). ` +
        "The daemon refuses writes until it is restarted; after the restart, read the state to see whether the change is there");
    }
    if (err instanceof JournalHaltedError) return new StateWritesHaltedError(`writes are refused: ${message}`);
    return new StatePersistError(`could not save the change to ${this.journal.path}: ${message}`);
  }

  private snapshotAfterBytes(): number {
    return this.options.snapshotAfterBytes ?? Math.max(MIN_SNAPSHOT_AFTER_BYTES, this.snapshotBytes);
  }

  private snapshotDue(): boolean {
    if (this.journal.bytes < this.snapshotRetryBytes) return false;
    return this.journalLines >= (this.options.snapshotAfterChanges ?? SNAPSHOT_AFTER_CHANGES) || this.journal.bytes >= this.snapshotAfterBytes();
  }

  /** Writes the whole state to state.json, then empties the journal (a kill between the two leaves lines the start skips). */
  private async snapshot(): Promise<void> {
    await this.writeSnapshot();
    await this.journal.restart();
    this.journalLines = 0;
    this.snapshotRetryBytes = 0;
  }

  private async writeSnapshot(): Promise<void> {
    const text = serialize(this.current);
    // A generation that cannot be kept (no space for a copy) only narrows what a later recovery can
    // restore: it must not fail a snapshot that can still be made durable.
    await this.keepGeneration(this.snapshotRevision).catch(() => undefined);
    await this.writeDurably(text);
    await this.pruneGenerations().catch(() => undefined); // spare files are harmless
    this.snapshotRevision = this.current.revision;
    this.snapshotBytes = Buffer.byteLength(text);
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
    // The rename is durable only once the directory entry is.
    await syncDirectory(this.dir);
  }
}

/**
 * The state a directory holds (state.json and the journal lines after it), read without changing
 * anything; throws when any part of it cannot be used. For tools and tests that check what is on disk.
 */
export async function readDurableState(dir: string): Promise<ClusterState> {
  const loaded = await loadState(join(dir, STATE_FILE));
  if (!loaded.ok) throw new StateFileError(loaded.problem);
  const replay = replayJournal(loaded.state, splitJournal(await readJournal(join(dir, JOURNAL_FILE))).lines);
  if (replay.stopped) throw new StateFileError(`the state journal is corrupt at line ${replay.stopped.line} (${replay.stopped.problem})`);
  return loaded.state;
}

/**
 * Applies the journal's lines after `state`'s revision to it in place, each checked as a write is.
 * Lines at or below the revision are already in the snapshot (a kill between a snapshot and the
 * journal's restart leaves them). Stops at the first line that cannot be read or applied.
 */
function replayJournal(state: ClusterState, lines: readonly string[]): { links: LinkIndex; applied: number; stopped?: { line: number; problem: string } } {
  const links = LinkIndex.of(state);
  let applied = 0;
  for (const [i, line] of lines.entries()) {
    const stop = (problem: string) => ({ links, applied, stopped: { line: i + 1, problem } });
    let delta: StateDelta;
    try {
      delta = parseJournalLine(line);
    } catch (err) {
      return stop((err as Error).message);
    }
    if (applied === 0 && delta.revision <= state.revision) continue;
    if (delta.base !== state.revision) return stop(`it applies to revision ${delta.base}, not ${state.revision}`);
    const result = applyChecked(state, links, delta);
    if (!result.ok) return stop(result.problems.slice(0, 5).join("; "));
    applied++;
  }
  return { links, applied };
}

/** Applies a delta in place (keeping the link index) and checks the invariants it touches; one that breaks any is taken back. */
function applyChecked(state: ClusterState, links: LinkIndex, delta: StateDelta): { ok: true; undo: () => void } | { ok: false; problems: string[] } {
  const undo = applyStateDelta(state, delta, links);
  const violations = changeViolations(state, delta.changes, (model) => links.appsLinking(model));
  if (violations.length === 0) return { ok: true, undo };
  undo();
  return { ok: false, problems: violations.map(describeViolation) };
}

/**
 * The changes with each value as the loader will read it back (a JSON round trip through its
 * entry's schema: what JSON cannot carry is refused now, not at the next start), frozen.
 */
function checkedChanges(changes: readonly StateChange[]): StateChange[] {
  const problems: string[] = [];
  const checked = changes.map((change): StateChange => {
    const keyed = change.field !== "api_keys";
    if (keyed && !KEYED_FIELDS.includes(change.field)) {
      problems.push(`${String(change.field)}: not a field of the state`);
      return change;
    }
    if (change.value === undefined) return keyed ? { field: change.field, key: change.key } as StateChange : { field: "api_keys" };
    const where = keyed ? [change.field, change.key] : ["api_keys"];
    const text = JSON.stringify(change.value) as string | undefined;
    const schema = keyed ? STATE_ENTRY_SCHEMAS[change.field] : ApiKeysSchema;
    const parsed = text === undefined ? undefined : schema.safeParse(JSON.parse(text));
    if (!parsed?.success) {
      const issues = parsed?.error.issues ?? [{ path: [], message: "is not JSON data" }];
      for (const issue of issues) problems.push(describeIssue({ ...issue, path: [...where, ...issue.path] }));
      return change;
    }
    return { ...change, value: deepFreeze(parsed.data) } as StateChange;
  });
  if (problems.length > 0) throw new StateInvalidError(problems);
  return checked;
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
  const parsed = ClusterStateSchema.safeParse(json);
  if (!parsed.success) return corrupt(parsed.error.issues.map(describeIssue).slice(0, 5).join("; "));
  const repairs = repairLegacyState(parsed.data);
  const violations = stateViolations(parsed.data);
  if (violations.length > 0) return corrupt(violations.map(describeViolation).slice(0, 5).join("; "));
  return { ok: true, state: parsed.data, repairs };
}

/** The journal's bytes (none when there is no journal); a journal that exists but cannot be read stops the start. */
async function readJournal(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return Buffer.alloc(0);
    throw new StateFileError(`cannot read the state journal ${path}: ${(err as Error).message}; refusing to start until it can be read`);
  }
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

/** Freezes every entry of a loaded state; the top-level records stay the store's to change in place. */
function deepFreezeEntries(state: ClusterState): void {
  const fields = state as unknown as Record<string, Record<string, unknown> | undefined>;
  for (const field of KEYED_FIELDS) for (const value of Object.values(fields[field] ?? {})) deepFreeze(value);
  deepFreeze(state.api_keys);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
