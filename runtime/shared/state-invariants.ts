/**
 * The rules a cluster state keeps after every write, whatever the order or concurrency of the
 * admin requests that led to it. The management daemon checks them before it makes a state durable
 * (a write that would break one is refused, not saved) and when it loads one; tests check them
 * after storms of concurrent writes.
 */
import { hasOwn, own } from "./dict.js";
import type { ClusterState } from "./state.js";
import type { KeyedField, StateChange } from "./state-delta.js";

/** One broken rule: where in the state's JSON, and what is wrong there. */
export interface StateViolation {
  path: string[];
  problem: string;
}

type Add = (path: string[], problem: string) => void;

/** Every violation of the state's invariants; empty when the state is consistent. Visits the whole state: for loads and tests. */
export function stateViolations(state: ClusterState): StateViolation[] {
  const found: StateViolation[] = [];
  const add: Add = (path, problem) => found.push({ path, problem });
  for (const name of Object.keys(state.models)) checkModel(state, name, add);
  for (const name of Object.keys(state.applications)) checkApplication(state, name, add);
  for (const name of Object.keys(state.policy_state ?? {})) checkPolicyState(state, name, add);
  for (const name of Object.keys(state.autoscaling ?? {})) checkAutoscaling(state, name, add);
  for (const name of Object.keys(state.query_log ?? {})) checkQueryLog(state, name, add);
  for (const name of Object.keys(state.shadows ?? {})) checkShadow(state, name, add);
  for (const name of Object.keys(state.rollouts ?? {})) checkRollout(state, name, add);
  checkApiKeys(state, add);
  return found;
}

/**
 * The violations a change can have caused, in `state` as it is after the change: the entries it
 * set, and the entries whose rules read what it touched (a changed or removed model's linking
 * applications, autoscaling, shadow and rollout; a changed or removed application's policy state,
 * query log and API keys). `linking(model)` answers the applications that link a model (an index:
 * nothing here visits every application), so the cost follows the change, not the state.
 */
export function changeViolations(
  state: ClusterState,
  changes: readonly StateChange[],
  linking: (model: string) => Iterable<string>,
): StateViolation[] {
  const models = new Set<string>();
  const apps = new Set<string>();
  const others: Array<[KeyedField, string]> = [];
  let apiKeys = false;
  for (const change of changes) {
    if (change.field === "api_keys") apiKeys = true;
    else if (change.field === "models") models.add(change.key);
    else if (change.field === "applications") apps.add(change.key);
    else others.push([change.field, change.key]);
  }
  const found: StateViolation[] = [];
  const add: Add = (path, problem) => found.push({ path, problem });
  const checked = new Set<string>();
  const check = (field: KeyedField, name: string) => {
    const id = `${field}\u0000${name}`;
    if (checked.has(id)) return;
    checked.add(id);
    ENTRY_CHECKS[field](state, name, add);
  };
  for (const name of models) {
    check("models", name);
    for (const app of linking(name)) check("applications", app);
    for (const field of ["autoscaling", "shadows", "rollouts"] as const) check(field, name);
  }
  for (const name of apps) {
    check("applications", name);
    for (const field of ["policy_state", "query_log"] as const) check(field, name);
  }
  for (const [field, name] of others) check(field, name);
  if (apiKeys || apps.size > 0) checkApiKeys(state, add);
  return found;
}

function checkModel(state: ClusterState, name: string, add: Add): void {
  const model = own(state.models, name);
  if (!model) return;
  if (model.name !== name) add(["models", name, "name"], `is '${model.name}', not the record's key '${name}'`);
  const versions = Object.keys(model.versions);
  if (versions.length === 0) add(["models", name, "versions"], "a model record must have at least one version");
  for (const version of versions) {
    const record = model.versions[version]!;
    if (record.model_name !== name || record.model_version !== version) {
      add(["models", name, "versions", version],
        `names '${record.model_name}:${record.model_version}', not the record's key '${name}:${version}'`);
    }
  }
  if (model.current_version !== null && !hasOwn(model.versions, model.current_version)) {
    add(["models", name, "current_version"], `version '${model.current_version}' does not exist`);
  }
}

function checkApplication(state: ClusterState, name: string, add: Add): void {
  const app = own(state.applications, name);
  if (!app) return;
  if (app.name !== name) add(["applications", name, "name"], `is '${app.name}', not the record's key '${name}'`);
  app.linked_models.forEach((modelName, i) => {
    const where = ["applications", name, "linked_models", String(i)];
    if (app.linked_models.indexOf(modelName) !== i) add(where, `model '${modelName}' is linked twice`);
    const model = own(state.models, modelName);
    if (!model) {
      add(where, `links model '${modelName}', which does not exist`);
      return;
    }
    const current = model.current_version === null ? undefined : own(model.versions, model.current_version);
    if (current && current.input_type !== app.input_type) {
      add(where, `links model '${modelName}' whose current version '${current.model_version}' takes ` +
        `'${current.input_type}', not the application's '${app.input_type}'`);
    }
  });
}

function checkPolicyState(state: ClusterState, appName: string, add: Add): void {
  if (hasOwn(state.policy_state, appName) && !hasOwn(state.applications, appName)) {
    add(["policy_state", appName], `holds weights of application '${appName}', which does not exist`);
  }
}

function checkAutoscaling(state: ClusterState, modelName: string, add: Add): void {
  const versions = own(state.autoscaling, modelName);
  if (!versions) return;
  for (const [version, config] of Object.entries(versions)) {
    const where = ["autoscaling", modelName, version];
    if (!own(own(state.models, modelName)?.versions, version)) add(where, `configures version '${modelName}:${version}', which does not exist`);
    if (config.min_replicas > config.max_replicas) add(where, `min_replicas ${config.min_replicas} is above max_replicas ${config.max_replicas}`);
  }
  if (Object.keys(versions).length === 0) add(["autoscaling", modelName], "an autoscaling record must configure at least one version");
}

function checkQueryLog(state: ClusterState, appName: string, add: Add): void {
  if (hasOwn(state.query_log, appName) && !hasOwn(state.applications, appName)) {
    add(["query_log", appName], `logs application '${appName}', which does not exist`);
  }
}

function checkShadow(state: ClusterState, modelName: string, add: Add): void {
  const shadow = own(state.shadows, modelName);
  if (!shadow) return;
  const where = ["shadows", modelName];
  const model = own(state.models, modelName);
  if (!own(model?.versions, shadow.model_version)) add(where, `shadows version '${modelName}:${shadow.model_version}', which does not exist`);
  else if (model!.current_version === shadow.model_version) add(where, `shadows version '${shadow.model_version}', which is the current version`);
}

function checkRollout(state: ClusterState, modelName: string, add: Add): void {
  const rollout = own(state.rollouts, modelName);
  if (!rollout) return;
  const where = ["rollouts", modelName];
  if (rollout.step >= rollout.steps.length) add(where, `step ${rollout.step} is beyond its ${rollout.steps.length} steps`);
  if (rollout.phase !== "running") return;
  // A running rollout compares through its shadow: the driver ends it as soon as either goes.
  const versions = own(state.models, modelName)?.versions;
  if (!own(versions, rollout.to_version) || !own(versions, rollout.from_version)) add(where, `rolls out between versions that do not exist`);
}

function checkApiKeys(state: ClusterState, add: Add): void {
  (state.api_keys ?? []).forEach((key, i) => {
    if (key.app !== undefined && !hasOwn(state.applications, key.app)) {
      add(["api_keys", String(i)], `key '${key.id}' is limited to application '${key.app}', which does not exist`);
    }
  });
}

/** The rules of one entry of each keyed field, given its key; an absent entry breaks none. */
const ENTRY_CHECKS: Record<KeyedField, (state: ClusterState, name: string, add: Add) => void> = {
  models: checkModel,
  applications: checkApplication,
  policy_state: checkPolicyState,
  autoscaling: checkAutoscaling,
  query_log: checkQueryLog,
  shadows: checkShadow,
  rollouts: checkRollout,
};

/**
 * What earlier releases could leave in a state that today's invariants refuse, and the repair:
 * deleting a model's last version kept the applications' links to it. Repairing on load (and saying
 * so) lets an upgraded daemon start on the file its predecessor wrote, instead of refusing it.
 * Mutates `state`, which must be a fresh parse; returns one line per repair.
 */
export function repairLegacyState(state: ClusterState): string[] {
  const repairs: string[] = [];
  for (const [name, app] of Object.entries(state.applications)) {
    const kept = app.linked_models.filter((m) => hasOwn(state.models, m));
    if (kept.length === app.linked_models.length) continue;
    const dropped = [...new Set(app.linked_models.filter((m) => !hasOwn(state.models, m)))];
    repairs.push(`applications.${name}.linked_models: dropped the link to ${dropped.map((m) => `'${m}'`).join(", ")} (no such model)`);
    app.linked_models = kept;
  }
  return repairs;
}

/** A violation as one line: `models.m.current_version: version '3' does not exist`. */
export function describeViolation(violation: StateViolation): string {
  return `${violation.path.join(".")}: ${violation.problem}`;
}
