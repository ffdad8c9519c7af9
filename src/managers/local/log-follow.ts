/**
 * Streams a cluster's log files for `clipper logs --follow / --since` on the local manager. The
 * processes write straight into `logs/<component>.log` (appended across restarts, moved to
 * `.log.1` when large), so a reader polls each file: a new inode means the file was rotated (the
 * old one is read to its end first), a shorter file means it was truncated.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import type { LogLine, LogSource, LogStreamOptions } from "../container-manager.js";
import { everyUntilAborted, TextLines } from "../common/index.js";

const CHUNK = 1024 * 1024;
/** How far back a tail looks, however large the file has grown (as readLogTail). */
const TAIL_BYTES = 1024 * 1024;

/** A time a line carries: pino's `"time":<ms>` or an ISO 8601 stamp at its start. */
export function lineTime(line: string): number | undefined {
  const pino = /"time":(\d{12,14})\b/.exec(line);
  if (pino) return Number(pino[1]);
  const iso = /^\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)/.exec(line);
  if (!iso) return undefined;
  const ms = Date.parse(iso[1]!.replace(" ", "T").replace(",", "."));
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * The lines at or after `sinceMs`. A line without a time belongs with the one before it (a stack
 * trace, a multi-line message); lines before the first timed one are kept, as nothing says when
 * they were written (the file as a whole was written to after `sinceMs`, or it would not be read).
 */
export function linesSince(lines: readonly string[], sinceMs: number): string[] {
  let keep = true;
  return lines.filter((line) => {
    const time = lineTime(line);
    if (time !== undefined) keep = time >= sinceMs;
    return keep;
  });
}

/** One log file read from an offset on, across rotation and truncation. */
export class LogFileCursor {
  private fd: number | undefined;
  private ino: number | undefined;
  /** Lines completed by the reads of the current call. */
  private out: string[] = [];
  private text = this.splitter();

  private constructor(readonly path: string, private offset: number) {}

  /** A cursor at `offset` (the file's current end when absent); nothing is read yet. */
  static at(path: string, offset?: number): LogFileCursor {
    let size = 0;
    try {
      size = statSync(path).size;
    } catch {
      // Not written yet: it starts at 0 when it appears.
    }
    return new LogFileCursor(path, offset ?? size);
  }

  /**
   * The lines already in the file, then a cursor after them: the last `tail` lines (from its final
   * MiB), or with `sinceMs` the last `tail` of those written since then (from the whole file).
   */
  static opening(path: string, tail: number, sinceMs?: number): { lines: string[]; cursor: LogFileCursor } {
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch {
      return { lines: [], cursor: LogFileCursor.at(path, 0) };
    }
    try {
      const stat = fstatSync(fd);
      const recent = sinceMs === undefined || stat.mtimeMs >= sinceMs;
      const from = sinceMs === undefined ? Math.max(0, stat.size - TAIL_BYTES) : recent ? 0 : stat.size;
      const bytes = readRange(fd, from, stat.size);
      const lastNewline = bytes.lastIndexOf(0x0a);
      let lines = bytes.subarray(0, lastNewline + 1).toString("utf8").split("\n").slice(sinceMs === undefined && from > 0 ? 1 : 0, -1);
      if (sinceMs !== undefined) lines = linesSince(lines, sinceMs);
      const cursor = new LogFileCursor(path, stat.size);
      cursor.fd = fd;
      cursor.ino = stat.ino;
      // An unterminated last line is finished by the next write, or printed by close().
      cursor.text.push(bytes.subarray(lastNewline + 1));
      return { lines: tail > 0 ? lines.slice(-tail) : [], cursor };
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Where the next read starts. */
  get position(): number {
    return this.offset;
  }

  /** The complete lines written since the last call. */
  poll(): string[] {
    let stat;
    try {
      stat = statSync(this.path);
    } catch {
      stat = undefined;
    }
    if (this.fd !== undefined && (stat === undefined || stat.ino !== this.ino)) {
      // Rotated (or removed): what the old file got before the move is still ours to read.
      this.drain(fstatSync(this.fd).size);
      closeSync(this.fd);
      this.fd = undefined;
      this.text.end();
      this.offset = 0;
    }
    if (stat !== undefined && this.fd === undefined) {
      try {
        this.fd = openSync(this.path, "r");
        this.ino = fstatSync(this.fd).ino;
      } catch {
        // Gone again between the stat and the open: the next poll looks again.
      }
    }
    if (this.fd !== undefined) {
      const size = fstatSync(this.fd).size;
      if (size < this.offset) {
        // Truncated: what was half a line belongs to nothing now.
        this.offset = 0;
        this.text = this.splitter();
      }
      this.drain(size);
    }
    return this.taken();
  }

  /** The unterminated last line, if any, and the file closed. */
  close(): string[] {
    this.text.end();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    return this.taken();
  }

  private splitter(): TextLines {
    return new TextLines((line) => this.out.push(line));
  }

  private taken(): string[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  private drain(size: number): void {
    while (this.offset < size) {
      const end = Math.min(size, this.offset + CHUNK);
      this.text.push(readRange(this.fd!, this.offset, end));
      this.offset = end;
    }
  }
}

function readRange(fd: number, from: number, to: number): Buffer {
  const buffer = Buffer.alloc(to - from);
  let read = 0;
  while (read < buffer.length) {
    const n = readSync(fd, buffer, read, buffer.length - read, from + read);
    if (n === 0) break;
    read += n;
  }
  return buffer.subarray(0, read);
}

/** How often files are read for new lines, and how often the list of components is asked again. */
const POLL_MS = 200;
const RELIST_EVERY = 5;

/**
 * `streamLogs` over log files. `list` names the matching components' files (asked again while
 * following, so replicas started later are picked up); `allFiles` are every log file now, whose
 * sizes mark where a file first seen later begins (only what was written after the call is new).
 */
export async function streamLogFiles(
  list: () => Promise<LogSource[]>,
  allFiles: () => LogSource[],
  options: LogStreamOptions,
  onLine: (line: LogLine) => void,
): Promise<void> {
  const startSizes = new Map(allFiles().map((f) => [f.path!, LogFileCursor.at(f.path!).position]));
  const cursors = new Map<string, { component: string; cursor: LogFileCursor }>();
  const emit = (component: string, lines: string[]) => {
    for (const line of lines) onLine({ component, line });
  };
  for (const source of await list()) {
    if (!source.path) continue;
    const { lines, cursor } = LogFileCursor.opening(source.path, options.tail, options.since?.getTime());
    cursors.set(source.path, { component: source.component, cursor });
    emit(source.component, lines);
  }
  let ticks = 0;
  try {
    if (options.follow) {
      await everyUntilAborted(options.signal, POLL_MS, async () => {
        if (++ticks % RELIST_EVERY === 0) {
          // A failed listing (the supervisor restarting) only delays new components.
          for (const source of await list().catch(() => [])) {
            if (source.path && !cursors.has(source.path)) {
              cursors.set(source.path, { component: source.component, cursor: LogFileCursor.at(source.path, startSizes.get(source.path) ?? 0) });
            }
          }
        }
        for (const { component, cursor } of cursors.values()) emit(component, cursor.poll());
      });
    }
  } finally {
    for (const { component, cursor } of cursors.values()) emit(component, cursor.close());
  }
}
