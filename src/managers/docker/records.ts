/**
 * Deployment records: one created, never started container per model version
 * (`clipper-<c>-<m>-<v>-deployment`, role model_deployment) that holds what another process needs
 * to run the version again: the deployment (image, env, GPUs, input type) as JSON in
 * `ai.clipper.deployment`, and the desired replica count in `ai.clipper.deployment.replicas`.
 * It lives as long as the deployment: stopModels and stopAllModelContainers remove the replicas
 * and record a count of 0 (setNumReplicas brings the version back), `stopAll({keepState: true})`
 * removes the replicas and keeps the record as it is (start brings the recorded replicas back,
 * with the new cluster's RPC credential), and only deleteModels and `stopAll({keepState: false})`
 * remove it. Labels cannot change, so a new count is a new record: created under a temporary name
 * with the next `ai.clipper.deployment.generation`, then the old one is removed and the new one
 * renamed. A process killed in between leaves two records, or one under the temporary name;
 * readers take the highest generation, and the next write removes the others.
 */
import type { ContainerSummary } from "./engine.js";
import { LABEL, readStoredDeployment, RECORD_LABEL, recordNumber, type Role, type StoredDeployment } from "./labels.js";

/** A version's containers: its newest record (if any), stale records, replicas. */
export interface VersionContainers {
  stored?: StoredDeployment;
  record?: ContainerSummary;
  staleRecords: ContainerSummary[];
  replicas: ContainerSummary[];
}

export function records(v: VersionContainers): ContainerSummary[] {
  return [...(v.record ? [v.record] : []), ...v.staleRecords];
}

export function modelNames(all: ContainerSummary[]): string[] {
  return [...new Set(all.map((c) => c.labels[LABEL.modelName]).filter((n): n is string => n !== undefined))];
}

/** Model containers grouped by version: the newest record (highest generation), older ones, replicas. */
export function versionsOf(containers: ContainerSummary[]): VersionContainers[] {
  const byVersion = new Map<string, ContainerSummary[]>();
  for (const c of containers) {
    const role = roleOf(c);
    if (role !== "model" && role !== "model_deployment") continue;
    const key = JSON.stringify([c.labels[LABEL.modelName], c.labels[LABEL.modelVersion]]);
    byVersion.set(key, [...(byVersion.get(key) ?? []), c]);
  }
  return [...byVersion.values()].map((found) => {
    const [record, ...staleRecords] = found
      .filter((c) => roleOf(c) === "model_deployment")
      .sort((a, b) => recordNumber(b.labels, RECORD_LABEL.generation) - recordNumber(a.labels, RECORD_LABEL.generation));
    const replicas = found.filter((c) => roleOf(c) === "model");
    const stored = readStoredDeployment(record?.labels) ?? replicas.map((r) => readStoredDeployment(r.labels)).find(Boolean);
    return { ...(stored ? { stored } : {}), ...(record ? { record } : {}), staleRecords, replicas };
  });
}

/** A container's role label. */
export function roleOf(c: ContainerSummary): Role | undefined {
  return c.labels[LABEL.role] as Role | undefined;
}
