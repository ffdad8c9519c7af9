/**
 * An autoscaler event's change in a few words ("scale up 1→3", "manual →2", "config min 1 max 4",
 * "off", "first replica"), as `clipper events` and the dashboard show it. Free of zod so the dashboard's bundle
 * stays small.
 */
import type { AutoscaleEvent } from "./autoscaling.js";

export function describeChange(e: Pick<AutoscaleEvent, "kind" | "from" | "to">): string {
  if (e.kind === "config") return `config min ${e.from} max ${e.to}`;
  if (e.kind === "off") return "off";
  if (e.kind === "first_replica") return "first replica";
  if (e.kind === "rollout_start") return `rollout start ${e.to}%`;
  if (e.kind === "rollout_step") return `rollout ${e.from}%→${e.to}%`;
  if (e.kind === "rollout_promoted") return "rollout promoted";
  if (e.kind === "rollout_rolled_back") return `rollout rolled back at ${e.from}%`;
  // A manual request has no `from` until the manager applied it.
  return `${e.kind.replace("_", " ")} ${e.from ?? ""}→${e.to}`;
}
