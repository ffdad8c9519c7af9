/**
 * Which model replicas are connected, and which state revision each query frontend has applied,
 * as the frontends report them. Liveness data, kept in memory only: each report replaces that
 * frontend's entry, a frontend that says it is leaving is dropped at once, and one that has not
 * reported within the TTL is forgotten (it died, or lost its way to us).
 */
import type { AppliedRevision, AppliedRevisions, ReplicaRecord, ReplicaReport } from "../shared/state.js";

interface FrontendReport {
  replicas: ReplicaRecord[];
  applied?: AppliedRevision;
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
    if (report.leaving) this.reports.delete(report.frontend_id);
    else this.reports.set(report.frontend_id, { replicas: report.replicas, applied: report.applied, at: this.now() });
    this.prune();
  }

  /**
   * What each live frontend has applied of the states that daemon instance `daemon` numbered. A
   * revision another instance numbered (a frontend still on a connection to the daemon before a
   * restart) says nothing about this instance's states, so it reads as null.
   */
  applied(daemon: string, revision: number): AppliedRevisions {
    this.prune();
    const frontends = [...this.reports].map(([frontend_id, { applied }]) => ({
      frontend_id,
      revision: applied?.daemon === daemon ? applied.revision : null,
    }));
    frontends.sort((a, b) => a.frontend_id.localeCompare(b.frontend_id));
    return { daemon, revision, frontends };
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
