/**
 * What the manager reads off pods and Deployments: readiness, a rollout's completion, why a pod is
 * not ready, and the replica numbers `clipper status` and `clipper logs` share.
 */
import type { V1Deployment, V1Pod } from "@kubernetes/client-node";
import { LABEL, type Role } from "../cluster-spec.js";
import type { LogCandidate, LogRole, StopRole } from "../common/index.js";
import type { ComponentStatus, ReplicaStatus, ResourceUsage } from "../container-manager.js";

/** Pods with their replica number: model pods numbered per version in name order, others 0. */
export function numberReplicas(pods: readonly V1Pod[]): { pod: V1Pod; replica: number }[] {
  const counters = new Map<string, number>();
  return [...pods].sort((a, b) => String(a.metadata?.name).localeCompare(String(b.metadata?.name))).map((pod) => {
    const labels = pod.metadata?.labels ?? {};
    if (labels[LABEL.role] !== "model") return { pod, replica: 0 };
    const k = `${labels[LABEL.modelName]}:${labels[LABEL.modelVersion]}`;
    const replica = counters.get(k) ?? 0;
    counters.set(k, replica + 1);
    return { pod, replica };
  });
}

/** `clipper status` of the cluster's pods: model pods as replicas, the others as components. */
export function podStatuses(
  pods: readonly V1Pod[],
  usageOf: (pod: V1Pod) => ResourceUsage | undefined = () => undefined,
): { components: ComponentStatus[]; replicas: ReplicaStatus[] } {
  const components: ComponentStatus[] = [];
  const replicas: ReplicaStatus[] = [];
  for (const { pod, replica } of numberReplicas(pods)) {
    const labels = pod.metadata?.labels ?? {};
    const role = labels[LABEL.role] as Role | undefined;
    const state = podState(pod);
    const ready = podReady(pod);
    const restarts = (pod.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0);
    const usage = usageOf(pod);
    const measured = usage ? { usage } : {};
    if (role === "model") {
      replicas.push({ name: labels[LABEL.modelName] ?? "", version: labels[LABEL.modelVersion] ?? "", replica, state, restarts, pod: pod.metadata?.name ?? "", ready, ...measured });
    } else if (role) {
      components.push({ component: `${role}/${pod.metadata?.name}`, state, restarts, ready, ...measured });
    }
  }
  return { components, replicas };
}

const LOG_ROLES: Record<string, LogRole> = { management: "management", query_frontend: "frontend", autoscaler: "autoscaler", model: "model" };

/** Each pod as the logs grammar (common/log-components.ts) sees it: its name, role and replica. */
export function logCandidates(pods: readonly V1Pod[]): (LogCandidate & { pod: V1Pod })[] {
  return numberReplicas(pods).map(({ pod, replica }) => {
    const labels = pod.metadata?.labels ?? {};
    const role = Object.prototype.hasOwnProperty.call(LOG_ROLES, labels[LABEL.role] ?? "") ? LOG_ROLES[labels[LABEL.role]!]! : "other";
    const name = labels[LABEL.modelName];
    const version = labels[LABEL.modelVersion];
    return {
      pod,
      component: pod.metadata?.name ?? "",
      role,
      ...(role === "model" && name !== undefined && version !== undefined ? { model: { name, version, replica } } : {}),
    };
  });
}

/** Where a Deployment stops in STOP_ORDER (anything unlabelled goes with the models, first). */
export function stopRoleOf(d: V1Deployment): StopRole {
  const role = d.metadata?.labels?.[LABEL.role];
  if (role === "autoscaler") return "autoscaler";
  return role === "management" ? "management" : role === "query_frontend" ? "frontend" : "model";
}

export function rolledOut(d: V1Deployment): boolean {
  const want = d.spec?.replicas ?? 1;
  const s = d.status ?? {};
  return (s.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0)
    && (s.updatedReplicas ?? 0) >= want && (s.readyReplicas ?? 0) >= want && (s.availableReplicas ?? 0) >= want;
}

export function podReady(p: V1Pod): boolean {
  return p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

export function podState(p: V1Pod): "running" | "restarting" | "exited" {
  if (podReady(p) || p.status?.phase === "Running") return "running";
  if (p.status?.phase === "Succeeded" || p.status?.phase === "Failed") return "exited";
  return "restarting";
}

export function describePod(p: V1Pod): string {
  const why = (p.status?.containerStatuses ?? []).map((c) => {
    const waiting = c.state?.waiting;
    const terminated = c.state?.terminated;
    if (waiting) return `${c.name} waiting: ${waiting.reason ?? "unknown"}${waiting.message ? ` (${waiting.message})` : ""}`;
    if (terminated) return `${c.name} terminated: ${terminated.reason ?? `exit ${terminated.exitCode}`}`;
    return `${c.name} not ready`;
  });
  return `pod ${p.metadata?.name} ${p.status?.phase ?? "Pending"}${why.length ? `: ${why.join(", ")}` : ""}`;
}

export function labelSelector(labels: Record<string, string>): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(",");
}
