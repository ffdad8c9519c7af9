/** Process helpers: liveness, process-group signals, and stopping leftovers of a dead supervisor. */
import { setTimeout as sleep } from "node:timers/promises";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import type { ChildrenFile } from "./schemas.js";

export { sleep };

/** Whether a process with this pid exists (owned by anyone) and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  return !isZombie(pid);
}

/** A zombie has exited and waits for its parent to collect it (Linux only; false elsewhere). */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

/** Whether any process (not a zombie) of the process group led (once) by `pgid` still exists. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  // Zombies count as members until their new parent collects them, which may take a while.
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return true; // not Linux: trust the signal check
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z") return true;
    } catch {
      // exited meanwhile
    }
  }
  return false;
}

/** Sends a signal to a whole process group; false when the group is gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** The command line of a process, or undefined when it cannot be read. */
export function commandLine(pid: number): string | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return raw.split("\0").filter((s) => s.length > 0).join(" ");
  } catch {
    // not Linux, or gone
  }
  try {
    return execFileSync("ps", ["-o", "args=", "-p", String(pid)], { encoding: "utf8", timeout: 2000 }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Whether the process `pid` still runs the given command (guards against reused pids). */
export function runsCommand(pid: number, argv: string[]): boolean {
  const line = commandLine(pid);
  return line !== undefined && line === argv.join(" ");
}

/** Resolves true once the process is gone, false when it is still there after timeoutMs. */
export async function waitForExit(pid: number, timeoutMs: number, group = false): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const alive = () => (group ? groupAlive(pid) : pidAlive(pid));
  while (alive()) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

/**
 * Stops the child process groups a supervisor recorded before it died. A group whose leader still
 * runs is stopped only when the leader still runs the recorded command (pids get reused); a group
 * whose leader is gone but whose members live on is ours, as its id cannot be reused meanwhile.
 */
export async function stopLeftovers(record: ChildrenFile, graceMs: number): Promise<number[]> {
  const targets = record.children
    .filter((c) => (pidAlive(c.pid) ? runsCommand(c.pid, c.argv) : groupAlive(c.pid)))
    .map((c) => c.pid);
  for (const pgid of targets) signalGroup(pgid, "SIGTERM");
  await Promise.all(
    targets.map(async (pgid) => {
      if (!(await waitForExit(pgid, graceMs, true))) {
        signalGroup(pgid, "SIGKILL");
        await waitForExit(pgid, 2000, true);
      }
    }),
  );
  return targets;
}
