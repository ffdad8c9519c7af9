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
 *
 * Warm-up from recorded queries (`deploy-model --warmup-from-log APP`, src/warmup-from-log.ts)
 * travels the same way, as CLIPPER_WARMUP_INPUTS: a JSON array of inputs the application's query
 * log recorded, each warm-up batch holding all of them. A deployment has one or the other. The
 * variable's JSON is bounded like the single input's (MAX_WARMUP_INPUT_CHARS: environment variables
 * and the Kubernetes annotation that records them have size limits), and so is its count.
 */
import { encodeInput, InputTypeError, type InputType } from "./input-types.js";

/** The input, as JSON text (a query's `input`: an array of numbers, a string, base64 for bytes). */
export const WARMUP_INPUT_ENV = "CLIPPER_WARMUP_INPUT";
/** Recorded inputs, as a JSON array of query inputs: each warm-up batch holds them all. */
export const WARMUP_INPUTS_ENV = "CLIPPER_WARMUP_INPUTS";
/** How many batches of that one input the runtime predicts before it connects. */
export const WARMUP_BATCHES_ENV = "CLIPPER_WARMUP_BATCHES";
export const DEFAULT_WARMUP_BATCHES = 3;
/** Warm-up delays readiness by N predict calls: more than this is a mistake, not a warm-up. */
export const MAX_WARMUP_BATCHES = 1000;
/** An environment variable (and a Kubernetes annotation that records it) has a size limit; 64 KiB is well inside. */
export const MAX_WARMUP_INPUT_CHARS = 65_536;
/** Recorded inputs in one warm-up batch, at most (a batch, not a load test). */
export const MAX_WARMUP_INPUTS = 256;

/** A warm-up input or batch count that cannot be used; the message names the problem. */
export class WarmupSpecError extends Error {
  override readonly name = "WarmupSpecError";
}

export interface WarmupSpec {
  /** The raw bytes of each input frame of a warm-up batch, as the frontend would send them. */
  inputs: Buffer[];
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
 * starts: one input (`--warmup-input`) or recorded inputs (`--warmup-from-log`), not both.
 * `batches` without an input is a mistake (nothing to warm up with).
 */
export function warmupEnv(inputType: InputType, input: unknown, batches: number | undefined, recorded?: readonly unknown[]): Record<string, string> {
  if (input !== undefined && recorded !== undefined) throw new WarmupSpecError("give the warm-up either as one input or as recorded inputs, not both");
  if (input === undefined && recorded === undefined) {
    if (batches !== undefined) throw new WarmupSpecError("warm-up batches need a warm-up input (--warmup-input JSON or --warmup-from-log APP)");
    return {};
  }
  if (recorded !== undefined && (recorded.length === 0 || recorded.length > MAX_WARMUP_INPUTS)) {
    throw new WarmupSpecError(`a warm-up holds 1 to ${MAX_WARMUP_INPUTS} recorded inputs, got ${recorded.length}`);
  }
  for (const x of recorded ?? [input]) encodeWarmupInput(inputType, x);
  const text = JSON.stringify(recorded ?? input);
  if (text.length > MAX_WARMUP_INPUT_CHARS) {
    throw new WarmupSpecError(`the warm-up input${recorded ? "s are" : " is"} ${text.length} characters of JSON; at most ${MAX_WARMUP_INPUT_CHARS} fit in a replica's environment`);
  }
  return { [recorded ? WARMUP_INPUTS_ENV : WARMUP_INPUT_ENV]: text, [WARMUP_BATCHES_ENV]: String(checkBatches(batches ?? DEFAULT_WARMUP_BATCHES)) };
}

/** The runtime's side: the warm-up its environment asks for, or undefined for none; throws WarmupSpecError. */
export function warmupFromEnv(inputType: InputType, env: NodeJS.ProcessEnv): WarmupSpec | undefined {
  const inputText = env[WARMUP_INPUT_ENV]?.trim() || undefined;
  const inputsText = env[WARMUP_INPUTS_ENV]?.trim() || undefined;
  const batchesText = env[WARMUP_BATCHES_ENV]?.trim() || undefined;
  if (inputText !== undefined && inputsText !== undefined) throw new WarmupSpecError(`${WARMUP_INPUT_ENV} and ${WARMUP_INPUTS_ENV} are both set`);
  if (inputText === undefined && inputsText === undefined) {
    if (batchesText !== undefined) throw new WarmupSpecError(`${WARMUP_BATCHES_ENV} is set but ${WARMUP_INPUT_ENV} is not`);
    return undefined;
  }
  if (batchesText !== undefined && !/^\d+$/.test(batchesText)) {
    throw new WarmupSpecError(`${WARMUP_BATCHES_ENV} must be a whole number from 1 to ${MAX_WARMUP_BATCHES}, got '${batchesText}'`);
  }
  const batches = checkBatches(batchesText === undefined ? DEFAULT_WARMUP_BATCHES : Number(batchesText));
  if (inputText !== undefined) return { inputs: [encodeWarmupInput(inputType, parseJsonVariable(WARMUP_INPUT_ENV, inputText))], batches };
  const inputs = parseJsonVariable(WARMUP_INPUTS_ENV, inputsText!);
  if (!Array.isArray(inputs) || inputs.length === 0 || inputs.length > MAX_WARMUP_INPUTS) {
    throw new WarmupSpecError(`${WARMUP_INPUTS_ENV} must be a JSON array of 1 to ${MAX_WARMUP_INPUTS} inputs`);
  }
  return { inputs: inputs.map((x) => encodeWarmupInput(inputType, x)), batches };
}

function parseJsonVariable(name: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new WarmupSpecError(`${name} is not JSON: ${(err as Error).message}`);
  }
}
