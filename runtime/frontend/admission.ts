/**
 * Deadline-aware admission: under overload, a query that cannot be answered by its deadline, given
 * the work queued ahead of it and the measured batch latency, is refused at once (the caller answers
 * it with the default output, or 503 where the application asks for that), so the model's capacity
 * goes to queries that can still succeed. Without it a queue past its capacity answers almost nothing
 * in time: every query waits behind ones that will miss their deadline anyway.
 *
 * The estimate for a new query, at submit time:
 *
 *   completion = now + firstFree + (rounds + 1) × latency + 2 × jitter × √(rounds + 1),
 *   rounds = floor(ahead / Σ caps)
 *
 * - `ahead`: queued live queries with an earlier or equal deadline (they are served first: the queue
 *   is earliest-deadline-first);
 * - `Σ caps`: what one round of batches takes off the queue, over the live replicas;
 * - `latency`: the model version's measured batch latency, an EWMA of send-to-response times that
 *   ages (LatencyEstimate: a sample from a minute ago counts less than one from now);
 * - `jitter`: the EWMA of their mean absolute deviation. The padding is twice the spread of a sum of
 *   rounds + 1 independent batch times (it grows with the square root of their number, as TCP's
 *   retransmission timer pads one round trip by its deviation). With a steady model it is ~0; with a
 *   jittery one (a loaded machine, a garbage-collecting runtime) the mean alone is optimistic and the
 *   queries admitted last — those with the least slack — would miss their deadline about half the
 *   time, while padding every round by the full deviation refuses queries that would have made it;
 * - `firstFree`: 0 when a replica is free, else until the soonest a replica should be done with the
 *   batches it has in flight (pipelining: each after the one before it, from when the first began);
 * - the last `latency` is the query's own batch.
 *
 * Refused only when that is past the deadline. Never refused without a latency estimate, without a
 * replica (the caller answers that case), or when a replica is idle and nothing is queued ahead: idle
 * capacity is taken from nobody, and that query refreshes an estimate that may be stale (a cold first
 * batch must not shed a model's traffic forever). The dispatcher keeps the same promise when it forms
 * a batch (dispatcher.ts): a free replica always gets at least the queued query with the most slack,
 * even when the estimate says it will be late, so the estimate keeps learning.
 */

/** One live replica as admission sees it. */
export interface ReplicaLoad {
  /** Its current batch cap. */
  cap: number;
  /** When it began on the batch it is serving (the dispatcher's clock, ms); undefined when it is free. */
  busySince?: number;
  /** Batches it has been sent and has not answered, that one included (default 1 when busy). */
  batchesInFlight?: number;
}

export interface AdmissionView {
  now: number;
  /** Measured mean batch latency (ms), or undefined before the first answered batch. */
  latencyMs: number | undefined;
  /** Mean absolute deviation of the batch latency (ms); 0 when unknown. */
  jitterMs?: number;
  /** Live queued tasks that would be served before the new one. */
  ahead: number;
  replicas: readonly ReplicaLoad[];
}

/** When a new task would be answered (ms, the dispatcher's clock), or undefined when unknown. */
export function estimateCompletion(view: AdmissionView): number | undefined {
  const { now, latencyMs, ahead, replicas } = view;
  if (latencyMs === undefined || replicas.length === 0) return undefined;
  const perRound = replicas.reduce((sum, r) => sum + Math.max(1, r.cap), 0);
  const batches = Math.floor(ahead / perRound) + 1;
  return now + firstFreeIn(view) + batches * latencyMs + 2 * (view.jitterMs ?? 0) * Math.sqrt(batches);
}

/** Whether a task with this deadline should be queued. */
export function admits(view: AdmissionView, deadline: number): boolean {
  if (view.ahead === 0 && view.replicas.some((r) => r.busySince === undefined)) return true;
  const completion = estimateCompletion(view);
  return completion === undefined || completion <= deadline;
}

/**
 * A Retry-After for a refused query (whole seconds, at least 1): about when the work queued now
 * (`ahead` counting the whole live queue) will have drained.
 */
export function retryAfterSeconds(view: AdmissionView): number {
  const { latencyMs, ahead, replicas } = view;
  if (latencyMs === undefined || replicas.length === 0) return 1;
  const perRound = replicas.reduce((sum, r) => sum + Math.max(1, r.cap), 0);
  const ms = firstFreeIn(view) + Math.ceil(ahead / perRound) * latencyMs;
  return Math.max(1, Math.ceil(ms / 1000));
}

function firstFreeIn({ now, latencyMs, replicas }: AdmissionView): number {
  const latency = latencyMs ?? 0;
  let soonest = Infinity;
  for (const r of replicas) {
    const left = r.busySince === undefined ? 0 : Math.max(0, r.busySince + Math.max(1, r.batchesInFlight ?? 1) * latency - now);
    soonest = Math.min(soonest, left);
  }
  return soonest === Infinity ? 0 : soonest;
}

/** How fast an old batch latency loses weight against a new one (ms; see LatencyEstimate). */
export const DEFAULT_LATENCY_HALF_LIFE_MS = 10_000;

/**
 * Batch latencies as exponentially weighted moving averages of the mean and of the mean absolute
 * deviation from it. The first sample is taken as the mean, with no deviation yet.
 *
 * The averages age: the weight of what was learned before a sample halves every `halfLifeMs` between
 * it and the sample before (the dispatcher's clock), on top of the usual (1 − alpha). A model whose
 * cost changed while it got little traffic (a cold first batch, a burst of slow inputs long ago) is
 * judged by what it does now, not by a minute-old number; under steady traffic samples are close
 * together and this is the plain EWMA.
 */
export class LatencyEstimate {
  private mean: number | undefined;
  private deviation = 0;
  private lastAt: number | undefined;

  constructor(private readonly alpha = 0.2, private readonly halfLifeMs = DEFAULT_LATENCY_HALF_LIFE_MS) {
    if (!(alpha > 0 && alpha <= 1)) throw new RangeError(`alpha must be in (0, 1], not ${alpha}`);
    if (!(halfLifeMs > 0)) throw new RangeError(`halfLifeMs must be positive, not ${halfLifeMs}`);
  }

  /** The mean, or undefined before the first sample. */
  get ms(): number | undefined {
    return this.mean;
  }

  get deviationMs(): number {
    return this.deviation;
  }

  /** What admission plans with: the mean plus twice the deviation. */
  get paddedMs(): number | undefined {
    return this.mean === undefined ? undefined : this.mean + 2 * this.deviation;
  }

  /** Feeds one batch latency (ms) measured at `at` (the dispatcher's clock, ms). */
  observe(ms: number, at: number): void {
    const since = this.lastAt === undefined ? 0 : Math.max(0, at - this.lastAt);
    this.lastAt = Math.max(at, this.lastAt ?? at);
    if (this.mean === undefined) {
      this.mean = ms;
      return;
    }
    const kept = (1 - this.alpha) * 2 ** (-since / this.halfLifeMs);
    this.deviation = (1 - kept) * Math.abs(ms - this.mean) + kept * this.deviation;
    this.mean = (1 - kept) * ms + kept * this.mean;
  }
}
