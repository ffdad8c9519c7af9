/**
 * Uptime, CPU and memory of the cluster's pods (`clipper status`). CPU and memory come from the
 * metrics API (metrics.k8s.io, served by metrics-server) when the cluster has it; otherwise they
 * stay empty and the status says why.
 */
import type { CustomObjectsApi, V1Pod } from "@kubernetes/client-node";
import type { ResourceUsage } from "../container-manager.js";

const CPU_SUFFIX: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, "": 1 };
const MEMORY_SUFFIX: Record<string, number> = {
  "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4,
};

/** A CPU quantity ("250m", "12345678n", "2") in cores. */
export function cpuCores(quantity: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(n|u|m|)$/.exec(quantity.trim());
  return m ? Number(m[1]) * CPU_SUFFIX[m[2]!]! : undefined;
}

/** A memory quantity ("123456Ki", "100Mi", "1G", "1024") in bytes. */
export function memoryBytes(quantity: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|)$/.exec(quantity.trim());
  return m ? Math.round(Number(m[1]) * MEMORY_SUFFIX[m[2]!]!) : undefined;
}

/** Seconds since the pod's (first) container last started. */
export function podUptimeSeconds(pod: V1Pod, now = Date.now()): number | undefined {
  const started = pod.status?.containerStatuses?.[0]?.state?.running?.startedAt;
  return started ? Math.max(0, Math.round((now - new Date(started).getTime()) / 1000)) : undefined;
}

interface PodMetrics {
  metadata?: { name?: string };
  containers?: { usage?: { cpu?: string; memory?: string } }[];
}

export type PodMetricsAnswer = { usage: Map<string, ResourceUsage> } | { unavailable: string };

/** CPU and memory per pod name (summed over its containers), or why the cluster cannot say. */
export async function podMetrics(custom: CustomObjectsApi, namespace: string, labelSelector: string): Promise<PodMetricsAnswer> {
  let list: { items?: PodMetrics[] };
  try {
    list = await custom.listNamespacedCustomObject({ group: "metrics.k8s.io", version: "v1beta1", namespace, plural: "pods", labelSelector }) as { items?: PodMetrics[] };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return {
      unavailable: code === 404
        ? "the cluster serves no metrics API (metrics.k8s.io): install metrics-server for pod CPU and memory"
        : `the metrics API (metrics.k8s.io) did not answer${typeof code === "number" ? ` (${code})` : ""}: ${(err as Error).message.split("\n")[0]}`,
    };
  }
  const usage = new Map<string, ResourceUsage>();
  for (const item of list.items ?? []) {
    const name = item.metadata?.name;
    if (!name) continue;
    let cores = 0;
    let bytes = 0;
    for (const c of item.containers ?? []) {
      cores += cpuCores(c.usage?.cpu ?? "") ?? 0;
      bytes += memoryBytes(c.usage?.memory ?? "") ?? 0;
    }
    usage.set(name, { cpuPercent: Math.round(cores * 1000) / 10, memoryBytes: bytes });
  }
  return { usage };
}
