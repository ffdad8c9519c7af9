/**
 * Warm-up before a replica takes traffic (`deploy-model --warmup-input JSON --warmup-batches N`).
 *
 * The deployment carries the warm-up as two environment variables of its replicas, so that every
 * manager records it with the deployment and every new replica (first deploy, scale-up, restart
 * after a crash) gets it: the runtime calls its predict function N times with a batch of that one
 * input before it connects to any frontend, and only then registers and writes its readiness file.
 * The input is a query's `input` as JSON; it is encoded exactly as the query API encodes it, so the
 * runtime decodes it on the same path as a real batch. The Python runtime reads the same variables
 * (runtime/python/clipper_runtime/container.py).
 */
import { encodeInput, InputTypeError, type InputType } from "./input-types.js";

/** The input, as JSON text (a query's `input`: an array of numbers, a string, base64 for bytes). */
export const WARMUP_INPUT_ENV = "CLIPPER_WARMUP_INPUT";
/** How many batches of that one input the runtime predicts before it connects. */
export const WARMUP_BATCHES_ENV = "CLIPPER_WARMUP_BATCHES";
export const DEFAULT_WARMUP_BATCHES = 3;
/** Warm-up delays readiness by N predict calls: more than this is a mistake, not a warm-up. */
export const MAX_WARMUP_BATCHES = 1000;
/** An environment variable (and a Kubernetes annotation that records it) has a size limit; 64 KiB is well inside. */
export const MAX_WARMUP_INPUT_CHARS = 65_536;

/** A warm-up input or batch count that cannot be used; the message names the problem. */
export class WarmupSpecError extends Error {
  override readonly name = "WarmupSpecError";
}

export interface WarmupSpec {
  /** The raw bytes of one input frame, as the frontend would send it. */
  input: Buffer;
  batches: number;
}

/** Encodes a warm-up input as the frontend encodes a query's input; throws WarmupSpecError. */
export function encodeWarmupInput(inputType: InputType, input: unknown): Buffer {
  try {
    return encodeInput(inputType, input);
  } catch (err) {
    if (err instanceof InputTypeError) throw new WarmupSpecError(`the warm-up input does not fit input type ${inputType}: ${err.message}`);
    throw err;
  }
}

function checkBatches(batches: number): number {
  if (!Number.isSafeInteger(batches) || batches < 1 || batches > MAX_WARMUP_BATCHES) {
    throw new WarmupSpecError(`warm-up batches must be a whole number from 1 to ${MAX_WARMUP_BATCHES}, got ${String(batches)}`);
  }
  return batches;
}

/**
 * The replica variables for a deployment's warm-up, checked against its input type before anything
 * starts. `batches` without an input is a mistake (nothing to warm up with).
 */
export function warmupEnv(inputType: InputType, input: unknown, batches: number | undefined): Record<string, string> {
  if (input === undefined) {
    if (batches !== undefined) throw new WarmupSpecError("warm-up batches need a warm-up input (--warmup-input JSON)");
    return {};
  }
  encodeWarmupInput(inputType, input);
  const text = JSON.stringify(input);
  if (text.length > MAX_WARMUP_INPUT_CHARS) {
    throw new WarmupSpecError(`the warm-up input is ${text.length} characters of JSON; at most ${MAX_WARMUP_INPUT_CHARS} fit in a replica's environment`);
  }
  return { [WARMUP_INPUT_ENV]: text, [WARMUP_BATCHES_ENV]: String(checkBatches(batches ?? DEFAULT_WARMUP_BATCHES)) };
}

/** The runtime's side: the warm-up its environment asks for, or undefined for none; throws WarmupSpecError. */
export function warmupFromEnv(inputType: InputType, env: NodeJS.ProcessEnv): WarmupSpec | undefined {
  const inputText = env[WARMUP_INPUT_ENV]?.trim() || undefined;
  const batchesText = env[WARMUP_BATCHES_ENV]?.trim() || undefined;
  if (inputText === undefined) {
    if (batchesText !== undefined) throw new WarmupSpecError(`${WARMUP_BATCHES_ENV} is set but ${WARMUP_INPUT_ENV} is not`);
    return undefined;
  }
  if (batchesText !== undefined && !/^\d+$/.test(batchesText)) {
    throw new WarmupSpecError(`${WARMUP_BATCHES_ENV} must be a whole number from 1 to ${MAX_WARMUP_BATCHES}, got '${batchesText}'`);
  }
  const batches = checkBatches(batchesText === undefined ? DEFAULT_WARMUP_BATCHES : Number(batchesText));
  return { input: encodeWarmupInput(inputType, parseJsonVariable(inputText)), batches };
}

function parseJsonVariable(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new WarmupSpecError(`${WARMUP_INPUT_ENV} is not JSON: ${(err as Error).message}`);
  }
}
