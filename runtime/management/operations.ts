/**
 * Clipper's admin operations as pure functions: parse and validate a request body, compute the
 * answer (and, for writes, the entries they change) from the current state, or throw an AdminError
 * with the text Clipper answered. Nothing here touches the network, the disk or the clock, and no
 * write walks every application: the store's link index answers who links a model.
 *
 * Message texts are Clipper's where it had one (see shared/design/clipper-transcript.md); where
 * Clipper answered nothing or crashed, the text is ours and says what is wrong.
 */
import { z } from "zod";
import { cloneData, dict, hasOwn, own } from "../shared/dict.js";
import { canonicalInputType, INPUT_TYPES, type InputType } from "../shared/input-types.js";
import { INVALID_NAME_REFUSAL, REFUSAL_HEADER, nameProblem, prohibitedCharsProblem } from "../shared/names.js";
import {
  type AppRecord,
  type ClusterState,
  type ModelVersionRecord,
  type ReplicaRecord,
  type ReplicaReport,
  ReplicaReportSchema,
} from "../shared/state.js";
import type { AutoscaleEventInput } from "../shared/autoscaling.js";
import type { RolloutProgress } from "../shared/rollout.js";
import type { ShadowConfig, ShadowFigures } from "../shared/shadow.js";
import { removeAutoscaling } from "./autoscale-state.js";
import { settleRolloutAfter } from "./rollout-state.js";
import { endShadowOf } from "./shadow-state.js";
import { editModelEntries } from "./model-entries.js";
import { AdminError, badRequest } from "./errors.js";
import type { LinkIndex } from "../shared/link-index.js";
import type { StateChange } from "../shared/state-delta.js";
import { linkLimitFor, parsePolicyConfig, policyNameOf } from "./policy-config.js";

/** A 200 answer: plain text, or a JSON value. */
export type Reply = { kind: "text"; text: string } | { kind: "json"; value: unknown };

/**
 * A write's outcome: what it changes (absent when nothing changes) and the success text. Frequent
 * writes answer `changes`, which cost what they touch; rare ones may answer the whole `next` state,
 * which the store diffs (O(size)).
 */
export interface WriteOutcome {
  changes?: StateChange[];
  next?: ClusterState;
  text: string;
  /** What the daemon's autoscaler event log records once the change is durable (autoscaling changes). */
  event?: AutoscaleEventInput;
}

/**
 * `replicas`: those the frontends report now, for a write that needs a version to be served
 * (set_shadow; absent: none). `links`: the store's index of which applications link a model
 * (absent: the operation walks the applications, as tests that hold a bare state do).
 */
export type WriteOperation = (state: ClusterState, body: string, replicas?: readonly ReplicaRecord[], links?: LinkIndex) => WriteOutcome;

export interface ReadView {
  state: ClusterState;
  /** Replicas currently reported by the query frontends. */
  replicas: readonly ReplicaRecord[];
  /** The figures of a model's shadow setting, summed over the frontends (shadow-stats-store.ts). */
  shadowFigures?: (modelName: string, shadow: ShadowConfig) => ShadowFigures;
  /** How far a model's running rollout step has got (rollout-driver.ts). */
  rolloutProgress?: (modelName: string) => RolloutProgress | null;
}

export type ReadOperation = (view: ReadView, body: string) => Reply;

/** Clipper's get_int is a C++ int: we bound integers the same way, which also keeps SLOs within setTimeout's range. */
const INT32_MAX = 2_147_483_647;
/** Clipper's DEFAULT_BATCH_SIZE: let the frontend choose the batch size. */
export const DEFAULT_BATCH_SIZE = -1;

// ---------------------------------------------------------------------------------------------
// Body parsing

/** A request body's schema with the text Clipper shows after "Expected JSON schema:". */
export interface BodySpec<T extends z.ZodType> {
  schema: T;
  text: string;
}

export function spec<T extends z.ZodType>(schema: T, text: string): BodySpec<T> {
  return { schema, text };
}

const INPUT_TYPE_TEXT = INPUT_TYPES.map((t) => `"${t}"`).join(" | ");

const BODIES = {
  addApp: spec(
    z.object({
      name: z.string(),
      input_type: z.string(),
      default_output: z.string(),
      latency_slo_micros: z.number(),
      // Ours: the selection policy (docs/policies.md), validated by parsePolicyConfig.
      policy: z.unknown().optional(),
      // Ours: answer 503 + Retry-After to queries shed under overload (docs/metrics.md).
      shed_with_503: z.boolean().optional(),
    }),
    `{"name" := string, "input_type" := ${INPUT_TYPE_TEXT}, "default_output" := string, "latency_slo_micros" := int}`,
  ),
  appName: spec(z.object({ name: z.string() }), `{"name" := string}`),
  links: spec(
    z.object({ app_name: z.string(), model_names: z.array(z.string()) }),
    `{"app_name" := string, "model_names" := [string]}`,
  ),
  addModel: spec(
    z.object({
      model_name: z.string(),
      model_version: z.string(),
      labels: z.array(z.string()),
      input_type: z.string(),
      container_name: z.string(),
      model_data_path: z.string(),
      batch_size: z.number(),
      // Ours: how long a free replica may hold a small batch to fill it (µs, default 0).
      batch_wait_micros: z.number().optional(),
    }),
    `{"model_name" := string, "model_version" := string, "labels" := [string], "input_type" := ${INPUT_TYPE_TEXT}, ` +
      `"container_name" := string, "model_data_path" := string, "batch_size" := int}`,
  ),
  modelVersion: spec(
    z.object({ model_name: z.string(), model_version: z.string() }),
    `{"model_name" := string, "model_version" := string}`,
  ),
  // Clipper required "verbose"; we default it to false so `curl -X POST` without a body works.
  verbose: spec(z.object({ verbose: z.boolean().optional() }), `{"verbose" := bool}`),
  linkedModels: spec(z.object({ app_name: z.string() }), `{"app_name" := string}`),
  container: spec(
    z.object({ model_name: z.string(), model_version: z.string(), replica_id: z.number().int() }),
    `{"model_name" := string, "model_version" := string, "replica_id" := int}`,
  ),
  selectionState: spec(
    z.object({ app_name: z.string(), uid: z.number().int() }),
    `{"app_name" := string, "uid" := int}`,
  ),
  replicaReport: spec(
    ReplicaReportSchema,
    `{"frontend_id" := string, "replicas" := [{"model_id" := string, "model_name" := string, ` +
      `"model_version" := string, "model_replica_id" := int, "input_type" := ${INPUT_TYPE_TEXT}}], ` +
      `"applied" := {"daemon" := string, "revision" := int} (optional), "leaving" := bool (optional)}`,
  ),
};

/** Clipper's wording for a body it cannot use: the problem, then the schema it expected. */
function jsonError(problem: string, schemaText: string): Error {
  return badRequest(`Error parsing JSON: ${problem}. Expected JSON schema: ${schemaText}`);
}

/**
 * Parses a request body against its spec. An empty body counts as `{}` (so the missing keys are
 * named); unknown extra keys are ignored (zod strips them), which lets newer clients send fields
 * such as an application's "policy" to an older daemon.
 */
export function parseBody<T extends z.ZodType>(raw: string, { schema, text }: BodySpec<T>): z.output<T> {
  let json: unknown;
  try {
    json = JSON.parse(raw.trim() === "" ? "{}" : raw);
  } catch (err) {
    throw jsonError(`the body is not valid JSON (${(err as Error).message})`, text);
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  throw jsonError(describeIssue(parsed.error.issues[0], json), text);
}

function describeIssue(issue: z.core.$ZodIssue | undefined, json: unknown): string {
  if (!issue || issue.path.length === 0) return "the body must be a JSON object";
  const [key] = issue.path;
  if (typeof key === "string" && json !== null && typeof json === "object" && !(key in json)) {
    return `JSON object does not have required key: ${key}`;
  }
  const where = issue.path
    .map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join("");
  return `the value of '${where}' is invalid: ${issue.message.replace(/^Invalid input: /, "")}`;
}

function inputType(value: string): InputType {
  const canonical = canonicalInputType(value);
  if (canonical) return canonical;
  throw badRequest(
    `Invalid input type '${value}'. Expected one of: ${INPUT_TYPES.join(", ")} ` +
      `(aliases such as 'ints', 'd' or 'str' are accepted)`,
  );
}

/** Clipper's prohibited-characters message first (for its exact text), then our name pattern. */
function checkName(kind: string, value: string): void {
  const problem = prohibitedCharsProblem(kind, value) ?? nameProblem(kind, value);
  if (problem) throw new AdminError("bad_request", problem, { [REFUSAL_HEADER]: INVALID_NAME_REFUSAL });
}

function checkInt32(key: string, value: number, rule: (v: number) => boolean, ruleText: string): void {
  if (!Number.isInteger(value) || Math.abs(value) > INT32_MAX || !rule(value)) {
    throw badRequest(`${key} must be ${ruleText}, got ${value}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers over the state

/** Names and versions in a stable, human order ("2" before "10"). */
function byName(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

function versionsOf(state: ClusterState, modelName: string): ModelVersionRecord[] {
  const model = own(state.models, modelName);
  if (!model) return [];
  return Object.keys(model.versions)
    .sort(byName)
    .map((v) => model.versions[v]!);
}

/**
 * How many models an application may link: one under the default selection policy (Clipper's
 * rule) and under a canary; any number under the policies that combine or choose.
 */
function linkLimit(app: AppRecord): number {
  return linkLimitFor(app.policy);
}

/** The applications that link a model, in name order: from the store's index when given, else by a walk. */
function appsLinking(state: ClusterState, modelName: string, links: LinkIndex | undefined): string[] {
  const names = links
    ? links.appsLinking(modelName)
    : Object.keys(state.applications).filter((n) => state.applications[n]!.linked_models.includes(modelName));
  return names.sort(byName);
}

/**
 * Keeps the invariant "a linked model's versions have the application's input type": Clipper's
 * check when a new version is added or made current.
 */
function checkConsistentWithLinks(state: ClusterState, modelName: string, type: InputType, links: LinkIndex | undefined): void {
  for (const appName of appsLinking(state, modelName, links)) {
    const app = state.applications[appName]!;
    if (app.input_type !== type) {
      throw badRequest(
        `Model with name '${modelName}' is already linked to app '${appName}' using input type ` +
          `'${app.input_type}'. The input type you provided for a new version of the model, ` +
          `'${type}', is not compatible.`,
      );
    }
  }
}

function appObject(app: AppRecord) {
  // Clipper's key order, so answers compare byte for byte with its own.
  return {
    input_type: app.input_type,
    default_output: app.default_output,
    latency_slo_micros: app.latency_slo_micros,
    name: app.name,
    linked_models: [...app.linked_models],
    // Only when not the default, so Clipper's shapes stay exactly as they were.
    ...(app.policy && app.policy.name !== "default" ? { policy: cloneData(app.policy) } : {}),
  };
}

function modelObject(state: ClusterState, v: ModelVersionRecord) {
  return {
    model_name: v.model_name,
    model_version: v.model_version,
    input_type: v.input_type,
    labels: [...v.labels],
    container_name: v.container_name,
    model_data_path: v.model_data_path,
    is_current_version: own(state.models, v.model_name)?.current_version === v.model_version,
    // Only when set, so Clipper's shapes stay exactly as they were.
    ...autoscalingOf(state, v),
    ...shadowOf(state, v),
  };
}

/** On the verbose record of a model's shadow version only (docs/rollouts.md): its share and setting. */
function shadowOf(state: ClusterState, v: ModelVersionRecord) {
  const shadow = own(state.shadows, v.model_name);
  return shadow?.model_version === v.model_version ? { shadow: { percent: shadow.percent, since_revision: shadow.since_revision } } : {};
}

function autoscalingOf(state: ClusterState, v: ModelVersionRecord) {
  const config = own(own(state.autoscaling, v.model_name), v.model_version);
  return config ? { autoscaling: { ...config } } : {};
}

function quoteList(names: readonly string[]): string {
  return names.map((n) => `'${n}'`).join(", ");
}

const text = (t: string): Reply => ({ kind: "text", text: t });
const json = (value: unknown): Reply => ({ kind: "json", value });

// ---------------------------------------------------------------------------------------------
// Writes

export const addApp: WriteOperation = (state, body) => {
  const b = parseBody(body, BODIES.addApp);
  const type = inputType(b.input_type);
  checkName("application name", b.name);
  checkInt32("latency_slo_micros", b.latency_slo_micros, (v) => v > 0,
    `a positive integer number of microseconds no larger than ${INT32_MAX}`);
  const policy = b.policy === undefined ? undefined : parsePolicyConfig(b.policy);
  if (own(state.applications, b.name)) throw badRequest(`application '${b.name}' already exists`);
  const app: AppRecord = {
    name: b.name,
    input_type: type,
    default_output: b.default_output,
    latency_slo_micros: b.latency_slo_micros,
    linked_models: [],
    ...(policy && policy.name !== "default" ? { policy } : {}),
    ...(b.shed_with_503 ? { shed_with_503: true } : {}),
  };
  return { changes: [{ field: "applications", key: b.name, value: app }], text: `Successfully added application with name '${b.name}'` };
};

export const deleteApp: WriteOperation = (state, body) => {
  const b = parseBody(body, BODIES.appName);
  if (!own(state.applications, b.name)) throw badRequest(`Application '${b.name}' does not exist`);
  const changes: StateChange[] = [{ field: "applications", key: b.name }];
  if (hasOwn(state.policy_state, b.name)) changes.push({ field: "policy_state", key: b.name });
  // Its query log setting goes too; the daemon deletes the log's files once this is committed.
  if (hasOwn(state.query_log, b.name)) changes.push({ field: "query_log", key: b.name });
  // Keys limited to this application go with it: one must not open a new application of the same name.
  if (state.api_keys?.some((key) => key.app === b.name)) changes.push({ field: "api_keys", value: state.api_keys.filter((key) => key.app !== b.name) });
  return { changes, text: `Successfully deleted application with name '${b.name}'` };
};

export const addModelLinks: WriteOperation = (state, body) => {
  const b = parseBody(body, BODIES.links);
  const app = own(state.applications, b.app_name);
  if (!app) throw badRequest(`No app with name '${b.app_name}' exists.`);
  const names = [...new Set(b.model_names)];
  if (names.length === 0) {
    throw badRequest(`Please provide the name of the model that you want to link to the application '${app.name}'`);
  }
  for (const name of names) {
    const model = own(state.models, name);
    if (!model || Object.keys(model.versions).length === 0) throw badRequest(`No model with name '${name}' exists.`);
    // The current version decides, as in Clipper. Without one (it was deleted), set_model_version
    // checks the input type when a version becomes current again.
    const current = model.current_version === null ? undefined : own(model.versions, model.current_version);
    if (current && current.input_type !== app.input_type) {
      throw badRequest(
        `Model with name '${name}' has incompatible input_type '${current.input_type}'. ` +
          `Requested app to link to has input_type '${app.input_type}'.`,
      );
    }
  }
  for (const name of names) {
    if (app.linked_models.includes(name)) throw badRequest(`The model with name '${name}' is already linked to '${app.name}'`);
  }
  const limit = linkLimit(app);
  if (app.linked_models.length + names.length > limit) {
    if (app.linked_models.length > 0) {
      throw badRequest(
        `Application '${app.name}' already has a linked model ('${app.linked_models[0]}'); ` +
          `the ${policyNameOf(app)} selection policy serves one model`,
      );
    }
    throw badRequest(
      `Applications must be linked with at most one model. Attempted to add links to ${names.length} models.`,
    );
  }
  return {
    changes: [{ field: "applications", key: app.name, value: { ...app, linked_models: [...app.linked_models, ...names] } }],
    text:
      names.length === 1
        ? `Successfully linked model with name '${names[0]}' to application '${app.name}'`
        : `Successfully linked models with names ${quoteList(names)} to application '${app.name}'`,
  };
};

export const deleteModelLinks: WriteOperation = (state, body) => {
  const b = parseBody(body, BODIES.links);
  const app = own(state.applications, b.app_name);
  // Clipper's texts, unquoted names included.
  if (!app) throw badRequest(`No app with name ${b.app_name} exists.`);
  for (const name of b.model_names) {
    if (!app.linked_models.includes(name)) {
      throw badRequest(`Cannot remove nonexistent link between app ${app.name} and model ${name}`);
    }
  }
  if (b.model_names.length === 0) return { text: "Success!" };
  const linked = app.linked_models.filter((m) => !b.model_names.includes(m));
  return { changes: [{ field: "applications", key: app.name, value: { ...app, linked_models: linked } }], text: "Success!" };
};

export const addModel: WriteOperation = (state, body, _replicas, links) => {
  const b = parseBody(body, BODIES.addModel);
  const type = inputType(b.input_type);
  if (!Number.isInteger(b.batch_size) || b.batch_size > INT32_MAX || (b.batch_size <= 0 && b.batch_size !== DEFAULT_BATCH_SIZE)) {
    throw badRequest("The batch size must be positive or DEFAULT_BATCH_SIZE, which is -1");
  }
  if (b.batch_wait_micros !== undefined) {
    checkInt32("batch_wait_micros", b.batch_wait_micros, (v) => v >= 0,
      `a non-negative integer number of microseconds no larger than ${INT32_MAX}`);
  }
  // Clipper's separator check on everything first, then our stricter name pattern.
  for (const [kind, value] of [["model name", b.model_name], ["model version", b.model_version]] as const) {
    const problem = prohibitedCharsProblem(kind, value);
    if (problem) throw badRequest(problem);
  }
  for (const label of b.labels) {
    const problem = prohibitedCharsProblem("label", label);
    if (problem) throw badRequest(problem);
  }
  checkName("model name", b.model_name);
  checkName("model version", b.model_version);
  if (own(own(state.models, b.model_name)?.versions, b.model_version)) {
    throw badRequest(`model with name '${b.model_name}' and version '${b.model_version}' already exists`);
  }
  checkConsistentWithLinks(state, b.model_name, type, links);

  const versions = dict(own(state.models, b.model_name)?.versions ?? {});
  versions[b.model_version] = {
    model_name: b.model_name,
    model_version: b.model_version,
    labels: b.labels,
    input_type: type,
    container_name: b.container_name,
    model_data_path: b.model_data_path,
    batch_size: b.batch_size,
    ...(b.batch_wait_micros ? { batch_wait_micros: b.batch_wait_micros } : {}),
  };
  // As in Clipper, the newest registered version becomes current (clipper_admin deploys replicas
  // first and registers second, so the version is live when it becomes current).
  const model = { name: b.model_name, current_version: b.model_version, versions };
  return { changes: [{ field: "models", key: b.model_name, value: model }], text: `Successfully added model with name '${b.model_name}' and input type '${type}'` };
};

export const setModelVersion: WriteOperation = (state, body, _replicas, links) => {
  const b = parseBody(body, BODIES.modelVersion);
  const model = own(state.models, b.model_name);
  if (!model || Object.keys(model.versions).length === 0) {
    throw badRequest(`Cannot set version for nonexistent model '${b.model_name}'`);
  }
  const version = own(model.versions, b.model_version);
  if (!version) {
    throw badRequest(`Cannot set non-existent version '${b.model_version}' for model with name '${b.model_name}'`);
  }
  checkConsistentWithLinks(state, b.model_name, version.input_type, links);
  const reply = `Successfully set model with name '${b.model_name}' to version '${b.model_version}'`;
  if (model.current_version === b.model_version) return { text: reply };
  const { changes, result: event } = editModelEntries(state, b.model_name, (next) => {
    next.models[b.model_name]!.current_version = b.model_version;
    // A shadow made current is promoted: there is no other version left to compare it with.
    endShadowOf(next, b.model_name, b.model_version);
    return settleRolloutAfter(next, b.model_name, `set-version ${b.model_version}`);
  });
  return { changes, text: reply, ...(event ? { event } : {}) };
};

/**
 * Removes one version. Clipper only marked it invalid; we remove its record. Choices:
 * - deleting the current version leaves the model with no current version (current_version null):
 *   the frontends answer with the default output until set_model_version or add_model picks one.
 *   We do not fall back to another version silently; a rollback is the operator's decision.
 * - deleting the last version removes the model record. While applications link the model that is
 *   refused (400, naming them): a link always names an existing model, and a delete never changes
 *   an application behind the operator's back. Unlink first (delete_model_links).
 */
export const deleteVersionedModel: WriteOperation = (state, body, _replicas, links) => {
  const b = parseBody(body, BODIES.modelVersion);
  const model = own(state.models, b.model_name);
  if (!model || !own(model.versions, b.model_version)) {
    throw badRequest(`model with name '${b.model_name}' and version '${b.model_version}' does not exist`);
  }
  if (Object.keys(model.versions).length === 1) {
    const linking = appsLinking(state, b.model_name, links);
    if (linking.length > 0) {
      throw badRequest(
        `Cannot delete version '${b.model_version}', the last version of model '${b.model_name}': ` +
          `application${linking.length === 1 ? "" : "s"} ${quoteList(linking)} link${linking.length === 1 ? "s" : ""} it. ` +
          `Unlink it first (delete_model_links), or add another version before deleting this one.`,
      );
    }
  }
  const { changes, result: event } = editModelEntries(state, b.model_name, (next) => {
    const target = next.models[b.model_name]!;
    delete target.versions[b.model_version];
    if (target.current_version === b.model_version) target.current_version = null;
    if (Object.keys(target.versions).length === 0) delete next.models[b.model_name];
    // Its autoscaling goes with it: a version registered again under the name starts unscaled.
    removeAutoscaling(next, b.model_name, b.model_version);
    endShadowOf(next, b.model_name, b.model_version);
    const event = settleRolloutAfter(next, b.model_name, `deleting version ${b.model_version}`);
    // A rollout of a model that is gone entirely goes with it.
    if (!own(next.models, b.model_name) && own(next.rollouts, b.model_name)) {
      delete next.rollouts![b.model_name];
      if (Object.keys(next.rollouts!).length === 0) delete next.rollouts;
    }
    return event;
  });
  return { changes, text: `Successfully deleted model with name '${b.model_name}' and version '${b.model_version}'`, ...(event ? { event } : {}) };
};

// ---------------------------------------------------------------------------------------------
// Reads

export const getAllApplications: ReadOperation = ({ state }, body) => {
  const b = parseBody(body, BODIES.verbose);
  const names = Object.keys(state.applications).sort(byName);
  return json(b.verbose ? names.map((n) => appObject(state.applications[n]!)) : names);
};

export const getApplication: ReadOperation = ({ state }, body) => {
  const b = parseBody(body, BODIES.appName);
  const app = own(state.applications, b.name);
  return json(app ? appObject(app) : {});
};

export const getLinkedModels: ReadOperation = ({ state }, body) => {
  const b = parseBody(body, BODIES.linkedModels);
  const app = own(state.applications, b.app_name);
  if (!app) throw badRequest(`No application with name '${b.app_name}' exists.`);
  return json([...app.linked_models]);
};

export const getAllModels: ReadOperation = ({ state }, body) => {
  const b = parseBody(body, BODIES.verbose);
  const versions = Object.keys(state.models).sort(byName).flatMap((name) => versionsOf(state, name));
  return json(
    b.verbose ? versions.map((v) => modelObject(state, v)) : versions.map((v) => `${v.model_name}:${v.model_version}`),
  );
};

export const getModel: ReadOperation = ({ state }, body) => {
  const b = parseBody(body, BODIES.modelVersion);
  const version = own(own(state.models, b.model_name)?.versions, b.model_version);
  return json(version ? modelObject(state, version) : {});
};

export const getAllContainers: ReadOperation = ({ replicas }, body) => {
  const b = parseBody(body, BODIES.verbose);
  return json(
    b.verbose
      ? replicas.map((r) => ({ ...r }))
      : replicas.map((r) => `${r.model_name}:${r.model_version}:${r.model_replica_id}`),
  );
};

export const getContainer: ReadOperation = ({ replicas }, body) => {
  const b = parseBody(body, BODIES.container);
  const found = replicas.find(
    (r) => r.model_name === b.model_name && r.model_version === b.model_version && r.model_replica_id === b.replica_id,
  );
  return json(found ? { ...found } : {});
};

/**
 * Clipper's get_state answered the application's default output (its only per-user state) and an
 * empty text for an unknown application; we answer 400 for an unknown application.
 */
export const getState: ReadOperation = ({ state }, body) => {
  const b = parseBody(body, BODIES.selectionState);
  const app = own(state.applications, b.app_name);
  if (!app) throw badRequest(`No application with name '${b.app_name}' exists.`);
  return text(app.default_output);
};

/** Our extension: a query frontend's report of its connected replicas. */
export function parseReplicaReport(body: string): ReplicaReport {
  return parseBody(body, BODIES.replicaReport);
}

// ---------------------------------------------------------------------------------------------
// The route table's operations, by path

export const WRITE_OPERATIONS: Readonly<Record<string, WriteOperation>> = {
  "/admin/add_app": addApp,
  "/admin/delete_app": deleteApp,
  "/admin/add_model_links": addModelLinks,
  "/admin/delete_model_links": deleteModelLinks,
  "/admin/add_model": addModel,
  "/admin/set_model_version": setModelVersion,
  "/admin/delete_versioned_model": deleteVersionedModel,
};

export const READ_OPERATIONS: Readonly<Record<string, ReadOperation>> = {
  "/admin/get_all_applications": getAllApplications,
  "/admin/get_application": getApplication,
  "/admin/get_linked_models": getLinkedModels,
  "/admin/get_all_models": getAllModels,
  "/admin/get_model": getModel,
  "/admin/get_all_containers": getAllContainers,
  "/admin/get_container": getContainer,
  "/admin/get_state": getState,
};
