/**
 * The one grammar of `clipper logs COMPONENT`, on every manager:
 *   (nothing)                 every component
 *   an exact component name   as `clipper status` and `clipper logs` list them (a pod name on Kubernetes)
 *   management | frontend     the role (also query_frontend, query-frontend)
 *   autoscaler                the autoscaler host (Docker and Kubernetes)
 *   <model>                   every replica of every version of the model
 *   <model>-<version>         every replica of that version
 *   <model>-<version>-<n>     one replica, numbered as `clipper status` numbers them
 * Anything else is NOT_FOUND, naming the components that exist.
 */
import { ManagerError } from "../errors.js";

export type LogRole = "management" | "frontend" | "autoscaler" | "model" | "other";

export interface LogCandidate {
  component: string;
  role: LogRole;
  /** For a replica: whose it is (absent for a log left by a deployment no longer known). */
  model?: { name: string; version: string; replica: number };
}

const ROLE_ALIASES: Record<string, LogRole> = {
  management: "management",
  frontend: "frontend",
  query_frontend: "frontend",
  "query-frontend": "frontend",
  autoscaler: "autoscaler",
};

export function selectLogs<T extends LogCandidate>(candidates: readonly T[], query: string | undefined): T[] {
  const sorted = [...candidates].sort((a, b) => a.component.localeCompare(b.component, undefined, { numeric: true }));
  if (query === undefined || query === "") return sorted;
  const exact = sorted.filter((c) => c.component === query);
  if (exact.length) return exact;
  const role = Object.prototype.hasOwnProperty.call(ROLE_ALIASES, query) ? ROLE_ALIASES[query] : undefined;
  const chosen = sorted.filter((c) => (role !== undefined && c.role === role) || replicaMatches(c, query));
  if (chosen.length === 0) {
    throw new ManagerError(`no logs for component ${query} (known: ${sorted.map((c) => c.component).join(", ") || "none"})`, "NOT_FOUND");
  }
  return chosen;
}

function replicaMatches(c: LogCandidate, query: string): boolean {
  if (c.role !== "model") return false;
  if (c.model) {
    const { name, version, replica } = c.model;
    return query === name || query === `${name}-${version}` || query === `${name}-${version}-${replica}`;
  }
  // A replica log whose deployment is gone: `<query>-<...>-<n>` by prefix and trailing number.
  return c.component.startsWith(`${query}-`) && /-\d+$/.test(c.component);
}
