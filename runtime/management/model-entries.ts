/**
 * Runs an edit written for a mutable copy of the whole state (the helpers of shadow-state.ts,
 * rollout-state.ts and autoscale-state.ts) on a copy that holds only one model's entries of the
 * model-keyed fields, and answers what it changed as entry changes. So an operation on one model
 * costs that model's records, not a copy of every application.
 */
import { cloneData, dict, own } from "../shared/dict.js";
import { diffStates, type StateChange } from "../shared/state-delta.js";
import type { ClusterState } from "../shared/state.js";

/** The fields keyed by model name. */
const MODEL_FIELDS = ["models", "autoscaling", "shadows", "rollouts"] as const;

/**
 * `edit` gets a state whose model-keyed fields hold only `modelName`'s entries (copies, free to
 * change) and no applications: it must touch nothing else.
 */
export function editModelEntries<R>(state: ClusterState, modelName: string, edit: (scoped: ClusterState) => R): { changes: StateChange[]; result: R } {
  const view = (copy: boolean): ClusterState => {
    const scoped: ClusterState = { revision: state.revision, applications: dict(), models: dict() };
    const fields = scoped as unknown as Record<string, Record<string, unknown>>;
    for (const field of MODEL_FIELDS) {
      const entry = own(state[field] as Record<string, unknown> | undefined, modelName);
      if (entry !== undefined) fields[field] = dict([[modelName, copy ? cloneData(entry) : entry]]);
    }
    return scoped;
  };
  const before = view(false);
  const after = view(true);
  const result = edit(after);
  return { changes: diffStates(before, after), result };
}
