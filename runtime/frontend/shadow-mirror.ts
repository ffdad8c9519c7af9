/**
 * Shadow versions on the query path (docs/rollouts.md): when the current version of a model with a
 * shadow has answered a live query, a sampled copy of the input goes to the shadow version, and the
 * two outputs are compared (shadow-recorder.ts counts and reports the outcome).
 *
 * The live answer never waits for the copy: the copy is only decided on (a draw and a counter) once
 * the live outcome is known, and sent on a later turn of the event loop (`defer`), after the live
 * answer went its way. Copies in flight are bounded per frontend: a slow or stuck shadow must not
 * pile up queries, memory and sockets behind the live traffic, so beyond the bound a copy is skipped
 * and counted as such.
 */
import { own } from "../shared/dict.js";
import type { InputType } from "../shared/input-types.js";
import { DEFAULT_MAX_SHADOW_IN_FLIGHT, type ShadowConfig, type ShadowOutcome } from "../shared/shadow.js";
import type { ClusterState } from "../shared/state.js";
import type { CallOutcome, ModelRef } from "./model-caller.js";

/** Where the outcome of each copy goes (ShadowRecorder). */
export interface ShadowSink {
  /** `shadowMs` and `liveMs` only for a copy that was answered (agree, disagree). */
  record(shadow: ModelRef, sinceRevision: number, outcome: ShadowOutcome, latency?: { shadowMs: number; liveMs: number }): void;
}

export interface ShadowMirrorOptions {
  /** The configuration the daemon published last (its shadows and current versions). */
  state(): Pick<ClusterState, "models" | "shadows"> | undefined;
  /** Asks a version, as the model caller does, without mirroring. */
  call(model: ModelRef, inputType: InputType, input: Buffer, deadline: number): Promise<CallOutcome>;
  sink: ShadowSink;
  now?: () => number;
  /** Uniform in [0, 1): the percent sampling's draw. */
  random?: () => number;
  /** Copies in flight at most (default DEFAULT_MAX_SHADOW_IN_FLIGHT). */
  maxInFlight?: number;
  /** Runs a copy after the live answer has gone its way (default setImmediate). */
  defer?: (run: () => void) => void;
}

/** How a copy's outcome compares with the live output it was made of. */
export function compareWithLive(liveOutput: string, shadow: CallOutcome): ShadowOutcome {
  if (shadow.kind === "output") return shadow.output === liveOutput ? "agree" : "disagree";
  return shadow.kind === "timeout" ? "timeout" : "error";
}

export class ShadowMirror {
  private inFlight = 0;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly defer: (run: () => void) => void;
  private readonly maxInFlight: number;

  constructor(private readonly options: ShadowMirrorOptions) {
    this.now = options.now ?? (() => performance.now());
    this.random = options.random ?? Math.random;
    this.defer = options.defer ?? ((run) => setImmediate(run));
    this.maxInFlight = options.maxInFlight ?? DEFAULT_MAX_SHADOW_IN_FLIGHT;
  }

  /** Copies in flight now. */
  get pending(): number {
    return this.inFlight;
  }

  /**
   * The shadow of `model` when it is its model's current version and has one that takes the same
   * input type (the daemon refuses another when the shadow is set, but an unlinked model's current
   * version may later change to one of another type);
   * undefined otherwise (the usual, cheap case).
   */
  shadowOf(model: ModelRef): ShadowConfig | undefined {
    const state = this.options.state();
    if (state?.shadows === undefined) return undefined;
    const shadow = own(state.shadows, model.name);
    const record = own(state.models, model.name);
    if (!shadow || record?.current_version !== model.version) return undefined;
    const types = [model.version, shadow.model_version].map((v) => own(record.versions, v)?.input_type);
    return types[0] !== undefined && types[0] === types[1] ? shadow : undefined;
  }

  /**
   * The live call to `model` (its current version, with `shadow`) ended with `live` after `liveMs`;
   * `budgetMs` is what its deadline left it. Copies the query to the shadow when the live call
   * answered and the draw says so. Never throws and returns at once.
   */
  mirror(model: ModelRef, shadow: ShadowConfig, inputType: InputType, input: Buffer, live: CallOutcome, liveMs: number, budgetMs: number): void {
    // Only answers are compared: a live default output has nothing to agree with.
    if (live.kind !== "output") return;
    if (shadow.percent < 100 && this.random() * 100 >= shadow.percent) return;
    const target: ModelRef = { name: model.name, version: shadow.model_version };
    const { sink } = this.options;
    if (this.inFlight >= this.maxInFlight) {
      sink.record(target, shadow.since_revision, "skipped");
      return;
    }
    this.inFlight++;
    const liveOutput = live.output;
    this.defer(() => {
      const started = this.now();
      // The same time budget as the live call had: a shadow slower than the SLO shows as timeouts.
      this.options.call(target, inputType, input, started + Math.max(0, budgetMs)).then(
        (outcome) => {
          this.inFlight--;
          const compared = compareWithLive(liveOutput, outcome);
          const answered = compared === "agree" || compared === "disagree";
          sink.record(target, shadow.since_revision, compared, answered ? { shadowMs: this.now() - started, liveMs } : undefined);
        },
        () => {
          // The caller never rejects; should it, the copy is an error, and the bound stays true.
          this.inFlight--;
          sink.record(target, shadow.since_revision, "error");
        },
      );
    });
  }
}
