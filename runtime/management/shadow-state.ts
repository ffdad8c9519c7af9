/** Edits of the state's shadows section that more than one admin operation makes. */
import { own } from "../shared/dict.js";
import type { ClusterState } from "../shared/state.js";

/**
 * Ends a model's shadow in `state` (a mutable copy) when it shadows `version`: the version is being
 * deleted, or made current (a shadow of the current version would compare it with itself). Drops
 * the emptied section, so the state never holds an empty one. Returns whether it ended one.
 */
export function endShadowOf(state: ClusterState, modelName: string, version: string): boolean {
  if (own(state.shadows, modelName)?.model_version !== version) return false;
  delete state.shadows![modelName];
  if (Object.keys(state.shadows!).length === 0) delete state.shadows;
  return true;
}
