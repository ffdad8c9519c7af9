/** A container's CPU and memory out of the Engine API's stats answer, computed as `docker stats` does. */
import type { ContainerUsage } from "./engine.js";

interface CpuStats {
  cpu_usage?: { total_usage?: number; percpu_usage?: number[] };
  system_cpu_usage?: number;
  online_cpus?: number;
}

/** The parts of GET /containers/{id}/stats?stream=false this reads. */
export interface EngineStats {
  cpu_stats?: CpuStats;
  precpu_stats?: CpuStats;
  memory_stats?: { usage?: number; stats?: Record<string, number> };
}

export function usageFromStats(stats: EngineStats): ContainerUsage {
  const usage: ContainerUsage = {};
  const [now, before] = [stats.cpu_stats, stats.precpu_stats];
  const cpuDelta = (now?.cpu_usage?.total_usage ?? NaN) - (before?.cpu_usage?.total_usage ?? NaN);
  const systemDelta = (now?.system_cpu_usage ?? NaN) - (before?.system_cpu_usage ?? NaN);
  const cpus = now?.online_cpus ?? now?.cpu_usage?.percpu_usage?.length ?? 1;
  // The system counter covers every core, so the share of the machine times the cores is the share of one core.
  if (Number.isFinite(cpuDelta) && systemDelta > 0 && cpuDelta >= 0) usage.cpuPercent = Math.round((cpuDelta / systemDelta) * cpus * 1000) / 10;
  const memory = stats.memory_stats;
  if (typeof memory?.usage === "number") {
    // cgroup v2 reports inactive_file, v1 total_inactive_file (older daemons: cache): the page cache docker stats leaves out.
    const cache = memory.stats?.inactive_file ?? memory.stats?.total_inactive_file ?? memory.stats?.cache ?? 0;
    usage.memoryBytes = Math.max(0, memory.usage - (cache < memory.usage ? cache : 0));
  }
  return usage;
}
