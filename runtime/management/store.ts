/**
 * The durable cluster state. The management daemon is its single writer: every change is computed
 * on a copy, written to disk (temp file, fsync, rename over state.json, fsync the directory) and
 * only then becomes the current state, is announced to listeners and may be acknowledged. Changes
 * are serialized through one promise chain, so two requests never interleave their
 * read-modify-write, and a `kill -9` at any instant leaves either the old or the new file whole.
 */
import { mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { type ClusterState, ClusterStateSchema, emptyState } from "../shared/state.js";

export const STATE_FILE = "state.json";
const TEMP_PREFIX = `${STATE_FILE}.tmp-`;

/** The state file exists but cannot be trusted: the daemon refuses to start rather than wipe it. */
export class StateFileError extends Error {
  override name = "StateFileError";
}

/** Writing the state to disk failed; the change was not applied. */
export class StatePersistError extends Error {
  override name = "StatePersistError";
}

/** What a change function returns: the next state (or none when nothing changes) and a result. */
export interface Change<R> {
  next?: ClusterState;
  result: R;
}

export type CommitListener = (state: ClusterState) => void;

export class StateStore {
  private current: ClusterState;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<CommitListener>();
  private tempCounter = 0;

  private constructor(
    readonly dir: string,
    initial: ClusterState,
  ) {
    this.current = deepFreeze(initial);
  }

  /** Opens (creating the directory if needed) and loads the state; a corrupt file throws StateFileError. */
  static async open(dir: string): Promise<StateStore> {
    await mkdir(dir, { recursive: true });
    await removeStaleTempFiles(dir);
    return new StateStore(dir, await loadState(join(dir, STATE_FILE)));
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
    const committed: ClusterState = { ...next, revision: this.current.revision + 1 };
    try {
      await this.writeDurably(JSON.stringify(committed, null, 2) + "\n");
    } catch (err) {
      throw new StatePersistError(`could not save ${this.path}: ${(err as Error).message}`);
    }
    this.current = deepFreeze(committed);
    for (const listener of this.listeners) {
      // The change is durable and current whatever a listener does: its failure must not turn an
      // applied write into an error answer. Listeners report their own errors.
      try {
        listener(this.current);
      } catch {
        // ignored, see above
      }
    }
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

async function loadState(path: string): Promise<ClusterState> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return emptyState();
    throw new StateFileError(`cannot read the state file ${path}: ${(err as Error).message}`);
  }
  const refuse = (why: string) =>
    new StateFileError(
      `the state file ${path} is corrupt (${why}); refusing to start rather than lose the cluster ` +
        `configuration. Repair the file, or move it aside to start with an empty state.`,
    );
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw refuse(`invalid JSON: ${(err as Error).message}`);
  }
  const parsed = ClusterStateSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw refuse(`${issue?.path.join(".") || "top level"}: ${issue?.message ?? "invalid"}`);
  }
  for (const [name, model] of Object.entries(parsed.data.models)) {
    if (model.current_version !== null && !(model.current_version in model.versions)) {
      throw refuse(`model '${name}' has current version '${model.current_version}' that does not exist`);
    }
  }
  return parsed.data;
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
