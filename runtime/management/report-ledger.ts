/**
 * Which query log reports the daemon already took, so that a report sent again is stored once
 * (exactly-once delivery; docs/rollouts.md#query-log). A frontend sends one report at a time, each
 * with the next sequence number of its session (a random id it picks at start), and sends one again
 * only with the same bytes, when its kept-alive connection failed before any answer
 * (frontend/management-post.ts): the daemon may have stored it and died, or its answer been lost.
 * So a report whose sequence is not above the session's last taken one is a repeat.
 *
 * The ledger is in memory; the query log store writes each report's id after its records
 * (query-log-store.ts) and gives the ids back here when a restarted daemon reads the segments.
 */
import type { QueryLogReportId } from "../shared/query-log.js";

/** Sessions remembered at most: the least recently heard from go first (a frontend resends within seconds). */
export const MAX_REPORT_SESSIONS = 4096;

export class ReportLedger {
  /** The last sequence taken per session, least recently heard from first. */
  private readonly last = new Map<string, number>();

  constructor(private readonly maxSessions = MAX_REPORT_SESSIONS) {}

  /** Whether the report was already taken. */
  isRepeat(id: QueryLogReportId): boolean {
    const last = this.last.get(id.session);
    return last !== undefined && id.seq <= last;
  }

  /** Records that the report was taken (or an id found on disk): later reports of its session up to its sequence are repeats. */
  taken(id: QueryLogReportId): void {
    const last = this.last.get(id.session);
    this.last.delete(id.session);
    this.last.set(id.session, Math.max(last ?? 0, id.seq));
    if (this.last.size > this.maxSessions) this.last.delete(this.last.keys().next().value!);
  }

  /** Takes the report unless it is a repeat; answers whether it was new. */
  take(id: QueryLogReportId): boolean {
    if (this.isRepeat(id)) return false;
    this.taken(id);
    return true;
  }
}
