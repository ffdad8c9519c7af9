/**
 * How long runnable tasks waited for a CPU, machine-wide: the `some` line of /proc/pressure/cpu
 * (Linux PSI), a total in µs. Over a round, its increase divided by the round's length is the share
 * of time at least one task was kept off a CPU by others: on a shared machine, what tells a stall
 * caused by other work from one the server caused.
 */
import { readFileSync } from "node:fs";

/** Parses the `some` total (µs) out of /proc/pressure/cpu's text. */
export function parseCpuPressureMicros(text: string): number | undefined {
  const total = /^some\b.*\btotal=(\d+)/m.exec(text)?.[1];
  const value = total === undefined ? NaN : Number(total);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** The machine's total now, or undefined where PSI is not available. */
export function cpuPressureMicros(): number | undefined {
  try {
    return parseCpuPressureMicros(readFileSync("/proc/pressure/cpu", "utf8"));
  } catch {
    return undefined;
  }
}
