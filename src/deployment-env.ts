/**
 * The variables a deployment gives its replicas: its own (`--env`) plus its warm-up's
 * (runtime/shared/warmup.ts). Managers record them with the deployment, so every replica they
 * start later (scale-up, restart) gets the same warm-up.
 */
import type { InputType } from "../runtime/shared/input-types.js";
import { WARMUP_INPUT_ENV, WARMUP_INPUTS_ENV, WarmupSpecError, warmupEnv } from "../runtime/shared/warmup.js";
import { ClipperError } from "./errors.js";

export interface DeploymentEnvOptions {
  env?: Record<string, string>;
  warmupInput?: unknown;
  /** Recorded inputs (src/warmup-from-log.ts), instead of warmupInput. */
  warmupInputs?: readonly unknown[];
  warmupBatches?: number;
}

/** The deployment's replica variables: its own `env`, plus the warm-up's (shared/warmup.ts). */
export function deploymentEnv(inputType: InputType, options: DeploymentEnvOptions): Record<string, string> | undefined {
  let warmup: Record<string, string>;
  try {
    warmup = warmupEnv(inputType, options.warmupInput, options.warmupBatches, options.warmupInputs);
  } catch (err) {
    if (err instanceof WarmupSpecError) throw new ClipperError("USAGE", err.message);
    throw err;
  }
  const clash = [...Object.keys(warmup), WARMUP_INPUT_ENV, WARMUP_INPUTS_ENV]
    .find((name) => Object.keys(warmup).length > 0 && options.env && Object.hasOwn(options.env, name));
  if (clash) throw new ClipperError("USAGE", `give the warm-up either with --warmup-input/--warmup-batches or with --env ${clash}, not both`);
  return Object.keys(warmup).length ? { ...options.env, ...warmup } : options.env;
}

