/**
 * How `clipper stop --keep-state` keeps model versions on Kubernetes. A kept cluster keeps its
 * state claim, its Secrets (the token, the RPC key, each version's credential derived from that key)
 * and its model Deployments, each scaled to 0 with the replica count it had recorded in an
 * annotation; only what runs or routes (the management and frontend Deployments, the Services,
 * the NetworkPolicy) is deleted. `start` scales each kept Deployment back to its count once the
 * frontends are up and drops the annotation; the kept RPC key keeps the version credentials valid,
 * and CLIPPER_PORT is set to the new start's frontend worker ports (withRpcPorts).
 */
import type { V1Deployment } from "@kubernetes/client-node";
import { MAX_REPLICAS } from "../common/index.js";
import { ManagerError } from "../errors.js";

export const KEPT_REPLICAS_ANNOTATION = "ai.clipper.kept_replicas";

/** The count a kept Deployment records; undefined when it is not kept. A count no one could have written is refused. */
export function keptReplicas(d: V1Deployment): number | undefined {
  const recorded = d.metadata?.annotations?.[KEPT_REPLICAS_ANNOTATION];
  if (recorded === undefined) return undefined;
  const count = /^\d{1,3}$/.test(recorded) ? Number(recorded) : NaN;
  if (!(count <= MAX_REPLICAS)) {
    throw new ManagerError(`the Deployment ${d.metadata?.name} records ${JSON.stringify(recorded)} kept replicas (annotation ${KEPT_REPLICAS_ANNOTATION}), ` +
      `which is no count from 0 to ${MAX_REPLICAS}; correct or remove the annotation with kubectl annotate`, "INVALID_ARGUMENT");
  }
  return count;
}

/** Whether a `stop --keep-state` kept this Deployment (whatever its record says). */
export function isKept(d: V1Deployment): boolean {
  return d.metadata?.annotations?.[KEPT_REPLICAS_ANNOTATION] !== undefined;
}

/** The Deployment scaled to 0, its count recorded (a Deployment kept already keeps the record it has). */
export function kept(d: V1Deployment): V1Deployment {
  const record: Record<string, string> = isKept(d) ? {} : { [KEPT_REPLICAS_ANNOTATION]: String(d.spec?.replicas ?? 1) };
  return { ...d, metadata: { ...d.metadata, annotations: { ...d.metadata?.annotations, ...record } }, spec: { ...d.spec!, replicas: 0 } };
}

/** The Deployment back at its recorded count (or at a count someone set since the stop), the record gone. */
export function restored(d: V1Deployment): V1Deployment {
  const count = (d.spec?.replicas ?? 0) > 0 ? d.spec!.replicas! : keptReplicas(d) ?? 0;
  const { [KEPT_REPLICAS_ANNOTATION]: _kept, ...annotations } = d.metadata?.annotations ?? {};
  return { ...d, metadata: { ...d.metadata, annotations }, spec: { ...d.spec!, replicas: count } };
}

/** The Deployment with its containers' CLIPPER_PORT set to `rpcPorts` (every frontend worker's RPC port); nothing else changes. */
export function withRpcPorts(d: V1Deployment, rpcPorts: readonly number[]): V1Deployment {
  const template = d.spec?.template;
  const containers = template?.spec?.containers;
  if (!template || !containers) return d;
  const value = rpcPorts.join(",");
  return {
    ...d,
    spec: {
      ...d.spec!,
      template: {
        ...template,
        spec: {
          ...template.spec!,
          containers: containers.map((c) => ({
            ...c, env: c.env?.map((e) => (e.name === "CLIPPER_PORT" && e.valueFrom === undefined ? { name: e.name, value } : e)),
          })),
        },
      },
    },
  };
}
