/**
 * The admin API of shadow versions (our extension; docs/rollouts.md): set or end a model's shadow,
 * and read its setting with the figures the frontends reported. Pure functions over the state like
 * operations.ts.
 */
import { z } from "zod";
import { own } from "../shared/dict.js";
import { GET_SHADOW_STATUS_PATH, SET_SHADOW_PATH, type ShadowStatus } from "../shared/shadow.js";
import type { ClusterState } from "../shared/state.js";
import { badRequest } from "./errors.js";
import { parseBody, type ReadOperation, type ReadView, spec, type WriteOperation } from "./operations.js";
import { rolloutPercent, type RolloutStatus } from "../shared/rollout.js";
import { endShadowOf } from "./shadow-state.js";
import { editModelEntries } from "./model-entries.js";

const BODIES = {
  set: spec(
    z.object({
      model_name: z.string(),
      model_version: z.string().optional(),
      percent: z.number().optional(),
      off: z.boolean().optional(),
    }),
    `{"model_name" := string, "model_version" := string, "percent" := number in (0, 100] (optional: 100)} ` +
      `or {"model_name" := string, "off" := true}`,
  ),
  status: spec(z.object({ model_name: z.string() }), `{"model_name" := string}`),
};

export const setShadow: WriteOperation = (state, body, replicas) => {
  const b = parseBody(body, BODIES.set);
  const model = own(state.models, b.model_name);
  if (!model) throw badRequest(`No model with name '${b.model_name}' exists.`);
  const current = own(state.shadows, b.model_name);
  const rollout = own(state.rollouts, b.model_name);
  if (rollout?.phase === "running") {
    throw badRequest(`A rollout of '${b.model_name}' to version '${rollout.to_version}' is running and compares through its shadow: ` +
      `abort the rollout first (clipper rollout ${b.model_name} --abort)`);
  }
  if (b.off) {
    const extra = (["model_version", "percent"] as const).filter((k) => b[k] !== undefined);
    if (extra.length > 0) throw badRequest(`"off": true takes no settings; drop ${extra.join(", ")}`);
    if (!current) throw badRequest(`Model '${b.model_name}' has no shadow version to end`);
    const { changes } = editModelEntries(state, b.model_name, (next) => endShadowOf(next, b.model_name, current.model_version));
    return { changes, text: `Ended the shadow of ${b.model_name}:${current.model_version}; it receives no more copies of live queries` };
  }
  const version = b.model_version;
  if (version === undefined) throw badRequest(`model_version is required (or send "off": true to end the shadow)`);
  const percent = b.percent ?? 100;
  if (!Number.isFinite(percent) || percent <= 0 || percent > 100) {
    throw badRequest(`percent must be a number above 0 and at most 100, got ${percent}`);
  }
  if (!own(model.versions, version)) throw badRequest(`model with name '${b.model_name}' and version '${version}' does not exist`);
  if (model.current_version === null) throw badRequest(`Model '${b.model_name}' has no current version: there are no live answers to compare with`);
  if (model.current_version === version) {
    throw badRequest(`Version '${version}' is the current version of '${b.model_name}': a shadow must be another version`);
  }
  const live = own(model.versions, model.current_version)!;
  const candidate = own(model.versions, version)!;
  if (candidate.input_type !== live.input_type) {
    throw badRequest(`Version '${version}' takes '${candidate.input_type}' and the current version '${live.model_version}' takes ` +
      `'${live.input_type}': a shadow must take the live queries' input type`);
  }
  if (!(replicas ?? []).some((r) => r.model_name === b.model_name && r.model_version === version)) {
    throw badRequest(`Version '${b.model_name}:${version}' has no connected replica: deploy it (or scale it up) first`);
  }
  const text = `Shadowing ${b.model_name}:${model.current_version} with version '${version}' on ${percent}% of its live queries`;
  // The same setting again keeps its figures (and its revision).
  if (current && current.model_version === version && current.percent === percent) return { text };
  // The revision this write will get (the store numbers each commit one above the state it changed).
  const setting = { model_version: version, percent, since_revision: state.revision + 1 };
  return { changes: [{ field: "shadows", key: b.model_name, value: setting }], text };
};

/** A model's shadow setting and figures; a model without one answers `shadow: null`. */
export const getShadowStatus: ReadOperation = ({ state, shadowFigures, rolloutProgress }, body) => {
  const b = parseBody(body, BODIES.status);
  const model = own(state.models, b.model_name);
  if (!model) throw badRequest(`No model with name '${b.model_name}' exists.`);
  const shadow = own(state.shadows, b.model_name);
  const status: ShadowStatus = {
    model_name: b.model_name,
    current_version: model.current_version,
    shadow: shadow ? { ...shadow } : null,
    figures: shadow && shadowFigures ? shadowFigures(b.model_name, shadow) : null,
    rollout: rolloutStatusOf(state, b.model_name, rolloutProgress),
  };
  return { kind: "json", value: status };
};

function rolloutStatusOf(state: ClusterState, modelName: string, progress: ReadView["rolloutProgress"]): RolloutStatus | null {
  const rollout = own(state.rollouts, modelName);
  if (!rollout) return null;
  const percent = rolloutPercent(rollout, own(state.models, modelName)?.current_version);
  return { ...rollout, steps: [...rollout.steps], gates: { ...rollout.gates }, percent, progress: rollout.phase === "running" ? progress?.(modelName) ?? null : null };
}

export const SHADOW_WRITE_OPERATIONS: Readonly<Record<string, WriteOperation>> = {
  [SET_SHADOW_PATH]: setShadow,
};

export const SHADOW_READ_OPERATIONS: Readonly<Record<string, ReadOperation>> = {
  [GET_SHADOW_STATUS_PATH]: getShadowStatus,
};
