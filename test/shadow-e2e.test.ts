/**
 * Shadow versions end to end through the real CLI on the local manager (daemon, frontend, Node
 * model runtime): a live version 1 and a slow shadow version 2 that disagrees on 30% of the inputs.
 * `rollout status` reports the agreement and both latencies, every live answer is version 1's, and
 * the live latency does not include the shadow's sleep. Bad input gets a usage error or a refusal.
 * The mirror's own logic (sampling, bound, comparison) is unit-tested in test/unit/shadow.test.ts.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { cliCluster } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";

const MODEL = join(fileURLToPath(new URL("./fixtures/node-models/", import.meta.url)), "shadow-candidate.mjs");
const SLEEP_MS = 400;
const WAVES = 5;
const PER_WAVE = 20;

describe("shadow versions through the CLI", { timeout: 120_000 }, () => {
  const { cli, ok, urls } = cliCluster("clipper-shadow-");

  beforeAll(async () => {
    await ok("register-app", "app", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "5000");
    await ok("deploy-model", "m", "--version", "1", "--input-type", "doubles", "--framework", "node", "--predict", `${MODEL}:predict`, "--link", "app");
    // A fixed batch size lets the slow shadow take a whole wave of copies in one or two batches.
    await ok("deploy-model", "m", "--version", "2", "--input-type", "doubles", "--framework", "node", "--predict", `${MODEL}:predict`,
      "--env", "DISAGREE=1", "--env", `SLEEP_MS=${SLEEP_MS}`, "--batch-size", "32");
    // The newest registered version becomes current: version 1 stays the live one.
    await ok("set-version", "m", "1");
  }, 120_000);

  it("refuses bad shadow settings with a usage error or the daemon's reason", async () => {
    for (const percent of ["0", "101", "NaN", "-1", "ten"]) {
      const r = await cli("shadow", "m", "--version", "2", "--percent", percent);
      expect(r.code, percent).toBe(2);
      expect(r.stderr, percent).toContain("--percent");
    }
    const noVersion = await cli("shadow", "m");
    expect(noVersion.code).toBe(2);
    expect(noVersion.stderr).toContain("--version is required");
    expect((await cli("shadow", "m", "--off", "--version", "2")).code).toBe(2);
    const refused = async (args: string[], message: string) => {
      const r = await cli(...args, "--json");
      expect(r.code, args.join(" ")).toBe(4);
      expect(r.json, args.join(" ")).toMatchObject({ code: "ADMIN_REJECTED", error: expect.stringContaining(message) });
    };
    await refused(["shadow", "m", "--version", "9"], "version '9' does not exist");
    await refused(["shadow", "m", "--version", "1"], "is the current version");
    await refused(["shadow", "m", "--off"], "has no shadow version to end");
    for (const name of ["nope", "__proto__", "constructor"]) {
      await refused(["shadow", name, "--version", "1"], "No model with name");
      await refused(["rollout", "status", name], "No model with name");
    }
    const none = await cli("rollout", "status", "m");
    expect(none.code).toBe(0);
    expect(none.stdout).toContain("no shadow version");
  });

  it("compares a slow shadow that disagrees on 30% of inputs, and never lets it touch a live answer", async () => {
    const set = await ok("shadow", "m", "--version", "2");
    expect(set.message).toBe("Shadowing m:1 with version '2' on 100% of its live queries");
    expect(set.status).toMatchObject({ current_version: "1", shadow: { model_version: "2", percent: 100 } });

    const latencies: number[] = [];
    for (let wave = 0; wave < WAVES; wave++) {
      await Promise.all(Array.from({ length: PER_WAVE }, async (_, j) => {
        const input = wave * PER_WAVE + j;
        const started = performance.now();
        const res = await fetch(`${urls.queryUrl}/app/predict`, { method: "POST", body: JSON.stringify({ input: [input] }) });
        latencies.push(performance.now() - started);
        expect(res.status).toBe(200);
        // Version 1's answer (the shadow would say input + 1 for a third of these).
        expect(await res.json(), `input ${input}`).toMatchObject({ output: input, default: false });
      }));
      // Lets the shadow answer this wave's copies: no copy is skipped for the in-flight bound.
      await new Promise((resolve) => setTimeout(resolve, SLEEP_MS * 2));
    }
    latencies.sort((a, b) => a - b);
    // Were the live answers waiting for the shadow, each would take SLEEP_MS at least.
    expect(latencies[Math.floor(latencies.length / 2)]!).toBeLessThan(SLEEP_MS / 2);

    let status: any;
    await waitFor(async () => {
      status = await ok("rollout", "status", "m");
      const c = status.figures.counts;
      return c.agree + c.disagree + c.error + c.timeout + c.skipped >= WAVES * PER_WAVE;
    }, 30_000, "every copy's outcome to reach the daemon");
    const { figures } = status;
    expect(figures.counts).toMatchObject({ skipped: 0, error: 0, timeout: 0 });
    expect(figures.compared).toBe(WAVES * PER_WAVE);
    expect(figures.agreement).toBeCloseTo(0.7, 5);
    expect(figures.shadow_p50_ms).toBeGreaterThanOrEqual(SLEEP_MS);
    expect(figures.live_p99_ms).toBeLessThan(SLEEP_MS);

    const human = await cli("rollout", "status", "m");
    expect(human.code).toBe(0);
    expect(human.stdout).toContain("shadow version 2 on 100% of live queries");
    expect(human.stdout).toMatch(/agreement\s+70\.0% of 100/);

    const metrics = await (await fetch(`${urls.queryUrl}/metrics`)).text();
    expect(metrics).toContain('clipper_shadow_queries_total{model="m",version="2",outcome="agree"} 70');
    expect(metrics).toContain('clipper_shadow_queries_total{model="m",version="2",outcome="disagree"} 30');

    const off = await ok("shadow", "m", "--off");
    expect(off.message).toMatch(/Ended the shadow of m:2/);
    expect(off.status.shadow).toBeNull();
  });
});
