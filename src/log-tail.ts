/** The last lines of a log file, reading at most its final MiB however large it has grown. */
import { closeSync, openSync, readSync, statSync } from "node:fs";

const MAX_READ = 1024 * 1024;

export function readLogTail(path: string, lines: number): string[] {
  let fd: number | undefined;
  try {
    const size = statSync(path).size;
    const length = Math.min(size, MAX_READ);
    const buffer = Buffer.alloc(length);
    fd = openSync(path, "r");
    readSync(fd, buffer, 0, length, size - length);
    return buffer.toString("utf8").split("\n").filter((l) => l !== "").slice(-lines);
  } catch {
    return [];
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
