/**
 * Selection policies through processes and servers: the CLI's check of policy specs, and the admin
 * API's validation of policies (an in-process management daemon). The pure parts (bandit
 * arithmetic, scripted policies, weight sync, spec syntax) are in test/unit/policies.test.ts.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ManagementServer, startManagementServer } from "../runtime/management/server.js";
import { runCli } from "./support/cli.js";

describe("policy specs (CLI and library)", () => {
  it("are checked by the CLI before it looks for a cluster", async () => {
    const home = await mkdtemp(join(tmpdir(), "clipper-cli-policy-"));
    try {
      const bad = await runCli(["set-policy", "app", "ensemble:threshold"], { CLIPPER_HOME: home });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("is not key=value");
      const badRegister = await runCli(["register-app", "a", "--input-type", "d", "--policy", "{nope"], { CLIPPER_HOME: home });
      expect(badRegister.code).toBe(2);
      const good = await runCli(["set-policy", "app", "canary:1=95,2=5", "--json"], { CLIPPER_HOME: home });
      expect(good.code).toBe(3); // well-formed; no cluster to send it to
      const help = await runCli(["set-policy", "--help"], { CLIPPER_HOME: home });
      expect(help.stdout).toContain("cascade:models=fast|slow,threshold=0.8");
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});

describe("admin API: policies", () => {
  let server: ManagementServer;
  let dir: string;
  const post = async (path: string, body: unknown) => {
    const res = await fetch(server.url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    return { status: res.status, text: await res.text() };
  };
  const APP = { input_type: "doubles", default_output: "-1", latency_slo_micros: 100_000 };
  const MODEL = { model_version: "1", labels: [], input_type: "doubles", container_name: "NO_CONTAINER", model_data_path: "x", batch_size: -1 };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "clipper-policies-"));
    server = await startManagementServer({ host: "127.0.0.1", port: 0, stateDir: dir, logger: pino({ level: "silent" }) });
    for (const m of ["m1", "m2", "m3"]) await post("/admin/add_model", { ...MODEL, model_name: m });
  });
  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses bad policies with a clear message", async () => {
    const cases: Array<[unknown, string | RegExp]> = [
      ["ensemble", /^Invalid policy: expected a JSON object such as/],
      [{ threshold: 0.5 }, 'Invalid policy: missing "name"; expected one of default, ensemble, exp3, exp4, canary, cascade'],
      [{ name: "bandit" }, 'Invalid policy: unknown policy name "bandit"; expected one of default, ensemble, exp3, exp4, canary, cascade'],
      [{ name: "ensemble", threshold: 1.5 }, "Invalid policy 'ensemble': threshold must be between 0 and 1"],
      [{ name: "ensemble", threshold: "high" }, "Invalid policy 'ensemble': threshold must be a number between 0 and 1"],
      [{ name: "ensemble", thresh: 0.5 }, "Invalid policy 'ensemble': unknown parameter 'thresh' (ensemble takes: threshold)"],
      [{ name: "default", gamma: 1 }, "Invalid policy 'default': unknown parameter 'gamma' (default takes no parameters)"],
      [{ name: "exp3", gamma: 0 }, "Invalid policy 'exp3': gamma must be a positive number"],
      [{ name: "exp3", gamma: 2 }, "Invalid policy 'exp3': gamma must be in (0, 1]"],
      [{ name: "exp4", eta: -1 }, "Invalid policy 'exp4': eta must be a positive number"],
      [{ name: "canary" }, /^Invalid policy 'canary': weights must be an object of version → weight/],
      [{ name: "canary", weights: { "1": -5 } }, "Invalid policy 'canary': each weight must be ≥ 0"],
      [{ name: "canary", weights: { "1": 0 } }, "Invalid policy 'canary': at least one weight must be above 0"],
      [{ name: "canary", weights: { "V1": 1 } }, /^Invalid policy 'canary': model version 'V1' must consist/],
      [{ name: "cascade", models: ["m1"] }, "Invalid policy 'cascade': threshold must be a number between 0 and 1"],
      [{ name: "cascade", models: [], threshold: 0.5 }, "Invalid policy 'cascade': models must name at least one model"],
      [{ name: "cascade", models: ["m1", "m1"], threshold: 0.5 }, "Invalid policy 'cascade': model 'm1' appears twice in models"],
    ];
    for (const [policy, expected] of cases) {
      const answer = await post("/admin/add_app", { ...APP, name: "bad", policy });
      expect(answer.status, JSON.stringify(policy)).toBe(400);
      if (typeof expected === "string") expect(answer.text).toBe(expected);
      else expect(answer.text).toMatch(expected);
    }
    expect((await post("/admin/get_application", { name: "bad" })).text).toBe("{}");
  });

  it("stores a policy at registration and shows it only when not default", async () => {
    expect(await post("/admin/add_app", { ...APP, name: "ens", policy: { name: "ensemble", threshold: 0.6 } }))
      .toEqual({ status: 200, text: "Successfully added application with name 'ens'" });
    expect(JSON.parse((await post("/admin/get_application", { name: "ens" })).text)).toEqual({
      input_type: "doubles", default_output: "-1", latency_slo_micros: 100000, name: "ens", linked_models: [],
      policy: { name: "ensemble", threshold: 0.6 },
    });
    await post("/admin/add_app", { ...APP, name: "plain", policy: { name: "default" } });
    expect((await post("/admin/get_application", { name: "plain" })).text).toBe(
      '{"input_type":"doubles","default_output":"-1","latency_slo_micros":100000,"name":"plain","linked_models":[]}',
    );
    const all = JSON.parse((await post("/admin/get_all_applications", { verbose: true })).text) as Array<Record<string, unknown>>;
    expect(all.find((a) => a.name === "ens")).toHaveProperty("policy");
    expect(all.find((a) => a.name === "plain")).not.toHaveProperty("policy");
  });

  it("links several models under combining policies, one under default and canary", async () => {
    expect((await post("/admin/add_model_links", { app_name: "ens", model_names: ["m1", "m2", "m3"] })).text)
      .toBe("Successfully linked models with names 'm1', 'm2', 'm3' to application 'ens'");
    await post("/admin/add_model_links", { app_name: "plain", model_names: ["m1"] });
    expect(await post("/admin/add_model_links", { app_name: "plain", model_names: ["m2"] })).toEqual({
      status: 400, text: "Application 'plain' already has a linked model ('m1'); the default selection policy serves one model",
    });
    await post("/admin/add_app", { ...APP, name: "can", policy: { name: "canary", weights: { "1": 95, "2": 5 } } });
    await post("/admin/add_model_links", { app_name: "can", model_names: ["m1"] });
    expect(await post("/admin/add_model_links", { app_name: "can", model_names: ["m2"] })).toEqual({
      status: 400, text: "Application 'can' already has a linked model ('m1'); the canary selection policy serves one model",
    });
  });

  it("changes policies with set_app_policy, refusing one model policies over several links", async () => {
    expect(await post("/admin/set_app_policy", { name: "ens", policy: { name: "exp4", eta: 0.2 } })).toEqual({
      status: 200, text: "Successfully set policy of application 'ens' to 'exp4'",
    });
    expect(await post("/admin/set_app_policy", { name: "ens", policy: { name: "default" } })).toEqual({
      status: 400, text: "Application 'ens' has 3 linked models; the 'default' selection policy serves one model. Unlink all but one first",
    });
    expect((await post("/admin/set_app_policy", { name: "ens", policy: { name: "canary", weights: { "1": 1 } } })).status).toBe(400);
    expect(await post("/admin/set_app_policy", { name: "nope", policy: { name: "exp3" } }))
      .toEqual({ status: 400, text: "Application 'nope' does not exist" });
    expect((await post("/admin/set_app_policy", { name: "ens", policy: { name: "exp4", eta: "fast" } })).text)
      .toBe("Invalid policy 'exp4': eta must be a positive number");
    expect((await post("/admin/set_app_policy", { name: "ens" })).text).toMatch(/required key: policy/);
    expect(await post("/admin/set_app_policy", { name: "plain", policy: { name: "default" } }))
      .toEqual({ status: 200, text: "Successfully set policy of application 'plain' to 'default'" });
  });

  it("keeps learned weights, per uid, and forgets them with the application or a policy change", async () => {
    expect(await post("/admin/update_policy_state", { app_name: "ens", weights: { m1: 1, m2: 0.5 } })).toEqual({
      status: 200, text: "Successfully updated the policy state of application 'ens'",
    });
    expect((await post("/admin/update_policy_state", {
      updates: [
        { app_name: "ens", uid: 7, policy: "exp4", weights: { m1: 0.25, m2: 1 } },
        { app_name: "gone", weights: { m1: 1 } },
        { app_name: "ens", uid: "8", policy: "exp3", weights: { m1: 1 } }, // learned under another policy
      ],
    })).text).toBe("Successfully updated 1 policy states; skipped 2 of applications that do not exist or do not learn");
    expect(JSON.parse((await post("/admin/get_policy_state", { app_name: "ens" })).text)).toEqual({
      app_name: "ens", policy: "exp4", weights: { "*": { m1: 1, m2: 0.5 }, "7": { m1: 0.25, m2: 1 } },
    });
    expect(JSON.parse((await post("/admin/get_policy_state", { app_name: "ens", uid: 7 })).text).weights).toEqual({ "7": { m1: 0.25, m2: 1 } });
    expect((await post("/admin/update_policy_state", { app_name: "plain", weights: { m1: 1 } })).text)
      .toBe("Application 'plain' uses the 'default' selection policy, which learns no weights");
    expect((await post("/admin/update_policy_state", { app_name: "ens", weights: { m1: -1 } })).status).toBe(400);
    // Same policy, new parameters: weights kept. Another policy: weights reset.
    await post("/admin/set_app_policy", { name: "ens", policy: { name: "exp4", eta: 0.3 } });
    expect(JSON.parse((await post("/admin/get_policy_state", { app_name: "ens" })).text).weights).not.toEqual({});
    await post("/admin/set_app_policy", { name: "ens", policy: { name: "exp3" } });
    expect(JSON.parse((await post("/admin/get_policy_state", { app_name: "ens" })).text).weights).toEqual({});
    await post("/admin/update_policy_state", { app_name: "ens", weights: { m1: 1 } });
    await post("/admin/delete_app", { name: "ens" });
    await post("/admin/add_app", { ...APP, name: "ens", policy: { name: "exp3" } });
    expect(JSON.parse((await post("/admin/get_policy_state", { app_name: "ens" })).text).weights).toEqual({});
  });
});
