/**
 * Autoscaling end to end on the local manager, with the real CLI, daemon, frontend, supervisor and
 * Node replicas: a model costing 20 ms per query at batch size 1, autoscaled from 1 to 4 replicas,
 * under 16 closed-loop clients. The supervisor's loop scales it up within seconds (throughput
 * follows), back to 1 once the load stops, every decision is an event with its reason, and no
 * query fails or gets the default output on the way. Bounds are looser than the benchmark's
 * (bench/autoscale.ts): the machine is shared.
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClipperConnection } from "../src/connection.js";
import { cliCluster } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";
import { closedLoopLoad } from "./support/closed-loop.js";

/** A check for waitFor that asks the cluster at most twice a second. */
const slowly = (check: () => Promise<boolean>) => async () => (await check()) || (await new Promise<boolean>((r) => setTimeout(() => r(false), 500)));

const MODEL = join(fileURLToPath(new URL("./fixtures/node-models/", import.meta.url)), "slow-20ms.mjs");

describe("autoscaling a model under load on the local manager", { timeout: 180_000 }, () => {
  const { home, ok, urls } = cliCluster("clipper-autoscale-e2e-");
  let conn: ClipperConnection;
  const running = async () => (await conn.inspectInstance()).replicas.filter((r) => r.name === "slow" && r.state === "running").length;

  beforeAll(async () => {
    await ok("register-app", "load", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "2000");
    await ok("deploy-model", "slow", "--version", "1", "--input-type", "doubles", "--framework", "node",
      "--predict", `${MODEL}:predict`, "--batch-size", "1", "--link", "load");
    await ok("autoscale", "slow", "--min", "1", "--max", "4", "--target-queue-per-replica", "2", "--scale-down-delay-s", "3");
    conn = await ClipperConnection.connect({ home });
  }, 120_000);
  afterAll(async () => {
    await conn?.close();
  });

  it("scales up under load, serves more, scales back down, and fails no query", async () => {
    const start = Date.now();
    const load = closedLoopLoad(`${urls.queryUrl}/load/predict`, 16, (n) => [n, 2]);
    const { failures } = load;
    const rate = (from: number, to: number) => load.answered.filter((a) => a.at >= from && a.at < to).length / ((to - from) / 1000);

    let scaledAt: number;
    try {
      await waitFor(slowly(async () => (await running()) >= 3), 45_000, "3 running replicas");
      scaledAt = Date.now();
      await new Promise((r) => setTimeout(r, 4_000));
    } finally {
      await load.stop();
    }
    const first = rate(start, start + 3_000);
    const last = rate(scaledAt + 1_000, scaledAt + 4_000);
    expect(last / first, `first 3 s ${first.toFixed(0)}/s, after scaling ${last.toFixed(0)}/s`).toBeGreaterThanOrEqual(2);

    const downStart = Date.now();
    await waitFor(slowly(async () => (await conn.getNumReplicas("slow", "1")) === 1 && (await running()) === 1), 90_000, "1 replica again");
    expect(Date.now() - downStart).toBeLessThan(90_000);
    expect(failures).toEqual([]);

    const { events } = await conn.getEvents();
    const ups = events.filter((e) => e.kind === "scale_up" && e.model_name === "slow");
    const downs = events.filter((e) => e.kind === "scale_down" && e.model_name === "slow");
    expect(ups.length).toBeGreaterThanOrEqual(1);
    expect(ups[0]!.reason).toMatch(/overloaded .*waiting/);
    expect(downs.at(-1)).toMatchObject({ to: 1 });
    expect(downs.at(-1)!.reason).toMatch(/low load/);
  });
});
