/**
 * Which applications link each model: the reverse of the applications' `linked_models`. The
 * management daemon's store and each frontend's copy of the configuration keep one current with
 * every change they apply (applyStateDelta), so the questions "who links model m?" (a new
 * version's input type, a model's last version deleted, the invariants of a changed model, the
 * tightest SLO a model's batching must meet) cost the number of linking applications instead of a
 * walk over every application.
 */
import type { ClusterState } from "./state.js";

const NONE: ReadonlySet<string> = new Set();

export class LinkIndex {
  private readonly byModel = new Map<string, Set<string>>();

  /** The index of a state, built by one walk over its applications (at load, and for tests). */
  static of(state: ClusterState): LinkIndex {
    const index = new LinkIndex();
    for (const name of Object.keys(state.applications)) index.relink(name, [], state.applications[name]!.linked_models);
    return index;
  }

  /** The applications that link `model`, in no particular order. */
  appsLinking(model: string): string[] {
    return [...this.linking(model)];
  }

  /** The same, without a copy: read it before the next change. */
  linking(model: string): ReadonlySet<string> {
    return this.byModel.get(model) ?? NONE;
  }

  /** Records that application `app` now links `after` where it linked `before` (empty lists for a new or removed application). */
  relink(app: string, before: readonly string[], after: readonly string[]): void {
    for (const model of before) {
      if (after.includes(model)) continue;
      const apps = this.byModel.get(model);
      apps?.delete(app);
      if (apps?.size === 0) this.byModel.delete(model);
    }
    for (const model of after) {
      let apps = this.byModel.get(model);
      if (!apps) this.byModel.set(model, (apps = new Set()));
      apps.add(app);
    }
  }
}
