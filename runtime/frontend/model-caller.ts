/**
 * One question to one model version: queue the input, and answer with the model's output or why
 * there is none (no replica, deadline passed, model failed). Selection policies and the Open
 * Inference Protocol both ask models through this, so queues, batching and caching are shared.
 *
 * Scale from zero (docs/autoscaling.md): a version with no connected replica is answered "no
 * connected models" at once, unless it is autoscaled with `min 0`. Then the query waits in the
 * version's queue — where the live stats count it, so the autoscaler sees a version at zero asked
 * for and starts a replica — and is served when one connects; if none is connected by its deadline
 * it is answered `cold_start`. The queries waiting so are bounded (`maxWaitingForFirstReplica`):
 * with no replica, admission has no batch latency to refuse on, and a storm on a cold version must
 * not grow the queue without end. Such a version still answers a repeated input from the prediction
 * cache: the answer is the model's own for that exact version, whether a replica runs or not.
 */
import type { InputType } from "../shared/input-types.js";
import { modelKey, type DispatchTimers, type Dispatcher, type ModelResult } from "./dispatcher.js";
import type { PredictionCache } from "./prediction-cache.js";
import type { ShadowMirror } from "./shadow-mirror.js";

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
  | { kind: "late"; latencyMs: number }
  /** Waited for the first replica of a version scaled to zero (`model`: "name:version"); none was connected by the deadline. */
  | { kind: "cold_start"; model: string };

/** Queries one version at zero may hold waiting for its first replica, unless configured. */
export const DEFAULT_MAX_WAITING_FOR_FIRST_REPLICA = 1_024;

const systemTimers: DispatchTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface ModelCallerOptions {
  dispatcher: Dispatcher;
  now?: () => number;
  /** Answers repeated inputs from memory and shares identical calls in flight (absent: disabled). */
  cache?: PredictionCache;
  /** Whether a version may scale to zero, so a query finding no replica waits for one (absent: none may). */
  scalesFromZero?: (model: ModelRef) => boolean;
  /** Queries one version at zero may hold waiting (default DEFAULT_MAX_WAITING_FOR_FIRST_REPLICA). */
  maxWaitingForFirstReplica?: number;
  /** The SLO timers, injectable so tests run on a fake clock (default: the system's). */
  timers?: DispatchTimers;
  /** A query began waiting for the first replica of a version at zero that had none waiting (the live stats report it early). */
  firstWaiting?: (model: ModelRef) => void;
  /** Copies answers of a model's current version to its shadow version, if it has one (absent: none are). */
  shadows?: Pick<ShadowMirror, "shadowOf" | "mirror">;
}

export class ModelCaller {
  private readonly now: () => number;
  private readonly timers: DispatchTimers;

  constructor(private readonly options: ModelCallerOptions) {
    this.now = options.now ?? (() => performance.now());
    this.timers = options.timers ?? systemTimers;
  }

  /** Whether a replica of the version is connected now. */
  available(model: ModelRef): boolean {
    return this.options.dispatcher.liveReplicaCount(model.name, model.version) > 0;
  }

  /** Whether a query for the version would be served or wait for a replica (not answered "unavailable"). */
  servable(model: ModelRef): boolean {
    return this.available(model) || this.options.scalesFromZero?.(model) === true;
  }

  /**
   * Asks a model version about one input; never rejects, and settles by the deadline. When the
   * version is its model's current one and the model has a shadow, the answer is also handed to the
   * shadow mirror, which copies the query later (the live answer never waits for the copy).
   */
  call(model: ModelRef, inputType: InputType, input: Buffer, deadline: number): Promise<CallOutcome> {
    const shadow = this.options.shadows?.shadowOf(model);
    if (!shadow) return this.callWithoutShadow(model, inputType, input, deadline);
    const started = this.now();
    return this.callWithoutShadow(model, inputType, input, deadline).then((outcome) => {
      this.options.shadows!.mirror(model, shadow, inputType, input, outcome, this.now() - started, deadline - started);
      return outcome;
    });
  }

  /** `call` with no copy to a shadow: how the shadow mirror asks the shadow version itself. */
  callWithoutShadow(model: ModelRef, inputType: InputType, input: Buffer, deadline: number): Promise<CallOutcome> {
    if (this.available(model)) return this.viaCache(model, inputType, input, deadline);
    // A version with no replica has no model to answer for it, cached answers included: Clipper's
    // "No connected models" stays true when a version that does not scale from zero has none.
    if (this.options.scalesFromZero?.(model) !== true) return Promise.resolve({ kind: "unavailable" });
    return this.waitForFirstReplica(model, inputType, input, deadline);
  }

  /** A query for a version at zero: queued (bounded) until a replica connects or the deadline passes. */
  private async waitForFirstReplica(model: ModelRef, inputType: InputType, input: Buffer, deadline: number): Promise<CallOutcome> {
    const { dispatcher } = this.options;
    const bound = this.options.maxWaitingForFirstReplica ?? DEFAULT_MAX_WAITING_FOR_FIRST_REPLICA;
    const waiting = dispatcher.queueDepth(model.name, model.version);
    if (waiting >= bound) {
      return { kind: "shed", retryAfterSeconds: dispatcher.retryAfterSeconds(model.name, model.version) };
    }
    const call = this.viaCache(model, inputType, input, deadline);
    if (waiting === 0) this.options.firstWaiting?.(model);
    const outcome = await call;
    // A deadline that passed with a replica connected is an SLO missed like any other; with none
    // connected (none came, or the one that came is gone again) the version is still starting.
    return outcome.kind === "timeout" && !this.available(model) ? { kind: "cold_start", model: modelKey(model.name, model.version) } : outcome;
  }

  /**
   * What `call` would answer at once from the prediction cache, else undefined (ask `call`). Only
   * for a connected version: one at zero goes through its bounded wait first (waitForFirstReplica).
   * A cached answer of a shadowed current version is copied to the shadow as `call` does (`deadline`
   * gives the copy its time budget).
   */
  cachedOutcome(model: ModelRef, inputType: InputType, input: Buffer, deadline: number): CallOutcome | undefined {
    const { cache } = this.options;
    const outcome = cache && this.available(model) ? cache.lookup(model, inputType, input) : undefined;
    if (outcome) {
      const shadow = this.options.shadows?.shadowOf(model);
      if (shadow) this.options.shadows!.mirror(model, shadow, inputType, input, outcome, 0, deadline - this.now());
    }
    return outcome;
  }

  private viaCache(model: ModelRef, inputType: InputType, input: Buffer, deadline: number): Promise<CallOutcome> {
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
          this.timers.clearTimeout(timer);
          resolve(outcomeOf(r));
        },
      };
      /** Set when admission refuses the task: what the SLO timer answers instead of a timeout. */
      let refused: CallOutcome | undefined;
      // The SLO timer answers whatever the model is doing; the queue drops the settled task.
      const timer = this.timers.setTimeout(() => {
        task.settled = true;
        resolve(refused ?? { kind: "timeout" });
      }, Math.max(0, deadline - this.now()));
      if (!dispatcher.submit(model.name, model.version, task)) {
        // A refusal is answered at the deadline, as Clipper answered every default, not at once: a
        // closed-loop client asks again as soon as it has an answer, and instant refusals let a few
        // dozen of them take the machine's CPU from the model they are waiting for (a retry storm,
        // docs/bench/storm.md). At the deadline each client asks at most once per SLO.
        task.settled = true;
        refused = { kind: "shed", retryAfterSeconds: dispatcher.retryAfterSeconds(model.name, model.version) };
      }
    });
  }
}

function outcomeOf(r: ModelResult): CallOutcome {
  if (r.ok) return { kind: "output", output: r.output, replica: r.replica };
  if ("late" in r) return { kind: "late", latencyMs: r.latencyMs };
  return { kind: "failed", reason: r.reason };
}
