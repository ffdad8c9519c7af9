/**
 * The daemon's autoscaler event log: the last few hundred events (decisions of the controller and
 * configuration changes), in memory only. Bounded so that a flapping model or a storm of admin
 * writes cannot grow the daemon; readers page by sequence number and learn how many they missed.
 */
import type { AutoscaleEvent, AutoscaleEventInput, AutoscaleEventPage } from "../shared/autoscaling.js";

export const DEFAULT_EVENT_LOG_CAPACITY = 500;

export class AutoscaleEventLog {
  private readonly events: AutoscaleEvent[] = [];
  private nextSeq = 1;

  constructor(
    readonly capacity = DEFAULT_EVENT_LOG_CAPACITY,
    /** Injected for tests. */
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a whole number ≥ 1, got ${capacity}`);
  }

  record(input: AutoscaleEventInput): AutoscaleEvent {
    const event: AutoscaleEvent = { seq: this.nextSeq++, at: new Date(this.now()).toISOString(), ...input };
    this.events.push(event);
    if (this.events.length > this.capacity) this.events.shift();
    return event;
  }

  /**
   * Events with seq > since, oldest first, at most `limit` of them. A `since` this log never
   * reached comes from a reader of an earlier daemon instance: it reads from the start.
   */
  page(requested = 0, limit = this.capacity): AutoscaleEventPage {
    const since = requested >= this.nextSeq ? 0 : requested;
    const oldest = this.events[0]?.seq ?? this.nextSeq;
    // Everything between the reader's position and the oldest event kept was dropped by the bound.
    const missed = Math.max(0, oldest - 1 - since);
    const events = this.events.filter((e) => e.seq > since).slice(0, Math.max(0, limit));
    const last = events.at(-1)?.seq;
    return { events, next_seq: last ?? Math.max(since, oldest - 1), missed };
  }
}
