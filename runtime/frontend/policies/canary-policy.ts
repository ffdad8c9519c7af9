/**
 * Canary: a weighted split of traffic between versions of the one linked model, so a new version
 * can take, say, 5% of queries before it is promoted (`set-version`) or rolled back. A query with a
 * uid always lands on the same version while the weights stay the same (the uid hashes to a point
 * in [0, 1) laid over the versions' shares, in version order, so growing the last version's share
 * keeps its users on it). Versions that do not exist or have no connected replica count as weight 0
 * and are reported in `missing_versions`; when no listed version is usable, the model's current
 * version answers. A pinned `version` in the query wins over the split.
 */
import { hasOwn, own } from "../../shared/dict.js";
import type { AppRecord } from "../../shared/state.js";
import { NO_CONNECTED_MODELS, outcomeToAnswer } from "./answers.js";
import { configOf, resolveTargets, userOf } from "./common.js";
import { hashUnit } from "./random.js";
import type { PolicyAnswer, PolicyMetrics, PolicyQuery, SelectionPolicy } from "./policy.js";

export interface CanaryDeps {
  random: () => number;
  metrics?: PolicyMetrics;
  clock?: () => number;
}

/** Version order: "2" before "10". */
function byVersion(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

/** Picks a version by cumulative share for a point u in [0, 1); undefined when every share is 0. */
export function pickVersion(shares: ReadonlyArray<readonly [string, number]>, u: number): string | undefined {
  const total = shares.reduce((sum, [, w]) => sum + w, 0);
  if (!(total > 0)) return undefined;
  let cumulative = 0;
  let last: string | undefined;
  for (const [version, weight] of shares) {
    if (weight <= 0) continue;
    cumulative += weight / total;
    last = version;
    if (u < cumulative) return version;
  }
  return last;
}

/** The point in [0, 1) of a uid for an application (sticky across queries and frontends). */
export function uidPoint(app: AppRecord, uid: string): number {
  return hashUnit(`${app.name}\u0000${uid}`);
}

export class CanaryPolicy implements SelectionPolicy {
  readonly name = "canary";
  private readonly clock: () => number;

  constructor(private readonly deps: CanaryDeps) {
    this.clock = deps.clock ?? (() => performance.now());
  }

  async predict(query: PolicyQuery): Promise<PolicyAnswer> {
    const modelName = query.app.linked_models[0];
    const model = modelName === undefined ? undefined : own(query.models, modelName);
    if (modelName === undefined || !model) {
      if (query.pinnedVersion !== undefined) resolveTargets(query, [modelName ?? ""]);
      return { kind: "default", reason: "no_connected_models", explanation: NO_CONNECTED_MODELS };
    }
    const missing: string[] = [];
    let version: string | null | undefined;
    if (query.pinnedVersion !== undefined) {
      version = resolveTargets(query, [modelName]).targets[0]!.version;
    } else {
      const weights = Object.entries(configOf(query, "canary")?.weights ?? {});
      const shares = weights.sort(([a], [b]) => byVersion(a, b)).map(([v, weight]): [string, number] => {
        const usable = hasOwn(model.versions, v) && query.caller.available({ name: modelName, version: v });
        if (!usable && weight > 0) missing.push(v);
        return [v, usable ? weight : 0];
      });
      const user = userOf(query.uid);
      const u = user !== undefined ? uidPoint(query.app, user) : this.deps.random();
      version = pickVersion(shares, u) ?? model.current_version;
    }
    const extra = missing.length > 0 ? { missing_versions: missing } : {};
    if (version === null || version === undefined) {
      return { kind: "default", reason: "no_connected_models", explanation: NO_CONNECTED_MODELS, extra };
    }
    const started = this.clock();
    const outcome = await query.caller.call({ name: modelName, version }, query.inputType, query.input, query.deadline);
    const answer = outcomeToAnswer(outcome, { name: modelName, version });
    this.deps.metrics?.policyChoice(query.app.name, this.name, modelName);
    this.deps.metrics?.canaryQuery(query.app.name, modelName, version, answer.kind, (this.clock() - started) / 1000);
    return { ...answer, extra: { ...answer.extra, version, ...extra } };
  }

  async feedback(): Promise<void> {}
}
