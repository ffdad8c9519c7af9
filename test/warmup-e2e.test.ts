/**
 * Warm-up through the real CLI on the local manager: a Python model slow on its first call only,
 * behind an application whose SLO is shorter than that first call. With --warmup-input the very
 * first query is answered by the model; without it, by the default. Scale-up and a restart after a
 * crash warm up too; a bad warm-up input is refused before anything starts; a model that fails its
 * warm-up fails the deployment with the reason.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { SLO_MISSED } from "../runtime/frontend/query-processor.js";
import { cliCluster, predictAt } from "./support/cli.js";
import { assertPythonHas, PYTHON, pythonSkipReason } from "./support/python.js";
import { waitFor } from "./support/cluster-in-process.js";

const fixtures = fileURLToPath(new URL("./fixtures/e2e/", import.meta.url));
const skipReason = pythonSkipReason(["numpy"]);

describe.skipIf(skipReason !== undefined)(`warm-up on the local manager${skipReason ? ` (${skipReason})` : ""}`, () => {
  const { cli, ok, urls } = cliCluster("clipper-warmup-e2e-", { env: { CLIPPER_PYTHON: PYTHON }, before: () => assertPythonHas(["numpy"]) });
  const deployCold = (name: string, ...flags: string[]) =>
    ok("deploy-model", name, "--version", "1", "--input-type", "doubles", "--framework", "python",
      "--predict", join(fixtures, "cold_start.py:predict"), ...flags);
  /** The replica's log lines (all its runs: the supervisor appends). */
  const replicaLog = async (component: string): Promise<string[]> => (await ok("logs", component, "--tail", "500"))[0].lines;
  const replica = async (name: string, index: number) =>
    (await ok("status")).replicas.find((r: any) => r.name === name && r.version === "1" && r.replica === index);


  it("answers the very first query with the model, where a cold replica misses the SLO", async () => {
    await ok("register-app", "warm", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "200");
    await deployCold("warm-model", "--warmup-input", "[1, 2]", "--warmup-batches", "2", "--link", "warm");
    expect(await predictAt(urls.queryUrl, "warm", [3, 4])).toMatchObject({ output: 7, default: false });
    const log = (await replicaLog("warm-model-1-0")).join("\n");
    expect(log).toMatch(/warm-up batch 1 of 2 took [\s\S]*warm-up batch 2 of 2 took [\s\S]*warmed up; connecting/);

    // The same model without a warm-up: its first query pays the cold start and gets the default.
    await ok("register-app", "cold", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "200");
    await deployCold("cold-model", "--link", "cold");
    expect(await predictAt(urls.queryUrl, "cold", [3, 4])).toMatchObject({ output: -1, default: true, default_explanation: SLO_MISSED });
    expect((await replicaLog("cold-model-1-0")).join("\n")).not.toMatch(/warm-up/);
  });

  it("warms up a replica added by scaling up, and a replica restarted after a crash, before they connect", async () => {
    await ok("replicas", "warm-model", "2");
    const added = await replicaLog("warm-model-1-1");
    const warmed = added.findIndex((l) => /warmed up; connecting/.test(l));
    expect(warmed).toBeGreaterThan(-1);
    expect(added.findIndex((l) => /ready: wrote/.test(l))).toBeGreaterThan(warmed);

    const before = await replica("warm-model", 0);
    process.kill(before.pid, "SIGKILL");
    await waitFor(async () => {
      const again = await replica("warm-model", 0);
      return again?.state === "running" && again.restarts >= 1 && again.pid !== before.pid;
    }, 20_000, "the replica to be restarted");
    await waitFor(async () => (await replicaLog("warm-model-1-0")).filter((l) => /warmed up; connecting/.test(l)).length === 2,
      20_000, "the restarted replica to warm up");
    await waitFor(async () => (await ok("models")).find((m: any) => m.model_name === "warm-model")?.connected_replicas === 2,
      20_000, "the restarted replica to reconnect");
  });

  it("refuses a warm-up input that does not fit the input type before anything starts", async () => {
    for (const [flags, message] of [
      [["--warmup-input", '"three"'], /the warm-up input does not fit input type doubles: input of type doubles must be a JSON array of numbers/],
      [["--warmup-input", "[1,"], /not valid JSON/],
      [["--warmup-batches", "2"], /warm-up batches need a warm-up input/],
      [["--warmup-input", "[1]", "--warmup-batches", "0"], /expected a number between 1 and 1000/],
      [["--warmup-input", "[1]", "--env", "CLIPPER_WARMUP_BATCHES=5"], /either with --warmup-input\/--warmup-batches or with --env CLIPPER_WARMUP_BATCHES/],
    ] as const) {
      const r = await cli("deploy-model", "typo", "--version", "1", "--input-type", "doubles", "--framework", "python",
        "--predict", join(fixtures, "cold_start.py:predict"), ...flags);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect((await ok("models")).some((m: any) => m.model_name === "typo")).toBe(false);
    expect((await ok("status")).replicas.some((x: any) => x.name === "typo")).toBe(false);
  });

  it("fails the deployment with the reason when the model fails its warm-up, and leaves nothing behind", async () => {
    const r = await cli("deploy-model", "fussy", "--version", "1", "--input-type", "doubles", "--framework", "python",
      "--predict", join(fixtures, "cold_start.py:positive_only"), "--warmup-input", "[-1]");
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toMatch(/warm-up batch 1 of 3 failed: predict raised ValueError: negative values need the calibration file/);
    expect((await ok("models")).some((m: any) => m.model_name === "fussy")).toBe(false);
    expect((await ok("status")).replicas.some((x: any) => x.name === "fussy")).toBe(false);
  }, 60_000);
});
