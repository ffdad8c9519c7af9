/**
 * Shadow versions in the management daemon process, over its HTTP API: the setting is validated
 * (400 with the reason, never a 500), durable across kill -9, and the figures two frontends report
 * in their live stats are summed per setting; a report that lies about its shape is refused.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { emptyHistogram, latencyBucket, type ShadowSample } from "../runtime/shared/shadow.js";
import { daemonsKilledAfterEach, ensureDaemonBuilt, killHard, postToDaemon } from "./support/management-daemon.js";
import { replicaRecord } from "./support/state-fixtures.js";
import { tempDirs } from "./support/temp-dirs.js";

const tempDir = tempDirs("clipper-shadow-admin-");

const post = postToDaemon;

const model = (version: string) => ({
  model_name: "m", model_version: version, labels: [], input_type: "doubles", container_name: "c", model_data_path: "p", batch_size: -1,
});

function sample(sinceRevision: number, agree: number, disagree: number): ShadowSample {
  const shadowLatency = emptyHistogram();
  const liveLatency = emptyHistogram();
  shadowLatency[latencyBucket(120)] = agree + disagree;
  liveLatency[latencyBucket(4)] = agree + disagree;
  return {
    model_name: "m", model_version: "2", since_revision: sinceRevision,
    counts: { agree, disagree, error: 0, timeout: 1, skipped: 0 }, shadow_latency: shadowLatency, live_latency: liveLatency,
  };
}

const liveReport = (frontend: string, shadows: unknown[]) => ({
  frontend_id: frontend, samples: [{ at: Date.now(), interval_ms: 2000, apps: [], versions: [], shadows }],
});

describe("shadow versions in the daemon", { timeout: 60_000 }, () => {
  beforeAll(() => ensureDaemonBuilt());
  const start = daemonsKilledAfterEach();

  it("validates the setting, sums the frontends' figures, and keeps the setting across kill -9", async () => {
    const stateDir = await tempDir();
    const daemon = await start(stateDir);
    for (const version of ["1", "2", "3"]) expect((await post(daemon, "/admin/add_model", model(version))).status).toBe(200);
    expect((await post(daemon, "/admin/set_model_version", { model_name: "m", model_version: "1" })).status).toBe(200);

    // No replica of version 2 connected yet.
    const noReplica = await post(daemon, "/admin/set_shadow", { model_name: "m", model_version: "2" });
    expect(noReplica.status).toBe(400);
    expect(noReplica.text).toContain("has no connected replica");
    const report = { frontend_id: "f1", replicas: [replicaRecord("m", "1", 0), replicaRecord("m", "2", 0)] };
    expect((await post(daemon, "/admin/report_replicas", report)).status).toBe(200);

    for (const [body, message] of [
      [{ model_name: "m", model_version: "2", percent: 0 }, "percent must be a number above 0"],
      [{ model_name: "m", model_version: "2", percent: 101 }, "percent must be a number above 0"],
      [`{"model_name": "m", "model_version": "2", "percent": NaN}`, "not valid JSON"],
      [{ model_name: "m", model_version: "2", percent: "50" }, "percent"],
      [{ model_name: "m", model_version: "9" }, "does not exist"],
      [{ model_name: "m", model_version: "1" }, "is the current version"],
      [{ model_name: "m" }, "model_version is required"],
      [{ model_name: "m", off: true }, "has no shadow version to end"],
      [{ model_name: "__proto__", model_version: "2" }, "No model with name '__proto__'"],
      [{ model_name: "constructor", off: true }, "No model with name 'constructor'"],
      ["[]", "Expected JSON schema"],
    ] as const) {
      const r = await post(daemon, "/admin/set_shadow", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.text, JSON.stringify(body)).toContain(message);
    }

    const set = await post(daemon, "/admin/set_shadow", { model_name: "m", model_version: "2", percent: 50 });
    expect(set.status).toBe(200);
    expect(set.text).toBe("Shadowing m:1 with version '2' on 50% of its live queries");
    const status = await post(daemon, "/admin/get_shadow_status", { model_name: "m" });
    expect(status.json).toMatchObject({ current_version: "1", shadow: { model_version: "2", percent: 50 }, figures: { compared: 0, agreement: null } });
    const since = status.json.shadow.since_revision as number;

    // Two frontends report; a sample of an older setting is not counted.
    expect((await post(daemon, "/admin/report_live_stats", liveReport("f1", [sample(since, 6, 2)]))).status).toBe(200);
    expect((await post(daemon, "/admin/report_live_stats", liveReport("f2", [sample(since, 1, 1), sample(since - 1, 90, 0)]))).status).toBe(200);
    const lying = liveReport("f3", [{ ...sample(since, 1, 0), shadow_latency: [1, 2, 3] }]);
    expect((await post(daemon, "/admin/report_live_stats", lying)).status).toBe(400);
    const summed = (await post(daemon, "/admin/get_shadow_status", { model_name: "m" })).json;
    expect(summed.figures).toMatchObject({ compared: 10, agreement: 0.7, counts: { agree: 7, disagree: 3, timeout: 2 } });
    expect(summed.figures.shadow_p50_ms).toBeGreaterThanOrEqual(120);
    expect(summed.figures.live_p99_ms).toBeLessThan(5);

    await killHard(daemon.child);
    const restarted = await start(stateDir);
    const after = (await post(restarted, "/admin/get_shadow_status", { model_name: "m" })).json;
    // The setting is durable; the figures were in memory and start afresh.
    expect(after).toMatchObject({ shadow: { model_version: "2", percent: 50, since_revision: since }, figures: { compared: 0 } });

    // Made current, the shadow is promoted and ends.
    expect((await post(restarted, "/admin/set_model_version", { model_name: "m", model_version: "2" })).status).toBe(200);
    expect((await post(restarted, "/admin/get_shadow_status", { model_name: "m" })).json).toMatchObject({ current_version: "2", shadow: null, figures: null });
  });
});
