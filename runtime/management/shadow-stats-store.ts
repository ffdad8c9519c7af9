/**
 * The shadow figures the frontends report in their live stats samples (runtime/shared/shadow.ts),
 * summed per shadow setting (model, shadow version, revision that set it) over every frontend and
 * interval, so `rollout status` reads one total however many frontends (or workers) served.
 *
 * In memory, like the live stats: a restart of the daemon starts the figures afresh. Bounded: only
 * settings the state holds now are kept, so the memory follows the number of shadows, not of
 * reports (a frontend that lies about a model gets nothing kept).
 */
import { own } from "../shared/dict.js";
import { addHistogram, emptyCounts, emptyHistogram, shadowFigures, type ShadowConfig, type ShadowCounts, type ShadowFigures, type ShadowSample } from "../shared/shadow.js";
import type { ClusterState } from "../shared/state.js";

interface Totals {
  counts: ShadowCounts;
  shadowLatency: number[];
  liveLatency: number[];
}

export class ShadowStatsStore {
  /** Keyed by model name: the totals of its current setting only. */
  private readonly totals = new Map<string, { setting: string; totals: Totals }>();

  /** Adds a report's shadow samples that belong to a setting `state` holds now. */
  add(samples: readonly ShadowSample[], state: ClusterState): void {
    for (const sample of samples) {
      const shadow = own(state.shadows, sample.model_name);
      if (!shadow || shadow.model_version !== sample.model_version || shadow.since_revision !== sample.since_revision) continue;
      const totals = this.totalsOf(sample.model_name, shadow);
      for (const key of Object.keys(totals.counts) as Array<keyof ShadowCounts>) totals.counts[key] += sample.counts[key];
      addHistogram(totals.shadowLatency, sample.shadow_latency);
      addHistogram(totals.liveLatency, sample.live_latency);
    }
    this.prune(state);
  }

  /** The figures of a setting: zeros until a frontend reported some. */
  figures(modelName: string, shadow: ShadowConfig): ShadowFigures {
    const entry = this.totals.get(modelName);
    const totals = entry?.setting === settingKey(shadow) ? entry.totals : fresh();
    return shadowFigures(totals.counts, totals.shadowLatency, totals.liveLatency);
  }

  private totalsOf(modelName: string, shadow: ShadowConfig): Totals {
    const setting = settingKey(shadow);
    const entry = this.totals.get(modelName);
    if (entry?.setting === setting) return entry.totals;
    const totals = fresh();
    this.totals.set(modelName, { setting, totals });
    return totals;
  }

  /** Forgets the totals of settings the state no longer holds. */
  private prune(state: ClusterState): void {
    for (const [modelName, entry] of this.totals) {
      const shadow = own(state.shadows, modelName);
      if (!shadow || settingKey(shadow) !== entry.setting) this.totals.delete(modelName);
    }
  }
}

function settingKey(shadow: ShadowConfig): string {
  return `${shadow.since_revision}:${shadow.model_version}`;
}

function fresh(): Totals {
  return { counts: emptyCounts(), shadowLatency: emptyHistogram(), liveLatency: emptyHistogram() };
}
