/**
 * Warm-up inputs taken from an application's query log (`deploy-model --warmup-from-log APP
 * [--warmup-count N]`, docs/rollouts.md#replay-and-warm-up): the latest N distinct recorded inputs
 * that fit the new version's input type, so that its replicas warm up on what the application is
 * really asked. They travel as every warm-up does, in the replicas' environment
 * (runtime/shared/warmup.ts: CLIPPER_WARMUP_INPUTS), which bounds them: at most MAX_WARMUP_INPUTS
 * inputs and MAX_WARMUP_INPUT_CHARS characters of JSON in all; the oldest of the chosen inputs are
 * left out until the rest fit. The log is read once, as it streams, holding at most N inputs.
 */
import { encodeInput, InputTypeError, type InputType } from "../runtime/shared/input-types.js";
import type { QueryRecord } from "../runtime/shared/query-log.js";
import { MAX_WARMUP_INPUT_CHARS } from "../runtime/shared/warmup.js";

export const DEFAULT_WARMUP_COUNT = 16;

export interface RecordedWarmup {
  /** The chosen inputs, oldest first. */
  inputs: unknown[];
  /** Records read, and those whose input did not fit the input type. */
  read: number;
  unfit: number;
}

function fits(inputType: InputType, input: unknown): boolean {
  try {
    encodeInput(inputType, input);
    return true;
  } catch (err) {
    if (err instanceof InputTypeError) return false;
    throw err;
  }
}

/** The latest `count` distinct inputs of the records that fit `inputType`, within the environment's bound. */
export async function recordedWarmupInputs(records: AsyncIterable<QueryRecord>, inputType: InputType, count: number): Promise<RecordedWarmup> {
  // JSON text → input, in the order last seen: a Map keeps insertion order, so re-inserting moves an input to the end.
  const latest = new Map<string, unknown>();
  let read = 0;
  let unfit = 0;
  for await (const record of records) {
    read++;
    if (!fits(inputType, record.input)) {
      unfit++;
      continue;
    }
    const key = JSON.stringify(record.input);
    // An input longer than the whole bound can never travel: not worth holding.
    if (key.length + 2 > MAX_WARMUP_INPUT_CHARS) continue;
    latest.delete(key);
    latest.set(key, record.input);
    if (latest.size > count) latest.delete(latest.keys().next().value!);
  }
  const keys = [...latest.keys()];
  // "[" + keys joined by "," + "]": drop the oldest until the array's JSON fits.
  let chars = 2 + keys.reduce((sum, k) => sum + k.length, 0) + Math.max(0, keys.length - 1);
  while (keys.length > 0 && chars > MAX_WARMUP_INPUT_CHARS) {
    chars -= keys.shift()!.length + (keys.length > 0 ? 1 : 0);
  }
  return { inputs: keys.map((k) => latest.get(k)), read, unfit };
}
