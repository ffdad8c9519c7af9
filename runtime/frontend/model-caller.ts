/**
 * One question to one model version: queue the input, and answer with the model's output or why
 * there is none (no replica, deadline passed, model failed). Selection policies and the Open
 * Inference Protocol both ask models through this, so queues, batching and caching are shared.
 */
import type { InputType } from "../shared/input-types.js";
import type { Dispatcher, ModelResult } from "./dispatcher.js";
import type { PredictionCache } from "./prediction-cache.js";

export interface ModelRef {
  name: string;
  version: string;
}

export type CallOutcome =
  /**
   * `replica`: the key of the replica that answered, when one did (not on a cache hit); `cached`:
   * answered from the prediction cache, with no model call.
   */
  | { kind: "output"; output: string; replica?: string; cached?: true }
  /** The model ran and failed on this input's batch. */
  | { kind: "failed"; reason: string }
  /** The deadline passed before the model answered. */
  | { kind: "timeout" }
  /** No replica of the version is connected. */
  | { kind: "unavailable" }
  /** Refused at admission: it could not be answered by the deadline with the work queued ahead (admission.ts). */
  | { kind: "shed"; retryAfterSeconds: number }
  /** Left out of a batch at dispatch: the measured batch latency (ms) would bring it back past the deadline. */
  | { kind: "late"; latencyMs: number };

export interface ModelCallerOptions {
  dispatcher: Dispatcher;
  now?: () => number;
  /** Answers repeated inputs from memory and shares identical calls in flight (absent: disabled). */
  cache?: PredictionCache;
}

export class ModelCaller {
  private readonly now: () => number;

  constructor(private readonly options: ModelCallerOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  /** Whether a replica of the version is connected now. */
  available(model: ModelRef): boolean {
    return this.options.dispatcher.liveReplicaCount(model.name, model.version) > 0;
  }

  /** Asks a model version about one input; never rejects, and settles by the deadline. */
  call(model: ModelRef, inputType: InputType, input: Buffer, deadline: number): Promise<CallOutcome> {
    // A version with no replica has no model to answer for it, cached answers included: Clipper's
    // "No connected models" stays true when a version is scaled to zero.
    if (!this.available(model)) return Promise.resolve({ kind: "unavailable" });
    const { cache } = this.options;
    if (cache) return cache.call(model, inputType, input, deadline, (d) => this.callModel(model, inputType, input, d));
    return this.callModel(model, inputType, input, deadline);
  }

  /**
   * The model call itself: through the version's queue, settled by the deadline. Only `call` starts
   * it, right after its availability check (the cache starts it at once, on the same tick).
   */
  private callModel(model: ModelRef, inputType: InputType, input: Buffer, deadline: number): Promise<CallOutcome> {
    const { dispatcher } = this.options;
    return new Promise<CallOutcome>((resolve) => {
      const task = {
        input,
        inputType,
        deadline,
        enqueuedAt: this.now(),
        settled: false,
        resolve: (r: ModelResult) => {
          if (task.settled) return;
          task.settled = true;
          clearTimeout(timer);
          resolve(outcomeOf(r));
        },
      };
      // The SLO timer answers whatever the model is doing; the queue drops the settled task.
      const timer = setTimeout(() => {
        task.settled = true;
        resolve({ kind: "timeout" });
      }, Math.max(0, deadline - this.now()));
      if (!dispatcher.submit(model.name, model.version, task)) {
        task.settled = true;
        clearTimeout(timer);
        resolve({ kind: "shed", retryAfterSeconds: dispatcher.retryAfterSeconds(model.name, model.version) });
      }
    });
  }
}

function outcomeOf(r: ModelResult): CallOutcome {
  if (r.ok) return { kind: "output", output: r.output, replica: r.replica };
  if ("late" in r) return { kind: "late", latencyMs: r.latencyMs };
  return { kind: "failed", reason: r.reason };
}
