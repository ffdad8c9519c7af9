/**
 * CPU time of each part of a bench cluster (ms, from /proc), read around a phase: where a phase's
 * CPU went on the shared cores — the management daemon, the frontend's primary and its workers, the
 * model replicas, and the bench process itself (its load generator and writers).
 */
import { processFamily, USER_HZ } from "../../src/managers/local/proc-usage.js";
import type { BenchCluster } from "./cluster.js";

export const CPU_PARTS = ["daemon", "frontend primary", "frontend workers", "models", "bench process"] as const;
export type CpuPart = (typeof CPU_PARTS)[number];
export type CpuByPart = Record<CpuPart, number>;

const familyMs = (pid: number | undefined, children: boolean): number => {
  if (pid === undefined) return 0;
  let ticks = 0;
  for (const [member, times] of processFamily(pid)) if ((member !== pid) === children) ticks += times.cpuTicks;
  return (ticks * 1000) / USER_HZ;
};

/** The CPU each part has used so far (ms); subtract two readings for a phase's share. */
export async function clusterCpuMs(cluster: BenchCluster): Promise<CpuByPart> {
  const status = await cluster.conn.inspectInstance();
  const pid = (name: string) => status.components.find((c) => c.component === name)?.pid;
  const self = process.cpuUsage();
  return {
    "daemon": familyMs(pid("management"), false),
    "frontend primary": familyMs(pid("frontend"), false),
    "frontend workers": familyMs(pid("frontend"), true),
    "models": status.replicas.reduce((sum, r) => sum + familyMs(r.pid, false) + familyMs(r.pid, true), 0),
    "bench process": (self.user + self.system) / 1000,
  };
}

/** CPU per second of wall time (ms/s) of each part between two readings. */
export function cpuRate(before: CpuByPart, after: CpuByPart, seconds: number): CpuByPart {
  const rate = {} as CpuByPart;
  for (const part of CPU_PARTS) rate[part] = Math.round((after[part] - before[part]) / seconds);
  return rate;
}
