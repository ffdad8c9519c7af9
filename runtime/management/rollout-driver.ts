/**
 * Drives the gated rollouts the state holds (docs/rollouts.md#gated-rollouts): a timer in the daemon
 * looks at each running rollout, judges its step on the new version's shadow figures once the step
 * lasted `step_s` and saw `min_queries` copies, and writes the verdict: the next step, the promotion
 * at the last one, or the rollback with the failed gates as its reason (an event too).
 *
 * Where a step began is kept in memory only: after a restart of the daemon (whose shadow figures
 * start afresh too) the step in force starts over, so it is judged on figures the new daemon saw.
 */
import type { AutoscaleEventInput } from "../shared/autoscaling.js";
import { own } from "../shared/dict.js";
import type { Rollout, RolloutGates, RolloutProgress } from "../shared/rollout.js";
import type { ShadowConfig, ShadowFigures } from "../shared/shadow.js";
import type { ClusterState } from "../shared/state.js";
import type { StateChange } from "../shared/state-delta.js";
import { editModelEntries } from "./model-entries.js";
import type { Change } from "./store.js";
import { endRollout } from "./rollout-state.js";

/** How often the daemon looks at running rollouts. */
export const ROLLOUT_TICK_MS = 250;

export type StepVerdict =
  | { kind: "wait" }
  | { kind: "advance" }
  | { kind: "promote" }
  | { kind: "rollback"; reason: string };

/** Copies that count towards a step's evidence: answered, failed, or timed out (skipped ones were never sent). */
export function judgedCopies(figures: ShadowFigures): number {
  const c = figures.counts;
  return c.agree + c.disagree + c.error + c.timeout;
}

/** The gates `figures` break, one sentence each (empty: every gate holds). */
export function failedGates(gates: RolloutGates, figures: ShadowFigures): string[] {
  const failed: string[] = [];
  const copies = judgedCopies(figures);
  if (gates.max_p99_ms !== undefined) {
    const p99 = figures.shadow_p99_ms;
    if (p99 === null) failed.push(`p99 latency unknown: none of its ${copies} copies answered (gate ${gates.max_p99_ms} ms)`);
    else if (p99 > gates.max_p99_ms) failed.push(`p99 latency ${p99} ms is above the gate of ${gates.max_p99_ms} ms`);
  }
  if (gates.min_agreement !== undefined) {
    const agreement = figures.agreement;
    if (agreement === null) failed.push(`agreement unknown: none of its ${copies} copies answered (gate ${gates.min_agreement})`);
    else if (agreement < gates.min_agreement) failed.push(`agreement ${agreement.toFixed(3)} is below the gate of ${gates.min_agreement}`);
  }
  if (gates.max_default_rate !== undefined && copies > 0) {
    const rate = (figures.counts.error + figures.counts.timeout) / copies;
    if (rate > gates.max_default_rate) failed.push(`default rate ${rate.toFixed(3)} (errors and timeouts) is above the gate of ${gates.max_default_rate}`);
  }
  return failed;
}

/**
 * The verdict on a rollout's step: wait until it lasted `step_s` and saw `min_queries` copies (a
 * quiet step waits for traffic rather than be judged on nothing), then roll back on a failed gate,
 * else go to the next step, which at the last (100%) is the promotion.
 */
export function judgeStep(rollout: Rollout, figures: ShadowFigures, progress: { elapsedMs: number; queries: number }): StepVerdict {
  if (progress.elapsedMs < rollout.step_s * 1000 || progress.queries < rollout.min_queries) return { kind: "wait" };
  const failed = failedGates(rollout.gates, figures);
  const percent = rollout.steps[rollout.step]!;
  if (failed.length > 0) return { kind: "rollback", reason: `gate failed at ${percent}%: ${failed.join("; ")}` };
  return rollout.step + 1 >= rollout.steps.length - 1 ? { kind: "promote" } : { kind: "advance" };
}

export interface RolloutDriverDeps {
  state(): ClusterState;
  /** The store's serialized update (store.ts): the verdicts are written as one durable change. */
  update(change: (current: ClusterState) => Change<AutoscaleEventInput[]>): Promise<AutoscaleEventInput[]>;
  figures(modelName: string, shadow: ShadowConfig): ShadowFigures;
  recordEvent(event: AutoscaleEventInput): void;
  /** Injected for tests (ms). */
  now(): number;
}

interface StepWatch {
  key: string;
  startedAt: number;
  copiesAtStart: number;
}

export class RolloutDriver {
  private readonly watches = new Map<string, StepWatch>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;

  constructor(private readonly deps: RolloutDriverDeps) {}

  /** Looks at the rollouts every `intervalMs` until stop(). */
  start(intervalMs = ROLLOUT_TICK_MS, onError: (err: unknown) => void = () => undefined): void {
    this.timer ??= setInterval(() => {
      // One tick at a time: a slow disk write must not stack them up.
      this.ticking ??= this.tick().catch(onError).finally(() => (this.ticking = undefined));
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
  }

  /** How far a model's running step has got, as the daemon saw it; null when it watches none. */
  progress(modelName: string): RolloutProgress | null {
    const rollout = own(this.deps.state().rollouts, modelName);
    const watch = this.watches.get(modelName);
    const shadow = own(this.deps.state().shadows, modelName);
    if (!rollout || rollout.phase !== "running" || !shadow || !watch || watch.key !== stepKey(rollout, shadow)) return null;
    return {
      step_elapsed_s: Math.max(0, (this.deps.now() - watch.startedAt) / 1000),
      step_queries: Math.max(0, judgedCopies(this.deps.figures(modelName, shadow)) - watch.copiesAtStart),
    };
  }

  /** Judges every running rollout once and writes the verdicts (one durable change); records their events. */
  async tick(): Promise<void> {
    const running = Object.entries(this.deps.state().rollouts ?? {}).filter(([, r]) => r.phase === "running");
    for (const name of this.watches.keys()) if (!running.some(([n]) => n === name)) this.watches.delete(name);
    if (running.length === 0) return;
    const events = await this.deps.update((state) => {
      const changes: StateChange[] = [];
      const events: AutoscaleEventInput[] = [];
      for (const [name, rollout] of Object.entries(state.rollouts ?? {})) {
        if (rollout.phase !== "running") continue;
        const verdict = this.verdictFor(state, name, rollout);
        if (verdict.kind === "wait") continue;
        // Only this model's records change: no copy of the rest of the state.
        const edited = editModelEntries(state, name, (next) => verdict.kind === "advance"
          ? advance(next, name, rollout)
          : verdict.kind === "promote"
            ? endRollout(next, name, "promoted", `every gate held through ${rollout.steps.slice(0, -1).map((s) => `${s}%`).join(", ")}`)
            : endRollout(next, name, "rolled_back", verdict.reason));
        changes.push(...edited.changes);
        if (edited.result) events.push(edited.result);
      }
      return { changes, result: events };
    });
    for (const event of events) this.deps.recordEvent(event);
  }

  private verdictFor(state: ClusterState, name: string, rollout: Rollout): StepVerdict {
    const shadow = own(state.shadows, name);
    // set_shadow refuses to touch a rollout's shadow; should it be gone anyway, there is no evidence.
    if (!shadow || shadow.model_version !== rollout.to_version) return { kind: "rollback", reason: "its shadow comparison ended" };
    const figures = this.deps.figures(name, shadow);
    const copies = judgedCopies(figures);
    const key = stepKey(rollout, shadow);
    let watch = this.watches.get(name);
    // A new step, or figures that started afresh (a new shadow setting): the step's clock starts now.
    if (!watch || watch.key !== key || copies < watch.copiesAtStart) {
      watch = { key, startedAt: this.deps.now(), copiesAtStart: copies };
      this.watches.set(name, watch);
    }
    return judgeStep(rollout, figures, { elapsedMs: this.deps.now() - watch.startedAt, queries: copies - watch.copiesAtStart });
  }
}

function advance(state: ClusterState, name: string, rollout: Rollout): AutoscaleEventInput {
  const from = rollout.steps[rollout.step]!;
  const to = rollout.steps[rollout.step + 1]!;
  state.rollouts![name] = { ...rollout, step: rollout.step + 1 };
  return { kind: "rollout_step", model_name: name, model_version: rollout.to_version, from, to, reason: `every gate held at ${from}%` };
}

/** A step of one rollout: a rollout started again is another one (its shadow setting has another revision). */
function stepKey(rollout: Rollout, shadow: ShadowConfig): string {
  return JSON.stringify([shadow.since_revision, rollout.to_version, rollout.step]);
}
