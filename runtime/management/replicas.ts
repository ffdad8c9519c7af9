/**
 * Which model replicas are connected, as the query frontends report them. Liveness data, kept in
 * memory only: each report replaces that frontend's list, and a frontend that has not reported
 * within the TTL is forgotten (it died, or lost its way to us).
 */
import type { ReplicaRecord, ReplicaReport } from "../shared/state.js";

interface FrontendReport {
  replicas: ReplicaRecord[];
  at: number;
}

export class ReplicaRegistry {
  private readonly reports = new Map<string, FrontendReport>();

  constructor(
    private readonly ttlMs: number,
    /** Injected for tests. */
    private readonly now: () => number = Date.now,
  ) {}

  report(report: ReplicaReport): void {
    this.reports.set(report.frontend_id, { replicas: report.replicas, at: this.now() });
    this.prune();
  }

  /** Number of frontends with a live report. */
  get frontends(): number {
    this.prune();
    return this.reports.size;
  }

  /**
   * The union of the live reports, ordered by model name, version and replica id. A replica
   * reported by two frontends (same name, version and replica id) appears once.
   */
  all(): ReplicaRecord[] {
    this.prune();
    const byKey = new Map<string, ReplicaRecord>();
    for (const { replicas } of this.reports.values()) {
      for (const r of replicas) {
        const key = JSON.stringify([r.model_name, r.model_version, r.model_replica_id]);
        if (!byKey.has(key)) byKey.set(key, r);
      }
    }
    const order = (a: string, b: string) => a.localeCompare(b, "en", { numeric: true });
    return [...byKey.values()].sort(
      (a, b) =>
        order(a.model_name, b.model_name) ||
        order(a.model_version, b.model_version) ||
        a.model_replica_id - b.model_replica_id,
    );
  }

  private prune(): void {
    const cutoff = this.now() - this.ttlMs;
    for (const [id, report] of this.reports) {
      if (report.at < cutoff) this.reports.delete(id);
    }
  }
}
