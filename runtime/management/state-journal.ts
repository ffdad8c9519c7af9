/**
 * The state store's journal: one NDJSON line per committed write, `{"revision","base","changes"}`
 * (a StateDelta, state-delta.ts), appended and fdatasync'ed before the write is acknowledged. A
 * write then costs the bytes it changes, where rewriting state.json cost the whole state. The store
 * folds the journal into a new state.json now and then and starts it afresh (store.ts).
 *
 * A crash mid-append leaves a last line without its newline: that write was never acknowledged,
 * and the reader drops it. Any other line that does not parse is corruption, for the store to
 * handle like a corrupt state.json.
 */
import { type FileHandle, open } from "node:fs/promises";
import { dirname } from "node:path";
import { parseStateDelta, type StateDelta } from "../shared/state-delta.js";

export const JOURNAL_FILE = "state.journal";
export const JOURNAL_BAD_PREFIX = `${JOURNAL_FILE}.bad-`;

/** A write's journal line. */
export function journalLine(delta: StateDelta): string {
  return JSON.stringify(delta) + "\n";
}

/** The complete lines of a journal, and how many bytes of a torn last line (an append cut short) follow them. */
export function splitJournal(bytes: Buffer): { lines: string[]; tornBytes: number } {
  const end = bytes.lastIndexOf(0x0a) + 1;
  const text = bytes.subarray(0, end).toString("utf8");
  return { lines: end === 0 ? [] : text.slice(0, -1).split("\n"), tornBytes: bytes.length - end };
}

/** One line as a delta, its entries checked against their schemas; throws with the reason when it is not one. */
export function parseJournalLine(line: string): StateDelta {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch (err) {
    throw new Error(`invalid JSON: ${(err as Error).message}`);
  }
  return parseStateDelta(json);
}

/** What the journal needs of its open file (a FileHandle; tests pass one that fails on cue). */
export type JournalHandle = Pick<FileHandle, "appendFile" | "datasync" | "truncate" | "sync" | "stat" | "close">;

/** Opens the journal's file for appending. */
export type OpenJournalHandle = (path: string) => Promise<JournalHandle>;

const openForAppend: OpenJournalHandle = (path) => open(path, "a", 0o600);

/**
 * An append failed and could not be taken back: the file may or may not hold the lines, durably or
 * not, so the next start may or may not replay them. Nothing can tell which until then.
 */
export class JournalOutcomeUnknownError extends Error {
  override name = "JournalOutcomeUnknownError";
}

/** The journal refuses appends since an earlier one's outcome became unknown (nothing was written). */
export class JournalHaltedError extends Error {
  override name = "JournalHaltedError";
}

/**
 * The journal file, open for appending.
 *
 * The rule when an append fails: it is cut back (truncate, fsync) to where it was, and only when
 * that succeeds is the write reported as not applied. When the cut-back fails too, the file's
 * durable content is unknown (after a failed fsync the kernel may have written the line, dropped it,
 * or marked the pages clean: PostgreSQL's "fsyncgate"), so the write is reported as of unknown
 * outcome, never as not applied, and every later append is refused until the daemon restarts and
 * loads what the disk holds: appending after a line that may or may not be there would build on
 * state nobody can name. A durable "refused" marker cannot do better: it would be written to the
 * disk that just failed.
 */
export class JournalFile {
  /** Set when a failed append could not be taken back: the file may hold a line that was never acknowledged. */
  private halted: JournalHaltedError | undefined;

  private constructor(
    readonly path: string,
    private readonly handle: JournalHandle,
    private size: number,
  ) {}

  /** Opens the journal (creating it empty, durably, when there is none). */
  static async open(path: string, openHandle: OpenJournalHandle = openForAppend): Promise<JournalFile> {
    const handle = await openHandle(path);
    const { size } = await handle.stat();
    if (size === 0) {
      await handle.sync();
      await syncDirectory(dirname(path));
    }
    return new JournalFile(path, handle, size);
  }

  get bytes(): number {
    return this.size;
  }

  /** Why appends are refused (until the daemon restarts), or undefined while they are taken. */
  get haltedBecause(): string | undefined {
    return this.halted?.message;
  }

  /**
   * Appends lines and waits until they are on disk. Throws the failure as it came when the file is
   * as before, JournalOutcomeUnknownError when it failed and the file could not be put back
   * (and from then on JournalHaltedError: see the class comment).
   */
  async append(text: string): Promise<void> {
    if (this.halted) throw this.halted;
    const before = this.size;
    try {
      await this.handle.appendFile(text, "utf8");
      await this.handle.datasync();
    } catch (err) {
      const reason = (err as Error).message;
      try {
        await this.handle.truncate(before);
        await this.handle.sync();
      } catch (undo) {
        const why = `${reason}, and it could not be taken back: ${(undo as Error).message}`;
        this.halted = new JournalHaltedError(`an earlier write to ${this.path} may or may not have been saved (${why}); restart the daemon`);
        throw new JournalOutcomeUnknownError(why);
      }
      throw err; // taken back: the file is durably as before, the write was not applied
    }
    this.size += Buffer.byteLength(text);
  }

  /** Empties the journal once a snapshot holds everything in it. */
  async restart(): Promise<void> {
    if (this.halted) throw this.halted;
    try {
      await this.handle.truncate(0);
      await this.handle.sync();
    } catch (err) {
      // Whatever is left is in the snapshot (a start skips it), but a failed append must know where to cut back to.
      try {
        this.size = (await this.handle.stat()).size;
      } catch (lost) {
        this.halted = new JournalHaltedError(`the end of ${this.path} is unknown (${(lost as Error).message}); restart the daemon`);
      }
      throw err;
    }
    this.size = 0;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Makes a directory's entries (a created or renamed file) durable. Windows cannot open a directory for fsync. */
export async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === "win32") return;
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
