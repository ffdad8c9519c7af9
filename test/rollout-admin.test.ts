/**
 * Gated rollouts in the management daemon process, over its HTTP API: a start is validated (400
 * with the reason, never a 500), the rollout is durable across kill -9, and the restarted daemon
 * takes it up again (the step in force starts over) and drives it to the end on the figures the
 * frontends report to it.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { emptyHistogram, latencyBucket, type ShadowSample } from "../runtime/shared/shadow.js";
import { daemonsKilledAfterEach, ensureDaemonBuilt, killHard, postToDaemon } from "./support/management-daemon.js";
import { replicaRecord } from "./support/state-fixtures.js";
import { tempDirs } from "./support/temp-dirs.js";
import { waitFor } from "./support/cluster-in-process.js";

const tempDir = tempDirs("clipper-rollout-admin-");

const post = postToDaemon;

const model = (version: string) => ({
  model_name: "m", model_version: version, labels: [], input_type: "doubles", container_name: "c", model_data_path: "p", batch_size: -1,
});

/** What a frontend saw of the shadow: `agree` copies, answered in about 20 ms. */
function sample(sinceRevision: number, agree: number): ShadowSample {
  const shadowLatency = emptyHistogram();
  shadowLatency[latencyBucket(20)] = agree;
  return {
    model_name: "m", model_version: "2", since_revision: sinceRevision,
    counts: { agree, disagree: 0, error: 0, timeout: 0, skipped: 0 }, shadow_latency: shadowLatency, live_latency: shadowLatency,
  };
}

const liveReport = (shadows: unknown[]) => ({ frontend_id: "f1", samples: [{ at: Date.now(), interval_ms: 2000, apps: [], versions: [], shadows }] });

describe("gated rollouts in the daemon", { timeout: 60_000 }, () => {
  beforeAll(() => ensureDaemonBuilt());
  const start = daemonsKilledAfterEach();

  it("validates a start, keeps the rollout across kill -9, and the restarted daemon drives it to 100%", async () => {
    const stateDir = await tempDir();
    const daemon = await start(stateDir);
    for (const version of ["1", "2"]) expect((await post(daemon, "/admin/add_model", model(version))).status).toBe(200);
    expect((await post(daemon, "/admin/set_model_version", { model_name: "m", model_version: "1" })).status).toBe(200);
    const replicas = { frontend_id: "f1", replicas: [replicaRecord("m", "1", 0), replicaRecord("m", "2", 0)] };
    expect((await post(daemon, "/admin/report_replicas", replicas)).status).toBe(200);

    for (const [body, message] of [
      [{ model_name: "m", model_version: "2", steps: [50, 10, 100] }, "steps must increase"],
      [{ model_name: "m", model_version: "2", steps: "1,100" }, "Expected JSON schema"],
      [`{"model_name": "m", "model_version": "2", "step_s": NaN}`, "not valid JSON"],
      [{ model_name: "m", model_version: "2", step_s: 1e9 }, "step_s must be"],
      [{ model_name: "m", model_version: "2", min_agreement: 2 }, "bad gate: min_agreement"],
      [{ model_name: "m", model_version: "1" }, "is the current version"],
      [{ model_name: "m" }, "Expected JSON schema"],
      [{ model_name: "__proto__", model_version: "2" }, "No model with name '__proto__'"],
      ["[]", "Expected JSON schema"],
    ] as const) {
      const r = await post(daemon, "/admin/start_rollout", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.text, JSON.stringify(body)).toContain(message);
    }
    expect((await post(daemon, "/admin/abort_rollout", { model_name: "constructor" })).text).toContain("No model with name 'constructor'");

    const started = await post(daemon, "/admin/start_rollout", { model_name: "m", model_version: "2", steps: [10, 100], step_s: 0.5, min_queries: 5, max_p99_ms: 100 });
    expect(started.status).toBe(200);
    const before = (await post(daemon, "/admin/get_shadow_status", { model_name: "m" })).json;
    expect(before.rollout).toMatchObject({ phase: "running", step: 0, percent: 10 });
    const since = before.shadow.since_revision as number;

    await killHard(daemon.child);
    const restarted = await start(stateDir);
    const after = (await post(restarted, "/admin/get_shadow_status", { model_name: "m" })).json;
    expect(after).toMatchObject({ current_version: "1", shadow: { since_revision: since }, rollout: { phase: "running", step: 0, percent: 10 } });
    // Not judged on nothing: the step waits for its queries however long it lasted.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await post(restarted, "/admin/get_shadow_status", { model_name: "m" })).json.rollout).toMatchObject({ phase: "running", progress: { step_queries: 0 } });
    expect((await post(restarted, "/admin/report_live_stats", liveReport([sample(since, 6)]))).status).toBe(200);
    let done: any;
    await waitFor(async () => (done = (await post(restarted, "/admin/get_shadow_status", { model_name: "m" })).json).rollout.phase !== "running", 10_000, "the promotion");
    expect(done).toMatchObject({ current_version: "2", shadow: null, rollout: { phase: "promoted" } });
    const events = await (await fetch(`${restarted.url}/admin/get_autoscaler_events`)).json() as any;
    expect(events.events.map((e: any) => e.kind)).toEqual(["rollout_promoted"]);
  });
});
