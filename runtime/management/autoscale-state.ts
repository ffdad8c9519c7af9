/** Edits of the state's autoscaling section that more than one admin operation makes. */
import { own } from "../shared/dict.js";
import type { ClusterState } from "../shared/state.js";

/**
 * Removes a version's autoscaling from `state` (a mutable copy), and the emptied records above it,
 * so the section never holds an empty model record (state-invariants.ts). Returns whether it had one.
 */
export function removeAutoscaling(state: ClusterState, modelName: string, version: string): boolean {
  const versions = own(state.autoscaling, modelName);
  if (!versions || !own(versions, version)) return false;
  delete versions[version];
  if (Object.keys(versions).length === 0) delete state.autoscaling![modelName];
  if (Object.keys(state.autoscaling!).length === 0) delete state.autoscaling;
  return true;
}
