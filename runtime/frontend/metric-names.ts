/**
 * Which names the frontend's series may carry as label values (docs/metrics.md, "Bounded labels"):
 * only those of the configuration it follows. A replica registering under a name the configuration
 * does not hold, a query finishing after its application was deleted, a record shipped after its
 * version went: each is counted under the one label value UNREGISTERED, or dropped from a scrape,
 * so the size of /metrics follows the configuration, never what peers send.
 */
import { Registry } from "prom-client";
import { own } from "../shared/dict.js";
import type { ClusterState, ModelRecord } from "../shared/state.js";

/** The label value standing for every name the configuration does not hold. */
export const UNREGISTERED = "(unregistered)";

/** Names gone from the configuration: applications, model versions (`name:version`), whole models. */
export interface RemovedNames {
  apps: readonly string[];
  versions: readonly string[];
  models: readonly string[];
}

/** What `next` no longer holds of `prev`; own entries only (names are user input). */
export function removedNames(prev: ClusterState | undefined, next: ClusterState): RemovedNames {
  const removed = { apps: [] as string[], versions: [] as string[], models: [] as string[] };
  if (!prev) return removed;
  for (const app of Object.keys(prev.applications)) {
    if (!own(next.applications, app)) removed.apps.push(app);
  }
  for (const [name, model] of Object.entries(prev.models)) {
    const kept = own(next.models, name);
    if (!kept) removed.models.push(name);
    for (const version of Object.keys(model.versions)) {
      if (!own(kept?.versions, version)) removed.versions.push(`${name}:${version}`);
    }
  }
  return removed;
}

/** What a delta removed: the applications and models it set or removed, against their records before. */
export function removedByDelta(change: {
  state: ClusterState;
  apps: ReadonlyMap<string, unknown>;
  models: ReadonlyMap<string, ModelRecord | undefined>;
}): RemovedNames {
  const removed = { apps: [] as string[], versions: [] as string[], models: [] as string[] };
  for (const [app, before] of change.apps) {
    if (before !== undefined && !own(change.state.applications, app)) removed.apps.push(app);
  }
  for (const [name, before] of change.models) {
    if (before === undefined) continue;
    const kept = own(change.state.models, name);
    if (!kept) removed.models.push(name);
    for (const version of Object.keys(before.versions)) {
      if (!own(kept?.versions, version)) removed.versions.push(`${name}:${version}`);
    }
  }
  return removed;
}

export function removesAnything(removed: RemovedNames): boolean {
  return removed.apps.length + removed.versions.length + removed.models.length > 0;
}

/** The registered names, read from the configuration as it is now (no copy to keep in step). */
export class MetricNames {
  private constructor(private readonly state: (() => ClusterState | undefined) | undefined) {}

  /** Names as the configuration from `state` holds them; before the first one, none. */
  static of(state: () => ClusterState | undefined): MetricNames {
    return new MetricNames(state);
  }

  /** Every name passes: metrics used without a configuration (unit tests, in-process benchmarks). */
  static any(): MetricNames {
    return new MetricNames(undefined);
  }

  appKnown(app: string): boolean {
    return !this.state || own(this.state()?.applications, app) !== undefined;
  }

  modelKnown(name: string): boolean {
    return !this.state || own(this.state()?.models, name) !== undefined;
  }

  versionKnown(name: string, version: string): boolean {
    return !this.state || own(own(this.state()?.models, name)?.versions, version) !== undefined;
  }

  /** A `name:version` key (model names have no colon: shared/names.ts). */
  keyKnown(key: string): boolean {
    const colon = key.indexOf(":");
    return colon > 0 && this.versionKnown(key.slice(0, colon), key.slice(colon + 1));
  }

  /** The label value for an application. */
  app(app: string): string {
    return this.appKnown(app) ? app : UNREGISTERED;
  }

  /** The label value for a model version's `name:version` key. */
  version(key: string): string {
    return this.keyKnown(key) ? key : UNREGISTERED;
  }

  /** The label value for a model name (the policies' series). */
  model(name: string): string {
    return this.modelKnown(name) ? name : UNREGISTERED;
  }

  /** The `model` and `version` labels of a version: both UNREGISTERED unless the configuration holds it. */
  versionLabels(model: string, version: string): { model: string; version: string } {
    return this.versionKnown(model, version) ? { model, version } : { model: UNREGISTERED, version: UNREGISTERED };
  }

  /**
   * Whether a series may stay: its `app` is registered, and its `model` is a registered version
   * key, or with a `version` label a registered version, or else a registered model name.
   */
  keeps(labels: Readonly<Record<string, unknown>>): boolean {
    if (!this.state) return true;
    const { app, model, version } = labels;
    if (typeof app === "string" && app !== UNREGISTERED && !this.appKnown(app)) return false;
    if (typeof model !== "string" || model === UNREGISTERED) return true;
    if (typeof version === "string") return this.versionKnown(model, version);
    return model.includes(":") ? this.keyKnown(model) : this.modelKnown(model);
  }
}

/** The part of a prom-client metric the sweep uses; DeferredHistogram has it too. */
interface Sweepable {
  name: string;
  get(): Promise<{ values: Array<{ labels: Readonly<Record<string, unknown>> }> }>;
  remove(labels: Record<string, string | number>): void;
}

/**
 * A registry that drops the series of deleted names. Reading every series costs a scrape about as
 * much as the scrape itself at thousands of names, so it sweeps only when names were deleted since
 * the last sweep (`namesRemoved`, from FrontendMetrics.forget): a read (a scrape, the --workers
 * primary's collect) sweeps first then, and the frontend also sweeps soon after a deletion, so
 * memory stays bounded where nothing scrapes.
 *
 * What keeps that enough: no series is minted for a name the configuration does not hold at the
 * moment it is minted. Every observation takes its label values from MetricNames then (work that
 * finishes after its name was deleted, such as an in-flight batch or shadow copy or a query log
 * report, counts under UNREGISTERED), so a deleted name's series exist only from before its
 * deletion, and the sweep that deletion asked for removes them.
 */
export class SweepingRegistry extends Registry {
  /** Names were deleted since the last sweep began. */
  private sweepNeeded = false;

  constructor(readonly names: MetricNames) {
    super();
  }

  /** Names were deleted: the next read sweeps (a sweep started before this one does not count). */
  namesRemoved(): void {
    this.sweepNeeded = true;
  }

  async sweep(): Promise<void> {
    this.sweepNeeded = false;
    for (const metric of this.getMetricsAsArray() as unknown as Sweepable[]) {
      // Node's process series carry no names; only ours do.
      if (!metric.name.startsWith("clipper_") || typeof metric.remove !== "function") continue;
      const { values } = await metric.get();
      for (const { labels } of values) {
        // A histogram's bucket rows repeat its label set with `le`; its _sum row has the set alone.
        if ("le" in labels || this.names.keeps(labels)) continue;
        metric.remove(labels as Record<string, string | number>);
      }
    }
  }

  override async metrics(): Promise<string> {
    if (this.sweepNeeded) await this.sweep();
    return super.metrics();
  }

  override async getMetricsAsJSON(): ReturnType<Registry["getMetricsAsJSON"]> {
    if (this.sweepNeeded) await this.sweep();
    return super.getMetricsAsJSON();
  }
}
