/**
 * Uptime, CPU and memory of local processes from Linux's /proc (`clipper status`). CPU is the
 * share of one core over a short sample, as `top` shows it; memory is the resident set. Both
 * include the process's direct children: a frontend with `--frontend-workers N` is a primary whose
 * workers do the work.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { ResourceUsage } from "../container-manager.js";
import { pause } from "../common/index.js";

/** Clock ticks per second of /proc's times: USER_HZ, fixed at 100 by the kernel's user ABI. */
export const USER_HZ = 100;
const DEFAULT_SAMPLE_MS = 250;

export interface ProcTimes {
  /** utime + stime, in ticks. */
  cpuTicks: number;
  /** Start, in ticks after boot. */
  startTicks: number;
}

/** Fields 14, 15 and 22 of /proc/PID/stat; the name (field 2) may hold spaces and parentheses. */
export function parseProcStat(text: string): ProcTimes | undefined {
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const [utime, stime, start] = [Number(fields[11]), Number(fields[12]), Number(fields[19])];
  if (![utime, stime, start].every(Number.isFinite)) return undefined;
  return { cpuTicks: utime + stime, startTicks: start };
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** A process's times now, or undefined where /proc cannot tell (not Linux, process gone). */
export function processTimes(pid: number): ProcTimes | undefined {
  const text = read(`/proc/${pid}/stat`);
  return text === undefined ? undefined : parseProcStat(text);
}

/** The direct children of `pid`, whichever of its threads forked them. */
function childrenOf(pid: number): number[] {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return threads.flatMap((tid) =>
    (read(`/proc/${pid}/task/${tid}/children`) ?? "").split(" ").map(Number).filter((n) => Number.isSafeInteger(n) && n > 0));
}

/** A process and its direct children, each with its times (the children's start tells a reused pid). */
export function processFamily(pid: number): Map<number, ProcTimes> {
  const members = new Map<number, ProcTimes>();
  for (const member of [pid, ...childrenOf(pid)]) {
    const t = processTimes(member);
    if (t) members.set(member, t);
  }
  return members;
}

function residentBytes(pid: number): number | undefined {
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(read(`/proc/${pid}/status`) ?? "")?.[1];
  return kb === undefined ? undefined : Number(kb) * 1024;
}

/** Whether this system has /proc to read (Linux); elsewhere status says so instead of guessing. */
export function procAvailable(): boolean {
  return /^btime \d+$/m.test(read("/proc/stat") ?? "");
}

/** Each live pid's usage; a pid that is gone (or unreadable) is absent from the answer. */
export async function processUsage(pids: readonly number[], sampleMs = DEFAULT_SAMPLE_MS): Promise<Map<number, ResourceUsage>> {
  const usage = new Map<number, ResourceUsage>();
  const bootSeconds = Number(/^btime (\d+)$/m.exec(read("/proc/stat") ?? "")?.[1]);
  if (!Number.isFinite(bootSeconds) || pids.length === 0) return usage;
  const before = new Map(pids.map((pid) => [pid, processFamily(pid)]));
  const startedMs = performance.now();
  await pause(sampleMs, undefined);
  const elapsedSeconds = (performance.now() - startedMs) / 1000;
  for (const pid of pids) {
    const [firstFamily, secondFamily] = [before.get(pid)!, processFamily(pid)];
    const [first, second] = [firstFamily.get(pid), secondFamily.get(pid)];
    // A different start time is a different process that got the same pid.
    if (!first || !second || first.startTicks !== second.startTicks) continue;
    let ticks = 0;
    let memoryBytes: number | undefined;
    for (const [member, now] of secondFamily) {
      const then = firstFamily.get(member);
      // A child forked during the sample (a worker restarted): all of its time falls within it.
      ticks += now.cpuTicks - (then && then.startTicks === now.startTicks ? then.cpuTicks : 0);
      const rss = residentBytes(member);
      if (rss !== undefined) memoryBytes = (memoryBytes ?? 0) + rss;
    }
    usage.set(pid, {
      uptimeSeconds: Math.max(0, Math.round(Date.now() / 1000 - (bootSeconds + second.startTicks / USER_HZ))),
      cpuPercent: Math.round((ticks / USER_HZ / elapsedSeconds) * 1000) / 10,
      ...(memoryBytes === undefined ? {} : { memoryBytes }),
    });
  }
  return usage;
}
