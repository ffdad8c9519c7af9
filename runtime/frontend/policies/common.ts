/** What several policies share: which model versions to ask, and the answer when none answered. */
import { hasOwn, own } from "../../shared/dict.js";
import { rolloutPercent } from "../../shared/rollout.js";
import type { ModelRecord } from "../../shared/state.js";
import type { PolicyConfig } from "../../shared/state.js";
import type { CallOutcome, ModelRef } from "../model-caller.js";
import { QueryError } from "../query-errors.js";
import { NO_CONNECTED_MODELS, outcomeToAnswer } from "./answers.js";
import type { PolicyAnswer, PolicyQuery } from "./policy.js";

export type PolicyOf<N extends PolicyConfig["name"]> = Extract<PolicyConfig, { name: N }>;

/** The application's policy configuration, when it is the expected one (else undefined: defaults apply). */
export function configOf<N extends PolicyConfig["name"]>(query: { app: { policy?: PolicyConfig } }, name: N): PolicyOf<N> | undefined {
  const policy = query.app.policy;
  return policy?.name === name ? (policy as PolicyOf<N>) : undefined;
}

/**
 * The version to ask of each named model: the pinned one (which must exist, with Clipper's error
 * otherwise) or the current one. Models with neither are `missing`.
 */
export function resolveTargets(
  query: Pick<PolicyQuery, "models" | "pinnedVersion" | "rollouts" | "rolloutPoint">, names: readonly string[],
): { targets: ModelRef[]; missing: string[] } {
  const targets: ModelRef[] = [];
  const missing: string[] = [];
  for (const name of names) {
    const model = own(query.models, name);
    let version = model ? liveVersionOf(query, model) ?? undefined : undefined;
    if (query.pinnedVersion !== undefined) {
      if (!model || !hasOwn(model.versions, query.pinnedVersion)) {
        throw new QueryError(400, "Query processing error", `Requested version: ${query.pinnedVersion} does not exist for model: ${name}`);
      }
      version = query.pinnedVersion;
    }
    if (!model || version === undefined) missing.push(name);
    else targets.push({ name, version });
  }
  return { targets, missing };
}

/**
 * The version that answers a query for `model` that pins none: its current version, or the new
 * version of its running gated rollout for the query's share of the split (the rollout's step, in
 * percent). A uid keeps its side while the share stays or grows, as a canary's does.
 */
export function liveVersionOf(query: Pick<PolicyQuery, "rollouts" | "rolloutPoint">, model: ModelRecord): string | null {
  const rollout = own(query.rollouts, model.name);
  const percent = rolloutPercent(rollout, model.current_version);
  if (percent > 0 && hasOwn(model.versions, rollout!.to_version) && (query.rolloutPoint?.() ?? 1) * 100 < percent) return rollout!.to_version;
  return model.current_version;
}

/**
 * The default answer when no model produced an output: the SLO explanation if one timed out, else a
 * model's failure, else whatever else happened, else "no connected models".
 */
export function noOutputAnswer(outcomes: readonly CallOutcome[], extra: Record<string, unknown>): PolicyAnswer {
  const chosen =
    outcomes.find((o) => o.kind === "timeout") ??
    outcomes.find((o) => o.kind === "failed") ??
    outcomes.find((o) => o.kind !== "unavailable" && o.kind !== "output");
  const answer: PolicyAnswer = chosen
    ? outcomeToAnswer(chosen)
    : { kind: "default", reason: "no_connected_models", explanation: NO_CONNECTED_MODELS };
  return { ...answer, extra: { ...answer.extra, ...extra } };
}

/** Orders names as the application lists its links (stable, human output). */
export function inLinkOrder(names: Iterable<string>, linked: readonly string[]): string[] {
  const set = new Set(names);
  return [...linked.filter((n) => set.has(n)), ...[...set].filter((n) => !linked.includes(n))];
}

/**
 * The user a query or feedback is about, for per-user state: its uid, except that uid 0 (Clipper's
 * default user, which its `/update` requires when there is no particular user) and no uid mean the
 * application as a whole.
 */
export function userOf(uid: string | undefined): string | undefined {
  return uid === undefined || uid === "0" ? undefined : uid;
}
