/**
 * The machine's count of retransmitted TCP segments (`RetransSegs` on the `Tcp:` lines of
 * /proc/net/snmp). A loopback segment is lost only when a queue overflows, and its retransmission
 * waits at least Linux's minimum RTO (200 ms): read before and after a round, a difference > 0
 * tells a 200 ms tail caused by the network stack from one caused by the server.
 */
import { readFileSync } from "node:fs";

/** Parses the counter out of /proc/net/snmp's text (a header line of names, then one of values). */
export function parseRetransSegs(snmp: string): number | undefined {
  const lines = snmp.split("\n").filter((l) => l.startsWith("Tcp:"));
  if (lines.length < 2) return undefined;
  const names = lines[0]!.trim().split(/\s+/);
  const values = lines[1]!.trim().split(/\s+/);
  const at = names.indexOf("RetransSegs");
  if (at < 1 || at >= values.length) return undefined;
  const value = Number(values[at]);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** The machine-wide counter now, or undefined where /proc/net/snmp cannot be read (not Linux). */
export function retransSegs(): number | undefined {
  try {
    return parseRetransSegs(readFileSync("/proc/net/snmp", "utf8"));
  } catch {
    return undefined;
  }
}

/** Runs `work` and counts the segments the machine retransmitted meanwhile (undefined: unknown). */
export async function countingRetransmissions<T>(work: () => Promise<T>): Promise<{ result: T; retransmitted: number | undefined }> {
  const before = retransSegs();
  const result = await work();
  const after = retransSegs();
  return { result, retransmitted: before === undefined || after === undefined ? undefined : after - before };
}
