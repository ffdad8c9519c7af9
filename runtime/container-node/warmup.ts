/**
 * The Node runtime's warm-up (shared/warmup.ts): before it connects to any frontend, it runs the
 * warm-up batches through the same handler real batches take (decode, predict, check the outputs),
 * one after another, and logs how long each took. A failure ends the warm-up with the reason;
 * main exits with it, so that the manager's restart and crash-loop reporting shows why.
 */
import type { Logger } from "../shared/logger.js";
import type { InputType } from "../shared/input-types.js";
import type { WarmupSpec } from "../shared/warmup.js";
import type { BatchHandler } from "./rpc-client.js";

export class WarmupError extends Error {
  override readonly name = "WarmupError";
}

/**
 * Warm-up batches carry negative message ids (-1, -2, ...): the frontend's ids are never negative,
 * so a predict function can tell a warm-up call from a query by `context.msgId < 0`.
 * Returns each batch's duration in ms.
 */
export async function warmUp(options: {
  handleBatch: BatchHandler;
  warmup: WarmupSpec;
  inputType: InputType;
  log: Logger;
  now?: () => number;
}): Promise<number[]> {
  const { handleBatch, warmup, inputType, log } = options;
  const now = options.now ?? (() => performance.now());
  const durations: number[] = [];
  for (let i = 0; i < warmup.batches; i++) {
    const started = now();
    try {
      await handleBatch({ msgId: -(i + 1), inputType, inputs: warmup.inputs });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new WarmupError(`warm-up batch ${i + 1} of ${warmup.batches} failed: ${reason}`, { cause: err });
    }
    const ms = Math.round((now() - started) * 10) / 10;
    durations.push(ms);
    log.info({ batch: i + 1, of: warmup.batches, inputs: warmup.inputs.length, ms }, "warm-up batch done");
  }
  return durations;
}
