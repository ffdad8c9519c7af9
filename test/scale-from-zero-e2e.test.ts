/**
 * Scale from zero end to end on the local manager, with the real CLI, daemon, frontend, supervisor
 * and a Node replica: a model deployed with no replica and autoscaled from 0 to 1. A query of an app
 * with a long SLO waits while the supervisor's loop starts the first replica and is answered by the
 * model; the first replica's start time is an event (`clipper events`). Back at zero, a query of an
 * app with a tiny SLO gets the default output with the starting-from-zero reason, and the replica
 * still comes up.
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClipperConnection } from "../src/connection.js";
import { LIVE_STATS_PATH, LiveStatsSchema } from "../runtime/shared/live-stats.js";
import { cliCluster } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";

/** A check for waitFor that asks the cluster at most twice a second. */
const slowly = (check: () => Promise<boolean>) => async () => (await check()) || (await new Promise<boolean>((r) => setTimeout(() => r(false), 500)));

const MODEL = join(fileURLToPath(new URL("./fixtures/node-models/", import.meta.url)), "sum.mjs");

describe("scaling a model from zero on the local manager", { timeout: 180_000 }, () => {
  const { home, ok, cli, urls } = cliCluster("clipper-zero-e2e-");
  let conn: ClipperConnection;
  const running = async () => (await conn.inspectInstance()).replicas.filter((r) => r.name === "zero" && r.state === "running").length;
  const firstReplicaEvents = async () => (await conn.getEvents()).events.filter((e) => e.kind === "first_replica" && e.model_name === "zero");
  const predict = async (app: string, input: number[]) => {
    const started = Date.now();
    const res = await fetch(`${urls.queryUrl}/${app}/predict`, { method: "POST", body: JSON.stringify({ input }) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown>, ms: Date.now() - started };
  };

  beforeAll(async () => {
    await ok("register-app", "patient", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "15000");
    await ok("register-app", "hasty", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "100");
    await ok("deploy-model", "zero", "--version", "1", "--input-type", "doubles", "--framework", "node",
      "--predict", `${MODEL}:predict`, "--replicas", "0", "--link", "patient");
    await ok("link", "hasty", "zero");
    await ok("autoscale", "zero", "--min", "0", "--max", "1", "--scale-down-delay-s", "1");
    conn = await ClipperConnection.connect({ home });
  }, 120_000);
  afterAll(async () => {
    await conn?.close();
  });

  it("starts the first replica for a waiting query, answers it from the model, and reports the start time", async () => {
    expect(await running()).toBe(0);
    const r = await predict("patient", [1, 2]);
    expect(r.status).toBe(200);
    expect(r.body, JSON.stringify(r.body)).toMatchObject({ default: false, output: 3 });
    expect(r.ms).toBeLessThan(15_000);

    await waitFor(slowly(async () => (await firstReplicaEvents()).length === 1), 15_000, "the first_replica event");
    const [event] = await firstReplicaEvents();
    expect(event!.reason).toMatch(/^first replica of zero:1 ready \d+\.\d s after the scale from zero$/);
    expect(event!.start_ms).toBeGreaterThan(0);
    expect(event!.start_ms).toBeLessThan(15_000);
    const shown = await cli("events");
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/zero:1 {2}first replica {2}first replica of zero:1 ready/);
  });

  it("answers a query with a tiny SLO by the default output with the reason, and the replica still comes up", async () => {
    // Idle for the scale-down delay: back to zero.
    await waitFor(slowly(async () => (await conn.getNumReplicas("zero", "1")) === 0 && (await running()) === 0), 60_000, "zero replicas");
    // And the frontend has let it go (a sample taken since): else the query would go to a replica on its way out.
    const stoppedAt = Date.now();
    await waitFor(slowly(async () => {
      const stats = LiveStatsSchema.parse(await (await fetch(urls.managementUrl + LIVE_STATS_PATH)).json());
      const sample = stats.frontends[0]?.samples.at(-1);
      return sample !== undefined && sample.at > stoppedAt && sample.versions.some((v) => v.model_name === "zero" && v.replicas.length === 0);
    }), 15_000, "the frontend to see no replica");
    // An input never asked before: the prediction cache would answer a repeat without the model.
    const r = await predict("hasty", [3, 4]);
    expect(r.body).toMatchObject({ default: true, output: -1, default_explanation: "No replica of zero:1 yet: starting from zero" });
    await waitFor(slowly(async () => (await running()) === 1), 30_000, "the replica started for the hasty query");
    await waitFor(slowly(async () => (await firstReplicaEvents()).length === 2), 15_000, "a second first_replica event");
  });
});
