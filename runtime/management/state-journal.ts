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

/** The journal file, open for appending. */
export class JournalFile {
  /** Set when a failed append could not be taken back: the file may hold a line that was never acknowledged. */
  private broken: Error | undefined;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private size: number,
  ) {}

  /** Opens the journal (creating it empty, durably, when there is none). */
  static async open(path: string): Promise<JournalFile> {
    const handle = await open(path, "a", 0o600);
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

  /**
   * Appends lines and waits until they are on disk. On failure the file is cut back to where it was,
   * so a write that was refused never comes back at the next start; when even that fails, every
   * later append fails too (the daemon must be restarted, and will load what the disk holds).
   */
  async append(text: string): Promise<void> {
    if (this.broken) throw this.broken;
    const before = this.size;
    try {
      await this.handle.appendFile(text, "utf8");
      await this.handle.datasync();
    } catch (err) {
      try {
        await this.handle.truncate(before);
        await this.handle.sync();
      } catch (undo) {
        this.broken = new Error(`the journal ${this.path} may hold a refused write (${(undo as Error).message}); restart the daemon`);
      }
      throw err;
    }
    this.size += Buffer.byteLength(text);
  }

  /** Empties the journal once a snapshot holds everything in it. */
  async restart(): Promise<void> {
    if (this.broken) throw this.broken;
    await this.handle.truncate(0);
    await this.handle.sync();
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
