/**
 * What the Kubernetes manifests are called, and the API server's rules for names and label values,
 * checked here so that a bad cluster or model name is a one-line usage error before anything is
 * printed or applied, never a rejected object halfway through.
 */
import { ClipperError } from "../../errors.js";

/** An RFC 1123 label: Namespaces (63 at most). */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** An RFC 1035 label: Service names (63 at most, starts with a letter). */
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
/** An RFC 1123 subdomain: Deployments, Secrets, PersistentVolumeClaims (253 at most). */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A label value: empty, or 63 at most, alphanumeric at both ends, `-_.` inside. */
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function isLabelValue(value: string): boolean {
  return value.length <= 63 && LABEL_VALUE.test(value);
}

export function isDnsLabel(value: string): boolean {
  return value.length <= 63 && DNS_LABEL.test(value);
}

export function isServiceName(value: string): boolean {
  return value.length <= 63 && DNS_1035_LABEL.test(value);
}

export function isDnsSubdomain(value: string): boolean {
  return value.length <= 253 && DNS_SUBDOMAIN.test(value);
}

export type NameKind = "namespace" | "service" | "object" | "label value";

const CHECKS: Record<NameKind, { test: (v: string) => boolean; rule: string }> = {
  namespace: { test: isDnsLabel, rule: "lower-case letters, digits and '-', 63 characters at most" },
  service: { test: isServiceName, rule: "a lower-case letter first, then letters, digits and '-', 63 characters at most" },
  object: { test: isDnsSubdomain, rule: "lower-case letters, digits, '-' and '.', 253 characters at most" },
  "label value": { test: isLabelValue, rule: "letters, digits, '-', '_' and '.', alphanumeric at both ends, 63 characters at most" },
};

/** Throws a USAGE error naming what is wrong; returns the value otherwise. */
export function checkName(kind: NameKind, value: string, what: string): string {
  const check = CHECKS[kind];
  if (!check.test(value)) {
    throw new ClipperError("USAGE", `${what} '${value}' is not a valid Kubernetes ${kind} (${check.rule})`,
      "choose a shorter cluster or model name");
  }
  return value;
}

/** The names of what a cluster and its models are made of on Kubernetes. */
export const k8sNames = {
  management: (cluster: string) => `clipper-${cluster}-management`,
  state: (cluster: string) => `clipper-${cluster}-state`,
  token: (cluster: string) => `clipper-${cluster}-token`,
  /** The Secret holding the cluster's RPC key (mounted into the frontends only). */
  rpcKey: (cluster: string) => `clipper-${cluster}-rpc-key`,
  /** The NetworkPolicy that admits only this cluster's model pods to the frontends' RPC port. */
  rpcPolicy: (cluster: string) => `clipper-${cluster}-frontend-rpc`,
  frontend: (cluster: string) => `clipper-${cluster}-query-frontend`,
  /** The headless Service whose DNS name resolves to every frontend pod (model RPC). */
  frontendRpc: (cluster: string) => `clipper-${cluster}-frontend-rpc`,
  /** The autoscaler's Deployment, ServiceAccount, Role and RoleBinding. */
  autoscaler: (cluster: string) => `clipper-${cluster}-autoscaler`,
  model: (cluster: string, name: string, version: string) => `clipper-${cluster}-${name}-${version}`,
  /** The Secret holding one model version's RPC credential (CLIPPER_RPC_SECRET of its pods). */
  modelRpcSecret: (cluster: string, name: string, version: string) => `clipper-${cluster}-${name}-${version}-rpc`,
};
