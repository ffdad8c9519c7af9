/**
 * The user's whole path on the embedded default, through the real CLI and real processes:
 * start, register, deploy Python and Node models, predict, roll versions forward and back, scale,
 * kill replicas and the management daemon under load, stop.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SLO_MISSED, NO_CONNECTED_MODELS } from "../runtime/frontend/query-processor.js";
import { cliFor, freePort } from "./support/cli.js";
import { assertPythonHas, PYTHON, pythonSkipReason } from "./support/python.js";
import { waitFor } from "./support/cluster-in-process.js";

const fixtures = fileURLToPath(new URL("./fixtures/e2e/", import.meta.url));
const skipReason = pythonSkipReason(["numpy"]);

describe.skipIf(skipReason !== undefined)(`end to end on the local manager${skipReason ? ` (${skipReason})` : ""}`, () => {
  const home = mkdtempSync(join(tmpdir(), "clipper-e2e-"));
  // A secret in the environment the CLI (and so the supervisor) runs in, which no model may see.
  const planted = "planted-secret-7b3e";
  const env = { CLIPPER_HOME: home, CLIPPER_PYTHON: PYTHON, FORCE_COLOR: "0", CLIPPER_TEST_PLANTED: planted, MY_API_KEY: planted };
  let queryUrl = "";
  let managementUrl = "";

  const { cli, ok } = cliFor(env);
  const predict = async (app: string, body: unknown): Promise<{ status: number; body: any; ms: number }> => {
    const started = performance.now();
    const res = await fetch(`${queryUrl}/${app}/predict`, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body) });
    return { status: res.status, body: await res.json(), ms: performance.now() - started };
  };
  /** Sends queries from `clients` concurrent loops until stopped; returns every reply. */
  const load = (app: string, input: unknown, clients = 4) => {
    let running = true;
    const replies: Array<{ status: number; body: any; ms: number }> = [];
    const loops = Array.from({ length: clients }, async () => {
      while (running) replies.push(await predict(app, { input }));
    });
    return { replies, stop: async () => { running = false; await Promise.all(loops); return replies; } };
  };
  const status = async () => ok("status");

  beforeAll(async () => {
    assertPythonHas(["numpy"]);
    const [q, m, r] = [await freePort(), await freePort(), await freePort()];
    const started = await ok("start", "--query-port", String(q), "--management-port", String(m), "--rpc-port", String(r));
    queryUrl = started.queryUrl;
    managementUrl = started.managementUrl;
    expect(queryUrl).toBe(`http://127.0.0.1:${q}`);
  }, 120_000);

  afterAll(async () => {
    await cli("stop");
    rmSync(home, { recursive: true, force: true });
  }, 60_000);

  it("serves a Python model registered, deployed and linked through the CLI", async () => {
    await ok("register-app", "sum", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "3000");
    await ok("deploy-model", "sum-model", "--version", "1", "--input-type", "doubles", "--framework", "python",
      "--predict", join(fixtures, "sum_v1.py:predict"), "--replicas", "2", "--link", "sum");
    const one = await predict("sum", { input: [1.0, 2.0, 3.0] });
    expect(one.body).toEqual({ query_id: expect.any(Number), output: 6.0, default: false });
    const batch = await predict("sum", { input_batch: [[1, 1], [2, 2, 2], [0.5]] });
    expect(batch.body.batch_predictions.map((p: any) => p.output)).toEqual([2, 6, 0.5]);
    const viaCli = await ok("predict", "sum", "[4, 5]");
    expect(viaCli).toMatchObject({ output: 9, default: false });
    const models = await ok("models");
    expect(models).toEqual([expect.objectContaining({ model_name: "sum-model", model_version: "1", is_current_version: true, connected_replicas: 2 })]);
  });

  it("serves a TypeScript model on the Node runtime", async () => {
    await ok("register-app", "words", "--input-type", "strings", "--default-output", "0", "--slo-ms", "3000");
    await ok("deploy-model", "word-count", "--version", "1", "--input-type", "strings", "--framework", "node",
      "--predict", join(fixtures, "words.ts:predict"), "--link", "words");
    const reply = await predict("words", { input: "the quick brown fox" });
    expect(reply.body).toMatchObject({ output: 4, default: false });
  });

  it("hands a model its --env values and RPC credential, never the CLI's other variables, the control token or the RPC key", async () => {
    await ok("register-app", "env", "--input-type", "strings", "--default-output", "none", "--slo-ms", "5000");
    await ok("deploy-model", "env-report", "--version", "1", "--input-type", "strings", "--framework", "node",
      "--predict", join(fixtures, "env-report.mjs:predict"), "--env", "MODEL_SETTING=from --env", "--env", "OTHER=a=b", "--link", "env");
    const reply = await predict("env", { input: "x" });
    expect(reply.body.default).toBe(false);
    // The frontend embeds an output that is JSON as JSON.
    const seen = (typeof reply.body.output === "string" ? JSON.parse(reply.body.output) : reply.body.output) as Record<string, string>;
    expect(seen).toMatchObject({ MODEL_SETTING: "from --env", OTHER: "a=b", CLIPPER_MODEL_NAME: "env-report" });
    expect(Object.keys(seen)).not.toContain("MY_API_KEY");
    expect(Object.keys(seen)).not.toContain("CLIPPER_TEST_PLANTED");
    expect(Object.keys(seen)).not.toContain("CLIPPER_HOME");
    const clusterDir = join(home, "clusters", "default");
    const secrets = [
      planted,
      readFileSync(join(clusterDir, "rpc-key"), "utf8").trim(),
      (JSON.parse(readFileSync(join(clusterDir, "supervisor.json"), "utf8")) as { controlToken: string }).controlToken,
    ];
    for (const secret of secrets) expect(JSON.stringify(seen)).not.toContain(secret);
    await ok("stop-models", "env-report");
    await ok("unregister-app", "env");
  });

  it("rolls a new version forward and back with no failed query", async () => {
    const traffic = load("sum", [1, 2]);
    await ok("deploy-model", "sum-model", "--version", "2", "--input-type", "doubles", "--framework", "python",
      "--predict", join(fixtures, "sum_v2.py:predict"));
    await waitFor(async () => (await predict("sum", { input: [1, 2] })).body.output === 30, 10_000, "version 2 to serve");
    await ok("set-version", "sum-model", "1");
    await waitFor(async () => (await predict("sum", { input: [1, 2] })).body.output === 3, 10_000, "version 1 to serve again");
    const replies = await traffic.stop();
    expect(replies.length).toBeGreaterThan(10);
    for (const r of replies) {
      expect(r.status).toBe(200);
      expect(r.body.default).toBe(false);
      expect([3, 30]).toContain(r.body.output);
    }
    const pinned = await predict("sum", { input: [1, 2], version: "2" });
    expect(pinned.body.output).toBe(30);
  });

  it("answers the default with the exact explanation for an unlinked app and a model scaled to zero", async () => {
    await ok("register-app", "lonely", "--input-type", "doubles", "--default-output", "\"nobody home\"");
    const unlinked = await predict("lonely", { input: [1] });
    expect(unlinked.body).toMatchObject({ output: "nobody home", default: true, default_explanation: NO_CONNECTED_MODELS });

    await ok("register-app", "scaled", "--input-type", "strings", "--default-output", "-2");
    await ok("deploy-model", "scaled-model", "--version", "1", "--input-type", "strings", "--framework", "node",
      "--predict", join(fixtures, "words.ts"), "--link", "scaled");
    expect((await predict("scaled", { input: "a b" })).body.output).toBe(2);
    await ok("replicas", "scaled-model", "0");
    await waitFor(async () => (await predict("scaled", { input: "a b" })).body.default === true, 10_000, "zero replicas");
    const none = await predict("scaled", { input: "a b" });
    expect(none.body).toMatchObject({ output: -2, default: true, default_explanation: NO_CONNECTED_MODELS });
  });

  it("fails a deployment whose replicas crash at once, with the reason, and leaves nothing behind", async () => {
    const started = Date.now();
    const r = await cli("deploy-model", "broken", "--version", "1", "--input-type", "doubles", "--framework", "python",
      "--predict", join(fixtures, "broken.py"));
    expect(r.code).toBe(6);
    expect(r.stderr).toContain("cannot load weights.bin");
    expect(Date.now() - started).toBeLessThan(30_000);
    expect((await ok("models")).some((m: any) => m.model_name === "broken")).toBe(false);
    expect((await status()).replicas.some((x: any) => x.name === "broken")).toBe(false);
    // Its deployment is forgotten too, not only stopped: there is nothing to scale back up.
    const scaled = await cli("replicas", "broken", "1", "--version", "1");
    expect(scaled.stderr).toContain("no deployment of model broken version 1");
  });

  it("answers the default on time when the model is slower than the SLO", async () => {
    await ok("register-app", "hurry", "--input-type", "doubles", "--default-output", "0", "--slo-ms", "200");
    await ok("deploy-model", "slow-model", "--version", "1", "--input-type", "doubles", "--framework", "python",
      "--predict", join(fixtures, "slow.py:predict"), "--link", "hurry");
    const reply = await predict("hurry", { input: [1] });
    expect(reply.body).toMatchObject({ output: 0, default: true, default_explanation: SLO_MISSED });
    expect(reply.ms).toBeLessThan(1_000);
  });

  it("loses no query when a replica is killed under load, and brings the replica back", async () => {
    const before = (await status()).replicas.find((r: any) => r.name === "sum-model" && r.version === "1" && r.replica === 0);
    expect(before?.pid).toBeGreaterThan(0);
    const traffic = load("sum", [2, 2]);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(before.pid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 1_500));
    const replies = await traffic.stop();
    for (const r of replies) {
      expect(r.status).toBe(200);
      if (r.body.default) expect(r.body.default_explanation).toBe(SLO_MISSED);
      else expect(r.body.output).toBe(4);
      expect(r.ms).toBeLessThan(3_000 + 1_000);
    }
    await waitFor(async () => {
      const again = (await status()).replicas.find((r: any) => r.name === "sum-model" && r.version === "1" && r.replica === 0);
      return again?.state === "running" && again.restarts >= 1 && again.pid !== before.pid;
    }, 20_000, "the replica to be restarted");
    await waitFor(async () => (await ok("models")).find((m: any) => m.model_name === "sum-model" && m.model_version === "1")?.connected_replicas === 2,
      30_000, "the restarted replica to reconnect");
  });

  it("keeps every acknowledged write when the management daemon is killed with SIGKILL", async () => {
    await ok("register-app", "durable", "--input-type", "ints", "--default-output", "7");
    const management = (await status()).components.find((c: any) => c.component === "management");
    process.kill(management.pid, "SIGKILL");
    // The frontend keeps serving on its last known state while the daemon is down.
    expect((await predict("sum", { input: [1, 2] })).body.output).toBe(3);
    await waitFor(async () => (await cli("apps", "--json")).code === 0, 20_000, "the daemon to come back");
    const apps = await ok("apps");
    expect(apps.map((a: any) => a.name).sort()).toEqual(["durable", "hurry", "lonely", "scaled", "sum", "words"]);
    expect(apps.find((a: any) => a.name === "durable")).toMatchObject({ input_type: "integers", default_output: "7" });
    const after = (await status()).components.find((c: any) => c.component === "management");
    expect(after.restarts).toBeGreaterThanOrEqual(1);
  });

  it("gets its replicas back at once after the query frontend is killed and restarted", async () => {
    const frontend = (await status()).components.find((c: any) => c.component === "frontend");
    const killed = Date.now();
    process.kill(frontend.pid, "SIGKILL");
    // The supervisor restarts the frontend; replicas see their connection come back and say hello
    // at once (not at their next 5 s heartbeat), so the new frontend registers them again.
    const served = async (app: string, input: unknown, output: number): Promise<boolean> => {
      try {
        return (await predict(app, { input })).body.output === output;
      } catch {
        return false; // the port is closed until the supervisor has restarted the frontend
      }
    };
    await waitFor(() => served("sum", [1, 2], 3), 30_000, "the restarted frontend to serve the Python model");
    await waitFor(() => served("words", "one two", 2), 30_000, "the restarted frontend to serve the Node model");
    expect(Date.now() - killed).toBeLessThan(4_500);
  });

  it("rejects bad input with 4xx and one-line CLI errors, and stays up", async () => {
    expect((await predict("sum", "{oops")).status).toBe(400);
    expect((await predict("sum", { input: "not numbers" })).body.error).toBe("Json error");
    expect((await predict("ghost", { input: [1] })).status).toBe(404);
    const bad = await fetch(`${managementUrl}/admin/add_app`, {
      method: "POST", headers: { "content-type": "application/json" }, body: "{\"name\":\"x\"",
    });
    expect(bad.status).toBe(400);
    expect(await bad.text()).not.toBe("");
    const badName = await cli("register-app", "Bad_Name", "--input-type", "doubles");
    expect(badName.code).not.toBe(0);
    expect(badName.stderr.trim().split("\n")[0]).toMatch(/^error: /);
    expect(badName.stderr).not.toMatch(/\n\s+at /);
    const badType = await cli("register-app", "x", "--input-type", "quaternions");
    expect(badType.code).not.toBe(0);
    expect(badType.stderr).toContain("unknown input type");
    expect((await predict("sum", { input: [1, 2] })).body.output).toBe(3);
  });
});
