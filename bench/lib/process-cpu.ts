/**
 * CPU time a process has used (user + system, ms), from /proc/<pid>/stat (read by the local
 * manager's proc-usage.ts): read around a round, it gives a server's CPU per answer, which compares
 * two servers whatever share of the shared cores each got (throughput alone swings with the other
 * work on the machine).
 */
import { parseProcStat, processTimes, USER_HZ, type ProcTimes } from "../../src/managers/local/proc-usage.js";

const cpuMs = (times: ProcTimes | undefined): number | undefined =>
  times === undefined ? undefined : (times.cpuTicks * 1000) / USER_HZ;

/** Parses utime + stime (ms) out of /proc/<pid>/stat's text. */
export function parseProcessCpuMs(stat: string): number | undefined {
  return cpuMs(parseProcStat(stat));
}

/** The process's CPU time now, or undefined where /proc cannot tell (not Linux, process gone). */
export function processCpuMs(pid: number): number | undefined {
  return cpuMs(processTimes(pid));
}
