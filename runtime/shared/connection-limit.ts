/**
 * The default of `--max-connections` (both HTTP servers): below the process's file-descriptor
 * limit, so that at the cap the process still has descriptors for its state files, logs, ZeroMQ
 * sockets and the connection it answers 503 on. Rule: the soft RLIMIT_NOFILE less a reserve of a
 * tenth of it, at least 128, and never under 16 (read from /proc/self/limits; where that file does
 * not exist, e.g. macOS, a soft limit of 1024 is assumed, or 65536 when Linux says "unlimited").
 */
import { readFileSync } from "node:fs";

/** The soft limit assumed where /proc/self/limits cannot be read. */
export const ASSUMED_SOFT_FD_LIMIT = 1024;
/** The soft limit assumed when the kernel reports none. */
const UNLIMITED_AS = 65_536;
const MIN_RESERVE = 128;
const MIN_DEFAULT = 16;
/** Upper bound of `--max-connections`: more than any descriptor limit a process gets. */
export const MAX_MAX_CONNECTIONS = 16_777_216;

/** The soft "Max open files" of a /proc/<pid>/limits text; undefined when absent or malformed. */
export function softFdLimitOf(limitsText: string): number | undefined {
  const line = limitsText.split("\n").find((l) => l.startsWith("Max open files"));
  const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
  if (soft === "unlimited") return UNLIMITED_AS;
  return soft !== undefined && /^\d{1,12}$/.test(soft) ? Number(soft) : undefined;
}

/** This process's soft descriptor limit (see the module comment for the fallbacks). */
export function softFdLimit(): number {
  let text: string;
  try {
    text = readFileSync("/proc/self/limits", "utf8");
  } catch {
    return ASSUMED_SOFT_FD_LIMIT;
  }
  return softFdLimitOf(text) ?? ASSUMED_SOFT_FD_LIMIT;
}

/** The connection cap for a soft descriptor limit (the rule in the module comment). */
export function maxConnectionsFor(softLimit: number): number {
  const reserve = Math.max(MIN_RESERVE, Math.ceil(softLimit / 10));
  return Math.max(MIN_DEFAULT, softLimit - reserve);
}

/** The default `--max-connections` of this process. */
export function defaultMaxConnections(): number {
  return maxConnectionsFor(softFdLimit());
}
