/** A WeightStore in memory only (tests, and frontends without a management daemon to sync with). */
import { dict } from "../../shared/dict.js";
import type { WeightStore } from "./policy.js";

export class InMemoryWeightStore implements WeightStore {
  private readonly apps = new Map<string, Map<string, Record<string, number>>>();

  get(app: string, key: string): Readonly<Record<string, number>> | undefined {
    return this.apps.get(app)?.get(key);
  }

  set(app: string, key: string, weights: Record<string, number>): void {
    let keys = this.apps.get(app);
    if (!keys) this.apps.set(app, (keys = new Map()));
    keys.set(key, dict(weights));
  }
}
