/** The state an admin write leads to, as the store commits it, for tests that run operations on a bare state. */
import type { WriteOutcome } from "../../runtime/management/operations.js";
import { applyStateDelta } from "../../runtime/shared/state-delta.js";
import { cloneState, type ClusterState } from "../../runtime/shared/state.js";

/**
 * The outcome's changes applied to a copy of `state` (or its whole next state, for the writes that
 * answer one); undefined when the write changes nothing. The revision stays `state`'s.
 */
export function stateAfter(state: ClusterState, outcome: Pick<WriteOutcome, "changes" | "next">): ClusterState | undefined {
  if (outcome.next) return outcome.next;
  if (!outcome.changes || outcome.changes.length === 0) return undefined;
  const next = cloneState(state);
  applyStateDelta(next, { base: state.revision, revision: state.revision + 1, changes: outcome.changes });
  next.revision = state.revision;
  return next;
}
