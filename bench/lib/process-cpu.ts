/**
 * CPU time a process has used (user + system, ms), from /proc/<pid>/stat: read around a round, it
 * gives a server's CPU per answer, which compares two servers whatever share of the shared cores
 * each got (throughput alone swings with the other work on the machine).
 */
import { readFileSync } from "node:fs";

/** /proc counts in USER_HZ ticks, 100 per second on Linux whatever the kernel's own HZ. */
const TICK_MS = 10;

/** Parses utime + stime (ms) out of /proc/<pid>/stat's text (the command name may hold spaces and parentheses). */
export function parseProcessCpuMs(stat: string): number | undefined {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the name: state is field 3 of the file, utime 14 and stime 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return Number.isSafeInteger(utime) && Number.isSafeInteger(stime) ? (utime + stime) * TICK_MS : undefined;
}

/** The process's CPU time now, or undefined where /proc cannot tell (not Linux, process gone). */
export function processCpuMs(pid: number): number | undefined {
  try {
    return parseProcessCpuMs(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}
