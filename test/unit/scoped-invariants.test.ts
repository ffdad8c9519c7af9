/**
 * The store checks only the invariants a write touches (changeViolations, with an index of who
 * links each model). This compares it with the full check on random writes to a consistent state:
 * for every change, the scoped check must find exactly what stateViolations finds. A scoped check
 * that missed a rule would let an inconsistent state be written.
 */
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../runtime/frontend/policies/random.js";
import { LinkIndex } from "../../runtime/shared/link-index.js";
import { cloneData, dict } from "../../runtime/shared/dict.js";
import { applyStateDelta, type StateChange } from "../../runtime/shared/state-delta.js";
import { changeViolations, describeViolation, stateViolations } from "../../runtime/shared/state-invariants.js";
import { emptyState, type ClusterState } from "../../runtime/shared/state.js";
import { appRecord, versionRecord } from "../support/state-fixtures.js";

const MODELS = ["m", "n", "__proto__", "constructor"];
const APPS = ["a", "b", "__proto__", "toString"];
const VERSIONS = ["1", "2", "3"];

function randomChange(random: () => number): StateChange {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
  const type = () => (random() < 0.9 ? "doubles" : "strings");
  const remove = random() < 0.25;
  switch (pick(["applications", "models", "policy_state", "query_log", "autoscaling", "shadows", "rollouts", "api_keys"] as const)) {
    case "applications": {
      const key = pick(APPS);
      const links = [...new Set(Array.from({ length: Math.floor(random() * 3) }, () => (random() < 0.1 ? "ghost" : pick(MODELS))))];
      return remove ? { field: "applications", key } : { field: "applications", key, value: appRecord(key, links, type()) };
    }
    case "models": {
      const key = pick(MODELS);
      const versions = VERSIONS.filter(() => random() < 0.7);
      const record = { name: key, current_version: random() < 0.2 ? null : pick(VERSIONS), versions: dict(versions.map((v) => [v, versionRecord(key, v, type())] as const)) };
      return remove ? { field: "models", key } : { field: "models", key, value: record };
    }
    case "policy_state": {
      const key = pick(APPS);
      return remove ? { field: "policy_state", key } : { field: "policy_state", key, value: dict([["*", dict([["m", 1]])]]) };
    }
    case "query_log": {
      const key = pick(APPS);
      return remove ? { field: "query_log", key } : { field: "query_log", key, value: { sample: 0.5, max_mb: 8 } };
    }
    case "autoscaling": {
      const key = pick(MODELS);
      const config = { min_replicas: random() < 0.1 ? 5 : 1, max_replicas: 4, target_queue_per_replica: 2, scale_down_delay_s: 60 };
      return remove ? { field: "autoscaling", key } : { field: "autoscaling", key, value: dict([[pick(VERSIONS), config]]) };
    }
    case "shadows": {
      const key = pick(MODELS);
      return remove ? { field: "shadows", key } : { field: "shadows", key, value: { model_version: pick(VERSIONS), percent: 10, since_revision: 1 } };
    }
    case "rollouts": {
      const key = pick(MODELS);
      const rollout = {
        from_version: pick(VERSIONS), to_version: pick(VERSIONS), steps: [10, 100], step: random() < 0.1 ? 2 : 0, step_s: 60, min_queries: 10,
        gates: {}, phase: pick(["running", "promoted", "rolled_back"] as const),
      };
      return remove ? { field: "rollouts", key } : { field: "rollouts", key, value: rollout };
    }
    case "api_keys":
      return remove ? { field: "api_keys" } : { field: "api_keys", value: [{ id: "0123abcd", sha256: "0".repeat(64), app: pick(APPS), created_at: "2026-01-01T00:00:00Z" }] };
  }
}

describe("changeViolations", () => {
  it("finds exactly what the full check finds, for random writes to a consistent state", () => {
    const random = seededRandom(16);
    let state: ClusterState = emptyState();
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < 10_000; i++) {
      const changes = Array.from({ length: 1 + Math.floor(random() * 3) }, () => randomChange(random));
      const next = cloneData(state);
      applyStateDelta(next, { base: next.revision, revision: next.revision + 1, changes });
      const links = LinkIndex.of(next);
      const scoped = changeViolations(next, changes, (m) => links.appsLinking(m)).map(describeViolation).sort();
      const full = stateViolations(next).map(describeViolation).sort();
      expect(scoped, JSON.stringify(changes)).toEqual(full);
      if (full.length === 0) {
        state = next;
        accepted++;
      } else {
        refused++;
      }
    }
    // Both kinds happened often enough for the comparison to mean something.
    expect(accepted).toBeGreaterThan(1_000);
    expect(refused).toBeGreaterThan(1_000);
  });
});
