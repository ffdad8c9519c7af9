/**
 * One question to one model version: queue the input, and answer with the model's output or why
 * there is none (no replica, deadline passed, model failed). Selection policies and the Open
 * Inference Protocol both ask models through this, so queues, batching and caching are shared.
 */
import type { InputType } from "../shared/input-types.js";
import type { Dispatcher, ModelResult } from "./dispatcher.js";

export interface ModelRef {
  name: string;
  version: string;
}

export type CallOutcome =
  | { kind: "output"; output: string }
  /** The model ran and failed on this input's batch. */
  | { kind: "failed"; reason: string }
  /** The deadline passed before the model answered. */
  | { kind: "timeout" }
  /** No replica of the version is connected. */
  | { kind: "unavailable" };

export interface ModelCallerOptions {
  dispatcher: Dispatcher;
  now?: () => number;
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
    if (!this.available(model)) return Promise.resolve({ kind: "unavailable" });
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
          resolve(r.ok ? { kind: "output", output: r.output } : { kind: "failed", reason: r.reason });
        },
      };
      // The SLO timer answers whatever the model is doing; the queue drops the settled task.
      const timer = setTimeout(() => {
        task.settled = true;
        resolve({ kind: "timeout" });
      }, Math.max(0, deadline - this.now()));
      dispatcher.submit(model.name, model.version, task);
    });
  }
}
