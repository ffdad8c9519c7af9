/**
 * `clipper feedback` and `clipper policy-state` through the real CLI on the local manager, with the
 * real daemon, frontend and Node model runtime: feedback reaches an exp4 policy through `/update`,
 * its learned weights come back through the admin API, and bad input is refused with a clear error.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { cliCluster } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";

const MODEL = join(fileURLToPath(new URL("./fixtures/node-models/", import.meta.url)), "scaled-sum.mjs");

describe("feedback and policy-state through the CLI", { timeout: 60_000 }, () => {
  const { cli, ok } = cliCluster("clipper-feedback-");

  beforeAll(async () => {
    await ok("register-app", "bandit", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "5000", "--policy", "exp4:eta=0.5");
    await ok("register-app", "plain", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "5000");
    // Two models that answer [1, 2] with 3 and 30: feedback labelled 3 rewards only `right`.
    for (const [name, scale] of [["right", 1], ["wrong", 10]] as const) {
      await ok("deploy-model", name, "--version", "1", "--input-type", "doubles", "--framework", "node",
        "--predict", `${MODEL}:predict`, "--env", `SCALE=${scale}`, "--link", "bandit");
    }
  }, 60_000);

  it("sends feedback that an exp4 policy learns from, per uid, and shows the weights", async () => {
    expect(await ok("policy-state", "bandit")).toEqual({ app_name: "bandit", policy: "exp4", weights: {} });
    expect(await ok("feedback", "bandit", "--uid", "alice", "--input", "[1, 2]", "--label", "3")).toEqual({ feedback_accepted: true });
    const human = await cli("feedback", "bandit", "--uid", "0", "--input", "[1, 2]", "--label", "3");
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain("Feedback accepted by application 'bandit'");

    // The frontend sends learned weights to the daemon in batches (250 ms after a change).
    let state: { weights: Record<string, Record<string, number>> } = { weights: {} };
    await waitFor(async () => {
      state = await ok("policy-state", "bandit");
      return "alice" in state.weights && "*" in state.weights;
    }, 15_000, "the learned weights to reach the daemon");
    for (const uid of ["alice", "*"]) {
      const weights = state.weights[uid]!;
      expect(Object.keys(weights).sort()).toEqual(["right", "wrong"]);
      // Exp4 scores every model's answer: the right one stays at 1 (normalized), the wrong one drops.
      expect(weights.right).toBe(1);
      expect(weights.wrong).toBeLessThan(1);
    }

    const one = await ok("policy-state", "bandit", "--uid", "alice");
    expect(Object.keys(one.weights)).toEqual(["alice"]);
    // uid 0 is no particular user: its feedback trained the application-wide weights.
    expect((await ok("policy-state", "bandit", "--uid", "0")).weights).toEqual({ "*": state.weights["*"] });
    const table = await cli("policy-state", "bandit");
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/application bandit\s+policy exp4/);
    expect(table.stdout).toMatch(/^alice\s+right\s+\d/m);
    expect(table.stdout).toMatch(/^\*\s+wrong\s+\d/m);
  });

  it("says a policy that does not learn has no weights", async () => {
    const r = await cli("policy-state", "plain");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("policy default does not learn from feedback");
  });

  it("refuses bad feedback with a clear error and exit code", async () => {
    const badLabel = await cli("feedback", "bandit", "--uid", "1", "--input", "[1, 2]", "--label", '{"x": 1}');
    expect(badLabel.code).toBe(2);
    expect(badLabel.stderr).toContain("--label must be a JSON number or string");
    const notJson = await cli("feedback", "bandit", "--uid", "1", "--input", "[1, 2", "--label", "3");
    expect(notJson.code).toBe(2);
    const emptyUid = await cli("feedback", "bandit", "--uid", "", "--input", "[1, 2]", "--label", "3");
    expect(emptyUid.code).toBe(2);
    expect(emptyUid.stderr).toContain("uid");
    const wrongType = await cli("feedback", "bandit", "--uid", "1", "--input", '"text"', "--label", "3", "--json");
    expect(wrongType.code).toBe(4);
    expect(JSON.parse(wrongType.stdout)).toMatchObject({ code: "QUERY_REJECTED", error: expect.stringContaining("400") });
    for (const app of ["nope", "__proto__", "constructor"]) {
      const unknown = await cli("feedback", app, "--uid", "1", "--input", "[1]", "--label", "3", "--json");
      expect(unknown.code, app).toBe(4);
      expect(JSON.parse(unknown.stdout), app).toMatchObject({ code: "QUERY_REJECTED" });
      const noState = await cli("policy-state", app, "--json");
      expect(noState.code, app).toBe(4);
      expect(JSON.parse(noState.stdout), app).toMatchObject({ code: "ADMIN_REJECTED", error: expect.stringContaining(app) });
    }
  });
});
