/**
 * Every selection policy through the CLI and the HTTP API, with real model processes (the Node
 * runtime, started by the local manager) and real feedback through POST /<app>/update.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliFor, runCli } from "./support/cli.js";

const pets = fileURLToPath(new URL("./fixtures/e2e/pets.mjs", import.meta.url));

describe("selection policies with real model processes", () => {
  const home = mkdtempSync(join(tmpdir(), "clipper-policies-"));
  const env = { CLIPPER_HOME: home };
  let queryUrl = "";
  let managementUrl = "";

  const { ok } = cliFor(env);
  const deploy = (name: string, fn: string, link?: string, version = "1") =>
    ok("deploy-model", name, "--version", version, "--input-type", "doubles", "--framework", "node",
      "--predict", `${pets}:${fn}`, ...(link ? ["--link", link] : []));
  const post = async (path: string, body: unknown): Promise<any> => {
    const res = await fetch(`${queryUrl}${path}`, { method: "POST", body: JSON.stringify(body) });
    expect(res.status, path).toBe(200);
    return res.json();
  };
  const weights = async (app: string): Promise<Record<string, number>> => {
    const res = await fetch(`${managementUrl}/admin/get_policy_state`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ app_name: app }),
    });
    return ((await res.json()) as { weights: Record<string, Record<string, number>> }).weights["*"] ?? {};
  };

  beforeAll(async () => {
    const started = await ok("start", "--query-port", "0", "--management-port", "0", "--rpc-port", "0");
    queryUrl = started.queryUrl;
    managementUrl = started.managementUrl;
  }, 60_000);
  afterAll(async () => {
    await runCli(["stop"], env);
    rmSync(home, { recursive: true, force: true });
  }, 60_000);

  it("ensemble: votes, reports agreement, and answers unsure below the threshold", async () => {
    // A generous SLO: the vote needs all three answers, and a fresh replica may be slow once on a busy machine.
    await ok("register-app", "ens", "--input-type", "doubles", "--default-output", "\"unsure\"", "--policy", "ensemble:threshold=0.6", "--slo-ms", "5000");
    await deploy("m-cat", "cat", "ens");
    await deploy("m-cat2", "cat", "ens");
    await deploy("m-dog", "dog", "ens");
    const vote = await post("/ens/predict", { input: [1] });
    expect(vote).toMatchObject({ output: "cat", default: false, models: ["m-cat", "m-cat2", "m-dog"] });
    expect(vote.confidence).toBeCloseTo(2 / 3, 5);
    await ok("set-policy", "ens", "ensemble:threshold=0.9");
    await expect.poll(async () => (await post("/ens/predict", { input: [2] })).unsure, { timeout: 10_000 }).toBe(true);
    expect(await post("/ens/predict", { input: [3] })).toMatchObject({ output: "unsure", default: true, unsure: true });
  });

  it("exp3: learns from feedback which model to play", async () => {
    await ok("register-app", "bandit", "--input-type", "doubles", "--default-output", "-1", "--policy", "exp3:gamma=0.2");
    await ok("link", "bandit", "m-cat");
    await ok("link", "bandit", "m-dog");
    for (let i = 0; i < 80; i++) {
      const answer = await post("/bandit/predict", { input: [i] });
      expect(["m-cat", "m-dog"]).toContain(answer.answered_by);
      await post("/bandit/update", { uid: 0, input: [i], label: "cat" });
    }
    await expect.poll(async () => {
      const w = await weights("bandit");
      return (w["m-cat"] ?? 0) > 10 * (w["m-dog"] ?? 1);
    }, { timeout: 10_000 }).toBe(true);
    const plays = await Promise.all(Array.from({ length: 40 }, (_, i) => post("/bandit/predict", { input: [1000 + i] })));
    expect(plays.filter((p) => p.answered_by === "m-cat").length).toBeGreaterThanOrEqual(30);
  });

  it("exp4: a weighted ensemble that moves toward the model that is right", async () => {
    await ok("register-app", "weighted", "--input-type", "doubles", "--default-output", "-1", "--policy", "exp4:eta=1");
    await deploy("m-one", "one", "weighted");
    await deploy("m-three", "three", "weighted");
    const before = await post("/weighted/predict", { input: [0] });
    expect(before.output).toBeCloseTo(2, 5);
    for (let i = 0; i < 10; i++) {
      await post("/weighted/predict", { input: [i + 1] });
      await post("/weighted/update", { uid: 0, input: [i + 1], label: 3 });
    }
    await expect.poll(async () => (await post("/weighted/predict", { input: [99] })).output, { timeout: 10_000 }).toBeGreaterThan(2.9);
  });

  it("canary: splits traffic between versions, sticky per uid", async () => {
    await ok("register-app", "rank", "--input-type", "doubles", "--default-output", "-1", "--policy", "canary:1=50,2=50");
    await deploy("ranker", "v1", "rank", "1");
    await deploy("ranker", "v2", undefined, "2");
    const seen = new Map<number, string>();
    for (let uid = 1; uid <= 40; uid++) {
      const answer = await post("/rank/predict", { input: [uid], uid });
      expect(answer.output).toBe(answer.version === "1" ? "v1" : "v2");
      seen.set(uid, answer.version);
    }
    expect(new Set(seen.values())).toEqual(new Set(["1", "2"]));
    for (const uid of [3, 17, 29]) expect((await post("/rank/predict", { input: [uid + 0.5], uid })).version).toBe(seen.get(uid));
  });

  it("cascade: the fast model answers when it is sure, the slow one otherwise", async () => {
    await ok("register-app", "idk", "--input-type", "doubles", "--default-output", "-1", "--policy", "cascade:models=m-fast|m-dog,threshold=0.8");
    await deploy("m-fast", "fast", "idk");
    await ok("link", "idk", "m-dog");
    expect(await post("/idk/predict", { input: [0.95] })).toMatchObject({ output: "cat", answered_by: "m-fast" });
    expect(await post("/idk/predict", { input: [0.2] })).toMatchObject({ output: "dog", answered_by: "m-dog" });
  });

  it("default: feedback is accepted and ignored, as in Clipper", async () => {
    await ok("register-app", "plain", "--input-type", "doubles", "--default-output", "-1");
    await ok("link", "plain", "m-cat");
    expect(await post("/plain/update", { uid: 1, input: [1], label: "dog" })).toEqual({ feedback_accepted: true });
    expect(await post("/plain/predict", { input: [1] })).toMatchObject({ output: "cat", default: false });
  });
});
