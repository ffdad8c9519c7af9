/** Edits of the state's rollouts section that the rollout driver and more than one admin operation make. */
import type { AutoscaleEventInput } from "../shared/autoscaling.js";
import { own } from "../shared/dict.js";
import type { RolloutPhase } from "../shared/rollout.js";
import type { ClusterState } from "../shared/state.js";
import { endShadowOf } from "./shadow-state.js";

/**
 * Ends `modelName`'s running rollout in `state` (a mutable copy): `promoted` makes its new version
 * current, `rolled_back` leaves the old one current; either way its shadow ends (the comparison
 * belonged to the rollout), and the record stays with the phase and reason for `rollout status`.
 * Returns the event to record, or undefined when no rollout was running.
 */
export function endRollout(state: ClusterState, modelName: string, phase: Exclude<RolloutPhase, "running">, reason: string): AutoscaleEventInput | undefined {
  const rollout = own(state.rollouts, modelName);
  if (!rollout || rollout.phase !== "running") return undefined;
  const percent = rollout.steps[rollout.step]!;
  const model = own(state.models, modelName);
  if (phase === "promoted" && model && own(model.versions, rollout.to_version)) model.current_version = rollout.to_version;
  endShadowOf(state, modelName, rollout.to_version);
  state.rollouts![modelName] = { ...rollout, phase, reason };
  return {
    kind: phase === "promoted" ? "rollout_promoted" : "rollout_rolled_back",
    model_name: modelName, model_version: rollout.to_version, from: percent, to: phase === "promoted" ? 100 : 0, reason,
  };
}

/**
 * What a change of `modelName`'s versions outside the rollout does to it (state: the mutable copy
 * after the change): a rollout whose versions went away, or whose old version is no longer the
 * current one, is over: promoted when its new version was made current by hand, else rolled back.
 */
export function settleRolloutAfter(state: ClusterState, modelName: string, what: string): AutoscaleEventInput | undefined {
  const rollout = own(state.rollouts, modelName);
  if (!rollout || rollout.phase !== "running") return undefined;
  const model = own(state.models, modelName);
  const current = model?.current_version ?? null;
  if (current === rollout.to_version) return endRollout(state, modelName, "promoted", `${what} made version '${rollout.to_version}' current`);
  const gone = !own(model?.versions, rollout.to_version) || !own(model?.versions, rollout.from_version);
  if (gone || current !== rollout.from_version) return endRollout(state, modelName, "rolled_back", `${what} changed the versions it rolls out between`);
  return undefined;
}
