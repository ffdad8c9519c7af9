/**
 * The query frontend's own copy of the cluster configuration, kept current from the watch stream:
 * a snapshot replaces it, a delta is applied to it in place (applyStateDelta), and each returns what
 * changed so that the frontend tells every component only that. With 10,000 applications a change
 * then costs what it changes, not a walk over every application, model and version.
 *
 * Entries are replaced, never mutated: a reader that holds an application or model record across
 * an await still sees one whole record, as the daemon committed it.
 *
 * Beside the copy it keeps which applications link each model, so that a model version's batch
 * budget (half the tightest SLO among them; batch-controller.ts) needs no walk over all applications.
 */
import { own } from "../shared/dict.js";
import { LinkIndex } from "../shared/link-index.js";
import type { AppRecord, ClusterState, ModelRecord } from "../shared/state.js";
import { applyStateDelta, type StateDelta } from "../shared/state-delta.js";

/** What one snapshot or delta changed; for a snapshot, everything. */
export interface ConfigChange {
  /** A snapshot replaced the copy: components take the whole state. */
  snapshot: boolean;
  state: ClusterState;
  /** Applications set or removed by a delta, each with its record before (undefined: it is new). */
  apps: ReadonlyMap<string, AppRecord | undefined>;
  /** Models set or removed by a delta, each with its record before. */
  models: ReadonlyMap<string, ModelRecord | undefined>;
  /** Applications whose learned policy weights (policy_state) a delta set or removed. */
  policyStates: ReadonlySet<string>;
  /** Applications whose query log settings a delta set or removed. */
  queryLogs: ReadonlySet<string>;
  /** Whether a delta replaced or removed the API keys. */
  apiKeys: boolean;
}

export class FrontendConfig {
  private current: ClusterState | undefined;
  /** Which applications link each model, kept in step by applyStateDelta. */
  private links = new LinkIndex();

  get state(): ClusterState | undefined {
    return this.current;
  }

  /** Takes a snapshot (parsed for this frontend alone, so it is the frontend's to change in place). */
  replace(state: ClusterState): ConfigChange {
    this.current = state;
    this.links = LinkIndex.of(state);
    return { snapshot: true, state, apps: new Map(), models: new Map(), policyStates: new Set(), queryLogs: new Set(), apiKeys: true };
  }

  /** Applies a delta to the copy held; throws (StateDeltaError) when its base is not that copy's revision. */
  apply(delta: StateDelta): ConfigChange {
    const state = this.current;
    if (!state) throw new Error("a state delta arrived before any snapshot");
    const apps = new Map<string, AppRecord | undefined>();
    const models = new Map<string, ModelRecord | undefined>();
    const policyStates = new Set<string>();
    const queryLogs = new Set<string>();
    let apiKeys = false;
    // The records before, read first: applyStateDelta replaces them. The first change of a key
    // holds the record before the whole delta.
    for (const change of delta.changes) {
      if (change.field === "applications") {
        if (!apps.has(change.key)) apps.set(change.key, own(state.applications, change.key));
      } else if (change.field === "models") {
        if (!models.has(change.key)) models.set(change.key, own(state.models, change.key));
      } else if (change.field === "policy_state") {
        policyStates.add(change.key);
      } else if (change.field === "query_log") {
        queryLogs.add(change.key);
      } else if (change.field === "api_keys") {
        apiKeys = true;
      }
    }
    applyStateDelta(state, delta, this.links);
    return { snapshot: false, state, apps, models, policyStates, queryLogs, apiKeys };
  }

  /** The tightest latency SLO among the applications linking `model`, µs; undefined when none links it. */
  tightestSloMicros(model: string): number | undefined {
    let tightest: number | undefined;
    for (const name of this.links.linking(model)) {
      const app = own(this.current?.applications, name);
      if (app) tightest = Math.min(tightest ?? Infinity, app.latency_slo_micros);
    }
    return tightest;
  }

  /**
   * The models whose batch budget or configuration a delta may have changed: the changed models,
   * and every model a changed application linked before or links now (its SLO or links changed).
   */
  static affectedModels(change: ConfigChange): Set<string> {
    const affected = new Set(change.models.keys());
    for (const [name, before] of change.apps) {
      for (const model of before?.linked_models ?? []) affected.add(model);
      for (const model of own(change.state.applications, name)?.linked_models ?? []) affected.add(model);
    }
    return affected;
  }
}
