/**
 * Latency-aware adaptive batching: one AIMD controller per replica decides how many queries the
 * replica's next batch may hold (its cap).
 *
 * - A batch answered within the model's latency budget, and sent full (size = cap), raises the cap by
 *   a step (additive increase). A batch that was not full says nothing about a larger one, so it leaves
 *   the cap alone: a slow trickle of queries cannot push the cap up on tiny batches. "Full" is against
 *   the cap the batch was sent with: with batches pipelined (dispatcher.ts), the one behind was formed
 *   before the answer ahead of it raised the cap, and is no less full for that.
 * - A batch answered over the budget lowers the cap by 10%: cap = max(1, floor(cap × 0.9))
 *   (multiplicative decrease), whatever its size.
 * - A model version with a fixed `batch_size` (> 0) pins the cap there: no adaptation, never more.
 * - The cap never passes `maxCap` (the frontend's `--max-batch`).
 *
 * The controller holds no clock and no timers: it is a function of the (size, latency) observations
 * the dispatcher feeds it, measured with the dispatcher's injectable clock. That keeps it pure for
 * tests (simulate latency = a + b·n and watch the cap settle).
 *
 * The budget. A query that arrives just after a replica took a batch waits for that batch to come
 * back, then rides in the next one: up to two batch latencies end to end, plus the network and the
 * frontend's own time. So a model's budget is a fraction of the tightest SLO among the applications
 * linked to it, half by default (`budgetFraction` 0.5); a model no application links (asked directly,
 * e.g. over the Open Inference Protocol) gets `defaultBudgetMs`.
 */
import { own } from "../shared/dict.js";
import type { ClusterState, ModelVersionRecord } from "../shared/state.js";

export interface BatchControllerOptions {
  /** Largest batch latency (send to response, ms) the cap may grow under. */
  budgetMs: number;
  /** Upper bound on an adaptive cap. */
  maxCap: number;
  /** The model version's fixed batch size: > 0 pins the cap; -1 (or absent) lets it adapt. */
  fixedBatchSize?: number;
  /** Additive increase per full batch under budget (default 1). */
  step?: number;
  /** Multiplicative decrease factor on a batch over budget (default 0.9). */
  backoff?: number;
  /** The cap a new replica starts at (default 1). */
  initialCap?: number;
}

export const DEFAULT_BACKOFF = 0.9;

export class BatchController {
  private budget: number;
  private maxCap: number;
  private fixed: number | undefined;
  private readonly step: number;
  private readonly backoff: number;
  private current: number;

  constructor(options: BatchControllerOptions) {
    this.budget = options.budgetMs;
    this.maxCap = Math.max(1, Math.floor(options.maxCap));
    this.fixed = positive(options.fixedBatchSize);
    this.step = Math.max(1, Math.floor(options.step ?? 1));
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    if (!(this.backoff > 0 && this.backoff < 1)) throw new RangeError(`backoff must be in (0, 1), not ${this.backoff}`);
    this.current = Math.min(this.maxCap, Math.max(1, Math.floor(options.initialCap ?? 1)));
  }

  /** How many queries the next batch may hold. */
  get cap(): number {
    return this.fixed ?? this.current;
  }

  /** Whether the cap adapts (no fixed batch size). */
  get adaptive(): boolean {
    return this.fixed === undefined;
  }

  get budgetMs(): number {
    return this.budget;
  }

  /**
   * Feeds back one answered batch: how many queries it held, how long the model took (ms), and the
   * cap it was sent with (default: the cap now).
   */
  observe(batchSize: number, latencyMs: number, capAtSend = this.current): void {
    if (this.fixed !== undefined) return;
    if (latencyMs > this.budget) {
      // The epsilon keeps floor(10 × 0.9) at 9 despite binary fractions.
      this.current = Math.max(1, Math.floor(this.current * this.backoff + 1e-9));
    } else if (batchSize >= Math.min(capAtSend, this.current)) {
      this.current = Math.min(this.maxCap, this.current + this.step);
    }
  }

  /** Applies a configuration change; an adaptive cap keeps what it learned (within the new bounds). */
  configure(options: { budgetMs?: number; fixedBatchSize?: number; maxCap?: number }): void {
    if (options.budgetMs !== undefined) this.budget = options.budgetMs;
    if (options.maxCap !== undefined) this.maxCap = Math.max(1, Math.floor(options.maxCap));
    if ("fixedBatchSize" in options) this.fixed = positive(options.fixedBatchSize);
    this.current = Math.min(this.current, this.maxCap);
  }
}

function positive(n: number | undefined): number | undefined {
  return n !== undefined && Number.isInteger(n) && n > 0 ? n : undefined;
}

/** How a model version is batched, from the configuration. */
export interface ModelBatchConfig {
  /** A fixed batch size (> 0), or -1 for an adaptive cap. */
  batchSize: number;
  /** How long a free replica may hold a batch smaller than its cap to fill it (µs; 0: never). */
  batchWaitMicros: number;
  /** The latency budget of one batch (ms). */
  budgetMs: number;
}

export interface BatchBudgetDefaults {
  /** Budget of a model version no application links (ms). */
  defaultBudgetMs: number;
  /** Share of the tightest linked SLO a batch may take (default 0.5; see the file comment). */
  budgetFraction?: number;
}

export const DEFAULT_BUDGET_FRACTION = 0.5;

/** The batching configuration of one model version in a configuration snapshot (walks every application). */
export function modelBatchConfig(
  state: ClusterState | undefined,
  name: string,
  version: string,
  defaults: BatchBudgetDefaults,
): ModelBatchConfig {
  let tightestSloMicros: number | undefined;
  for (const app of Object.values(state?.applications ?? {})) {
    if (!app.linked_models.includes(name)) continue;
    tightestSloMicros = Math.min(tightestSloMicros ?? Infinity, app.latency_slo_micros);
  }
  return batchConfig(own(own(state?.models, name)?.versions, version), tightestSloMicros, defaults);
}

/**
 * The batching configuration of a version record, given the tightest SLO among the applications
 * linking its model (µs; undefined: none links it). The frontend keeps that SLO indexed (frontend-config.ts).
 */
export function batchConfig(
  record: ModelVersionRecord | undefined,
  tightestSloMicros: number | undefined,
  defaults: BatchBudgetDefaults,
): ModelBatchConfig {
  const fraction = defaults.budgetFraction ?? DEFAULT_BUDGET_FRACTION;
  return {
    batchSize: record?.batch_size ?? -1,
    batchWaitMicros: record?.batch_wait_micros ?? 0,
    budgetMs: tightestSloMicros === undefined ? defaults.defaultBudgetMs : (tightestSloMicros / 1000) * fraction,
  };
}
