/**
 * The admin API of selection policies (our extension of Clipper's): set an application's policy,
 * and keep the learned bandit weights that query frontends report durable, so that they survive a
 * restart of the daemon or of a frontend (they come back in the watch stream's snapshots).
 * Pure functions over the state, like operations.ts.
 */
import { z } from "zod";
import { cloneData, type Dict, dict, dictSchema, hasOwn, own } from "../shared/dict.js";
import type { StateChange } from "../shared/state-delta.js";
import {
  APP_WIDE_STATE,
  GET_POLICY_STATE_PATH,
  MAX_POLICY_UIDS_PER_APP,
  SET_APP_POLICY_PATH,
  UPDATE_POLICY_STATE_PATH,
} from "../shared/state.js";
import { badRequest } from "./errors.js";
import { parseBody, type ReadOperation, spec, type WriteOperation } from "./operations.js";
import { linkLimitFor, parsePolicyConfig, policyLearns, policyNameOf } from "./policy-config.js";

const uidSchema = z.union([z.string().min(1), z.number()]);
const weightsSchema = dictSchema(z.number().min(0));
const stateEntry = z.object({
  app_name: z.string(),
  uid: uidSchema.optional(),
  /** The policy the weights were learned under: skipped when the application's changed since. */
  policy: z.string().optional(),
  weights: weightsSchema,
});

const BODIES = {
  setPolicy: spec(
    z.object({ name: z.string(), policy: z.unknown() }),
    `{"name" := string, "policy" := {"name" := "default" | "ensemble" | "exp3" | "exp4" | "canary" | "cascade", ...parameters}}`,
  ),
  updateState: spec(
    z.object({
      app_name: z.string().optional(),
      uid: uidSchema.optional(),
      policy: z.string().optional(),
      weights: weightsSchema.optional(),
      updates: z.array(stateEntry).optional(),
    }),
    `{"app_name" := string, "uid" := string | int (optional), "policy" := string (optional), "weights" := {model := number ≥ 0}} ` +
      `or {"updates" := [those objects]}`,
  ),
  getState: spec(
    z.object({ app_name: z.string(), uid: uidSchema.optional() }),
    `{"app_name" := string, "uid" := string | int (optional)}`,
  ),
};

export const setAppPolicy: WriteOperation = (state, body) => {
  const b = parseBody(body, BODIES.setPolicy);
  const app = own(state.applications, b.name);
  if (!app) throw badRequest(`Application '${b.name}' does not exist`);
  if (b.policy === undefined) throw badRequest(`Error parsing JSON: JSON object does not have required key: policy. Expected JSON schema: ${BODIES.setPolicy.text}`);
  const policy = parsePolicyConfig(b.policy);
  const text = `Successfully set policy of application '${app.name}' to '${policy.name}'`;
  if (app.linked_models.length > linkLimitFor(policy)) {
    throw badRequest(
      `Application '${app.name}' has ${app.linked_models.length} linked models; the '${policy.name}' selection ` +
        `policy serves one model. Unlink all but one first`,
    );
  }
  const stored = policy.name === "default" ? undefined : policy;
  if (JSON.stringify(stored) === JSON.stringify(app.policy)) return { text };
  const { policy: _old, ...rest } = app;
  const changes: StateChange[] = [{ field: "applications", key: app.name, value: stored ? { ...rest, policy: stored } : rest }];
  // Weights learned under another policy mean something else: start afresh.
  if (policyNameOf(app) !== policy.name && hasOwn(state.policy_state, app.name)) changes.push({ field: "policy_state", key: app.name });
  return { changes, text };
};

/**
 * Records weights a query frontend learned. One object, or `{"updates": [...]}` for a batch; in a
 * batch, entries for applications that no longer exist or no longer learn are skipped (the
 * frontend may report after a deletion), where a single update answers 400.
 */
export const updatePolicyState: WriteOperation = (state, body) => {
  const b = parseBody(body, BODIES.updateState);
  let entries: z.infer<typeof stateEntry>[];
  const single = b.updates === undefined;
  if (single) {
    if (b.app_name === undefined || b.weights === undefined) {
      throw badRequest(
        `Error parsing JSON: JSON object does not have required key: ${b.app_name === undefined ? "app_name" : "weights"}. ` +
          `Expected JSON schema: ${BODIES.updateState.text}`,
      );
    }
    entries = [{ app_name: b.app_name, uid: b.uid, policy: b.policy, weights: b.weights }];
  } else {
    entries = b.updates!;
  }
  /** The new policy state of each application written to: a copy of its uids' weights (bounded), not of the state. */
  const written = new Map<string, Dict<Dict<number>>>();
  let applied = 0;
  let skipped = 0;
  for (const entry of entries) {
    const app = own(state.applications, entry.app_name);
    if (!app || !policyLearns(app.policy) || (entry.policy !== undefined && entry.policy !== policyNameOf(app))) {
      if (single) {
        throw badRequest(!app
          ? `No application with name '${entry.app_name}' exists.`
          : !policyLearns(app.policy)
            ? `Application '${app.name}' uses the '${policyNameOf(app)}' selection policy, which learns no weights`
            : `Application '${app.name}' now uses the '${policyNameOf(app)}' selection policy, not '${entry.policy}'`);
      }
      skipped++;
      continue;
    }
    const key = entry.uid === undefined ? APP_WIDE_STATE : String(entry.uid);
    const current = own(written.get(app.name) ?? own(state.policy_state, app.name), key);
    if (current && sameWeights(current, entry.weights)) {
      applied++;
      continue;
    }
    let appState = written.get(app.name);
    if (!appState) written.set(app.name, (appState = dict(own(state.policy_state, app.name) ?? {})));
    if (!hasOwn(appState, key)) {
      const uids = Object.keys(appState).filter((k) => k !== APP_WIDE_STATE);
      if (key !== APP_WIDE_STATE && uids.length >= MAX_POLICY_UIDS_PER_APP) delete appState[uids[0]!];
    }
    appState[key] = dict(entry.weights);
    applied++;
  }
  const text = single
    ? `Successfully updated the policy state of application '${entries[0]!.app_name}'`
    : `Successfully updated ${applied} policy states` + (skipped > 0 ? `; skipped ${skipped} of applications that do not exist or do not learn` : "");
  const changes = [...written].map(([appName, value]): StateChange => ({ field: "policy_state", key: appName, value }));
  return { ...(changes.length > 0 ? { changes } : {}), text };
};

function sameWeights(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => own(b, k) === a[k]);
}

/** The learned weights of an application: every uid's, or one uid's. */
export const getPolicyState: ReadOperation = ({ state }, body) => {
  const b = parseBody(body, BODIES.getState);
  const app = own(state.applications, b.app_name);
  if (!app) throw badRequest(`No application with name '${b.app_name}' exists.`);
  const all = own(state.policy_state, app.name) ?? dict();
  const uidWeights = b.uid === undefined ? undefined : own(all, String(b.uid));
  const weights = b.uid === undefined
    ? cloneData(all)
    : dict(uidWeights ? [[String(b.uid), cloneData(uidWeights)]] : []);
  return { kind: "json", value: { app_name: app.name, policy: policyNameOf(app), weights } };
};

export const POLICY_WRITE_OPERATIONS: Readonly<Record<string, WriteOperation>> = {
  [SET_APP_POLICY_PATH]: setAppPolicy,
  [UPDATE_POLICY_STATE_PATH]: updatePolicyState,
};

export const POLICY_READ_OPERATIONS: Readonly<Record<string, ReadOperation>> = {
  [GET_POLICY_STATE_PATH]: getPolicyState,
};
