/**
 * The batches one replica has been sent and has not answered yet, up to a limit (pipelining, see
 * dispatcher.ts). With more than one, the replica finds its next batch already waiting in its
 * socket when it finishes one, instead of idling for the round trip through the frontend.
 *
 * A replica serves its batches one at a time, in the order they were sent (RPC v3 over one DEALER
 * socket; Clipper's containers read one message at a time), so a batch sent behind another only
 * starts when the one before it is answered. Its SERVICE time is therefore measured from
 * max(sent, previous answer on this replica) to its own answer: the send-to-answer time would count
 * the wait behind the batch ahead, and the AIMD controller would shrink batches for time the model
 * did not spend on them. Answers are matched to their batch by message id, wherever the batch is in
 * the list, so a runtime that answers out of order is still served correctly.
 */

export interface SentBatch<T> {
  readonly msgId: number;
  readonly tasks: T[];
  /** When it was sent (the dispatcher's clock, ms). */
  readonly sentAt: number;
  /** The replica's batch cap when it was formed (AIMD judges whether it was full against it). */
  readonly cap: number;
}

export interface AnsweredBatch<T> extends SentBatch<T> {
  /** From when the replica could start on it (sent, or the previous answer if later) to its answer (ms). */
  readonly serviceMs: number;
}

/** The limit itself, when it is an integer ≥ 1; a RangeError otherwise. */
export function checkInFlightLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`the batches in flight per replica must be an integer ≥ 1, not ${limit}`);
  return limit;
}

export class InFlightBatches<T> {
  private readonly batches: Array<SentBatch<T>> = [];
  /** When the replica last answered a batch (the dispatcher's clock, ms). */
  private lastAnswerAt = -Infinity;

  constructor(readonly limit: number) {
    checkInFlightLimit(limit);
  }

  get size(): number {
    return this.batches.length;
  }

  /** Whether the replica may be sent another batch now. */
  get full(): boolean {
    return this.batches.length >= this.limit;
  }

  add(batch: SentBatch<T>): void {
    this.batches.push(batch);
  }

  /** The batch with this message id, if it is in flight here. */
  find(msgId: number): SentBatch<T> | undefined {
    return this.batches.find((b) => b.msgId === msgId);
  }

  /** Takes the answered batch out, with its service time; undefined when no such batch is in flight. */
  answer(msgId: number, now: number): AnsweredBatch<T> | undefined {
    const i = this.batches.findIndex((b) => b.msgId === msgId);
    if (i < 0) return undefined;
    const [batch] = this.batches.splice(i, 1);
    const startedAt = Math.max(batch!.sentAt, this.lastAnswerAt);
    this.lastAnswerAt = Math.max(this.lastAnswerAt, now);
    return { ...batch!, serviceMs: Math.max(0, now - startedAt) };
  }

  /** Takes every batch out (the replica is gone), oldest first. */
  takeAll(): Array<SentBatch<T>> {
    return this.batches.splice(0);
  }

  /** When the replica began on the batch it is serving now; undefined when it has none. */
  get busySince(): number | undefined {
    const head = this.batches[0];
    return head === undefined ? undefined : Math.max(head.sentAt, this.lastAnswerAt);
  }

  /**
   * When a batch sent now should be started on: now when the replica has none, else after the ones
   * in flight, each taking `latencyMs` (the measured service time) from when the first began.
   */
  startsAt(now: number, latencyMs: number): number {
    const since = this.busySince;
    return since === undefined ? now : Math.max(now, since + this.batches.length * latencyMs);
  }
}
