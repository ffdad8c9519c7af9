/**
 * `clipper status` through the real CLI on the local manager, with real processes: uptime, CPU and
 * memory from /proc for every process, restarts after a kill -9, queue depth and p99 per model
 * version from the frontend's /metrics after real queries, and each application's links.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { cliCluster, predictAt } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";

const MODEL = join(fileURLToPath(new URL("./fixtures/node-models/", import.meta.url)), "scaled-sum.mjs");

describe("clipper status on the local manager", { timeout: 90_000 }, () => {
  const { cli, ok, urls } = cliCluster("clipper-status-");

  beforeAll(async () => {
    await ok("register-app", "app", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "5000");
    await ok("register-app", "lonely", "--input-type", "doubles", "--slo-ms", "20");
    await ok("deploy-model", "scaled", "--version", "1", "--input-type", "doubles", "--framework", "node", "--predict", `${MODEL}:predict`, "--link", "app");
    for (let i = 0; i < 20; i++) expect(await predictAt(urls.queryUrl, "app", [i, 1])).toMatchObject({ default: false });
  }, 60_000);

  it("shows usage per process, load per model version and links per application", async () => {
    const s = await ok("status");
    for (const p of [...s.components, ...s.replicas]) {
      expect(p.usage, JSON.stringify(p)).toMatchObject({ uptimeSeconds: expect.any(Number), cpuPercent: expect.any(Number) });
      expect(p.usage.memoryBytes).toBeGreaterThan(1024 * 1024);
      expect(p.usage.uptimeSeconds).toBeLessThan(120);
    }
    expect(s.usageNote).toBeUndefined();
    expect(s.models).toEqual([{ name: "scaled", version: "1", current: true, queueDepth: 0, p99Ms: expect.any(Number), batches: expect.any(Number) }]);
    expect(s.models[0].p99Ms).toBeGreaterThan(0);
    expect(s.models[0].batches).toBeGreaterThanOrEqual(1);
    expect(s.apps).toEqual([{ name: "app", linkedModels: ["scaled"], sloMicros: 5_000_000 }, { name: "lonely", linkedModels: [], sloMicros: 20_000 }]);

    const human = await cli("status");
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^COMPONENT\s+STATE\s+PID\s+RESTARTS\s+UPTIME\s+CPU\s+MEMORY$/m);
    expect(human.stdout).toMatch(/^scaled\s+1\s+0\s+running\s+\d+\s+0\s+\d+s\s+[\d.]+%\s+[\d.]+ MiB$/m);
    expect(human.stdout).toMatch(/^scaled\s+1\s+yes\s+0\s+[\d.]+ ms$/m);
    expect(human.stdout).toMatch(/^app\s+5000 ms\s+scaled$/m);
    expect(human.stdout).toMatch(/^lonely\s+20 ms\s+-$/m);
  });

  it("counts a restart after kill -9 and shows the new process's uptime", async () => {
    const before = (await ok("status")).replicas[0];
    process.kill(before.pid, "SIGKILL");
    let after = before;
    await waitFor(async () => {
      after = (await ok("status")).replicas[0];
      return after.restarts === 1 && after.state === "running" && after.pid !== before.pid && after.usage !== undefined;
    }, 20_000, "the replica restarted");
    expect(after.usage.uptimeSeconds).toBeLessThanOrEqual(before.usage.uptimeSeconds + 20);
    expect(after.usage.uptimeSeconds).toBeLessThan(20);
  });
});
