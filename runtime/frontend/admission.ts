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
 * - `latency`: the model version's measured batch latency, an EWMA of send-to-response times;
 * - `jitter`: the EWMA of their mean absolute deviation. The padding is twice the spread of a sum of
 *   rounds + 1 independent batch times (it grows with the square root of their number, as TCP's
 *   retransmission timer pads one round trip by its deviation). With a steady model it is ~0; with a
 *   jittery one (a loaded machine, a garbage-collecting runtime) the mean alone is optimistic and the
 *   queries admitted last — those with the least slack — would miss their deadline about half the
 *   time, while padding every round by the full deviation refuses queries that would have made it;
 * - `firstFree`: 0 when a replica is free, else until the earliest in-flight batch should be back;
 * - the last `latency` is the query's own batch.
 *
 * Refused only when that is past the deadline. Never refused without a latency estimate, without a
 * replica (the caller answers that case), or when a replica is idle and nothing is queued ahead: idle
 * capacity is taken from nobody, and that query refreshes an estimate that may be stale (a cold first
 * batch must not shed a model's traffic forever).
 */

/** One live replica as admission sees it. */
export interface ReplicaLoad {
  /** Its current batch cap. */
  cap: number;
  /** When its batch in flight was sent (the dispatcher's clock, ms); undefined when it is free. */
  busySince?: number;
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
    const left = r.busySince === undefined ? 0 : Math.max(0, r.busySince + latency - now);
    soonest = Math.min(soonest, left);
  }
  return soonest === Infinity ? 0 : soonest;
}

/**
 * Batch latencies as exponentially weighted moving averages of the mean and of the mean absolute
 * deviation from it. The first sample is taken as the mean, with no deviation yet.
 */
export class LatencyEstimate {
  private mean: number | undefined;
  private deviation = 0;

  constructor(private readonly alpha = 0.2) {
    if (!(alpha > 0 && alpha <= 1)) throw new RangeError(`alpha must be in (0, 1], not ${alpha}`);
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

  observe(ms: number): void {
    if (this.mean === undefined) {
      this.mean = ms;
      return;
    }
    this.deviation = this.alpha * Math.abs(ms - this.mean) + (1 - this.alpha) * this.deviation;
    this.mean = this.alpha * ms + (1 - this.alpha) * this.mean;
  }
}
