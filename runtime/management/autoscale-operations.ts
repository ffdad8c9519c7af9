/**
 * The admin API of autoscaling (our extension; docs/autoscaling.md): set or switch off a model
 * version's autoscaling, and list what is configured. Pure functions over the state like
 * operations.ts; each change also names the event the daemon's event log records.
 */
import { z } from "zod";
import { dict, own } from "../shared/dict.js";
import {
  type AutoscalingConfig,
  type AutoscalingEntry,
  DEFAULT_SCALE_DOWN_DELAY_S,
  DEFAULT_TARGET_QUEUE_PER_REPLICA,
  GET_AUTOSCALING_PATH,
  MAX_AUTOSCALE_REPLICAS,
  MAX_SCALE_DOWN_DELAY_S,
  MAX_TARGET_QUEUE_PER_REPLICA,
  SET_AUTOSCALING_PATH,
} from "../shared/autoscaling.js";
import { cloneState, type ClusterState } from "../shared/state.js";
import { removeAutoscaling } from "./autoscale-state.js";
import { badRequest } from "./errors.js";
import { parseBody, type ReadOperation, spec, type WriteOperation } from "./operations.js";

const BODIES = {
  set: spec(
    z.object({
      model_name: z.string(),
      model_version: z.string().optional(),
      min_replicas: z.number().optional(),
      max_replicas: z.number().optional(),
      target_queue_per_replica: z.number().optional(),
      scale_down_delay_s: z.number().optional(),
      off: z.boolean().optional(),
    }),
    `{"model_name" := string, "model_version" := string (optional: the current version), "min_replicas" := int, ` +
      `"max_replicas" := int, "target_queue_per_replica" := number (optional), "scale_down_delay_s" := int (optional)} ` +
      `or {"model_name" := string, "model_version" := string (optional), "off" := true}`,
  ),
  get: spec(z.object({ model_name: z.string().optional() }), `{"model_name" := string (optional)}`),
};

export function wholeNumber(key: string, value: number | undefined, min: number, max: number): number {
  if (value === undefined) throw badRequest(`${key} is required (or send "off": true to switch autoscaling off)`);
  if (!Number.isInteger(value) || value < min || value > max) throw badRequest(`${key} must be a whole number from ${min} to ${max}, got ${value}`);
  return value;
}

/** Validates the numbers of a set request; absent optional ones take the defaults. */
function configFrom(b: z.output<typeof BODIES.set.schema>): AutoscalingConfig {
  const min = wholeNumber("min_replicas", b.min_replicas, 0, MAX_AUTOSCALE_REPLICAS);
  const max = wholeNumber("max_replicas", b.max_replicas, 1, MAX_AUTOSCALE_REPLICAS);
  if (min > max) throw badRequest(`min_replicas (${min}) must not be above max_replicas (${max})`);
  const target = b.target_queue_per_replica ?? DEFAULT_TARGET_QUEUE_PER_REPLICA;
  if (!Number.isFinite(target) || target <= 0 || target > MAX_TARGET_QUEUE_PER_REPLICA) {
    throw badRequest(`target_queue_per_replica must be a number above 0 and at most ${MAX_TARGET_QUEUE_PER_REPLICA}, got ${target}`);
  }
  const delay = b.scale_down_delay_s === undefined
    ? DEFAULT_SCALE_DOWN_DELAY_S
    : wholeNumber("scale_down_delay_s", b.scale_down_delay_s, 0, MAX_SCALE_DOWN_DELAY_S);
  return { min_replicas: min, max_replicas: max, target_queue_per_replica: target, scale_down_delay_s: delay };
}

export function describeAutoscaling(c: AutoscalingConfig): string {
  return `min ${c.min_replicas}, max ${c.max_replicas}, target queue ${c.target_queue_per_replica} per replica, ` +
    `scale-down delay ${c.scale_down_delay_s} s`;
}

/** The version a request names, or the model's current one; a 400 naming what is missing otherwise. */
export function versionOf(state: ClusterState, modelName: string, version: string | undefined): string {
  const model = own(state.models, modelName);
  if (!model) throw badRequest(`No model with name '${modelName}' exists.`);
  if (version === undefined) {
    if (model.current_version === null) throw badRequest(`Model '${modelName}' has no current version: name the version`);
    return model.current_version;
  }
  if (!own(model.versions, version)) throw badRequest(`model with name '${modelName}' and version '${version}' does not exist`);
  return version;
}

export const setAutoscaling: WriteOperation = (state, body) => {
  const b = parseBody(body, BODIES.set);
  const version = versionOf(state, b.model_name, b.model_version);
  const current = own(own(state.autoscaling, b.model_name), version);
  const where = `${b.model_name}:${version}`;
  if (b.off) {
    const bounds = (["min_replicas", "max_replicas", "target_queue_per_replica", "scale_down_delay_s"] as const).filter((k) => b[k] !== undefined);
    if (bounds.length > 0) throw badRequest(`"off": true takes no settings; drop ${bounds.join(", ")}`);
    if (!current) return { text: `Autoscaling of ${where} is already off` };
    const next = cloneState(state);
    removeAutoscaling(next, b.model_name, version);
    return {
      next,
      text: `Switched autoscaling of ${where} off; its replicas stay as they are`,
      event: { kind: "off", model_name: b.model_name, model_version: version, reason: "switched off through the admin API" },
    };
  }
  const config = configFrom(b);
  const text = `Set autoscaling of ${where}: ${describeAutoscaling(config)}`;
  if (current && JSON.stringify(current) === JSON.stringify(config)) return { text };
  const next = cloneState(state);
  ((next.autoscaling ??= dict())[b.model_name] ??= dict())[version] = config;
  return {
    next,
    text,
    event: {
      kind: "config", model_name: b.model_name, model_version: version, from: config.min_replicas, to: config.max_replicas,
      reason: `set through the admin API: ${describeAutoscaling(config)}`,
    },
  };
};

/** Every configured version (of one model when `model_name` is given), in name order. */
export const getAutoscaling: ReadOperation = ({ state }, body) => {
  const b = parseBody(body, BODIES.get);
  const order = (a: string, b: string) => a.localeCompare(b, "en", { numeric: true });
  const models = b.model_name === undefined ? Object.keys(state.autoscaling ?? {}) : [b.model_name];
  const entries: AutoscalingEntry[] = models.sort(order).flatMap((model_name) => {
    const versions = own(state.autoscaling, model_name) ?? {};
    return Object.keys(versions).sort(order).map((model_version) => ({
      model_name, model_version, autoscaling: { ...versions[model_version]! },
    }));
  });
  return { kind: "json", value: entries };
};

export const AUTOSCALE_WRITE_OPERATIONS: Readonly<Record<string, WriteOperation>> = {
  [SET_AUTOSCALING_PATH]: setAutoscaling,
};

export const AUTOSCALE_READ_OPERATIONS: Readonly<Record<string, ReadOperation>> = {
  [GET_AUTOSCALING_PATH]: getAutoscaling,
};
