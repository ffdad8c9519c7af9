/**
 * Selection policies end to end, one test per policy, through the HTTP APIs: a real management
 * daemon and query frontend (in process) with model containers speaking RPC v3 through our Node
 * container client. Feedback goes through POST /<app>/update; learned weights are checked in the
 * daemon's durable state, across a daemon restart, and in a new frontend that reads them back.
 */
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startManagementServer } from "../runtime/management/server.js";
import { startQueryFrontend } from "../runtime/frontend/frontend.js";
import { NO_CONNECTED_MODELS } from "../runtime/frontend/query-processor.js";
import { decodeInput } from "../runtime/shared/input-types.js";
import type { PolicyConfig } from "../runtime/shared/state.js";
import type { BatchHandler } from "../runtime/container-node/rpc-client.js";
import { ClipperConnection } from "../src/connection.js";
import type { ContainerManager } from "../src/managers/container-manager.js";
import { startInProcessCluster, waitFor, type InProcessCluster } from "./support/cluster-in-process.js";

let c: InProcessCluster;

beforeAll(async () => {
  c = await startInProcessCluster({ replicaTimeoutMs: 5_000 });
});
afterAll(async () => {
  await c?.close();
});

async function addApp(cluster: InProcessCluster, name: string, policy: PolicyConfig | undefined, sloMicros = 2_000_000): Promise<void> {
  await cluster.admin.postText("/admin/add_app", {
    name, input_type: "doubles", default_output: '"unsure"', latency_slo_micros: sloMicros, ...(policy ? { policy } : {}),
  });
}

async function addModel(cluster: InProcessCluster, name: string, version = "1"): Promise<void> {
  await cluster.admin.postText("/admin/add_model", {
    model_name: name, model_version: version, labels: [], input_type: "doubles",
    container_name: "NO_CONTAINER", model_data_path: "x", batch_size: -1,
  });
}

async function link(cluster: InProcessCluster, app: string, models: string[]): Promise<void> {
  await cluster.admin.postText("/admin/add_model_links", { app_name: app, model_names: models });
}

async function setPolicy(cluster: InProcessCluster, app: string, policy: PolicyConfig): Promise<string> {
  return cluster.admin.postText("/admin/set_app_policy", { name: app, policy });
}

/** Waits until the frontend serves the application with this policy and these links. */
async function settled(cluster: InProcessCluster, app: string, policy: PolicyConfig | undefined, linked: string[]): Promise<void> {
  await cluster.waitForConfig((f) => {
    const record = f.state()?.applications[app];
    return Boolean(record && JSON.stringify(record.policy) === JSON.stringify(policy) &&
      JSON.stringify(record.linked_models) === JSON.stringify(linked));
  });
}

async function update(cluster: InProcessCluster, app: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${cluster.frontend.queryUrl}/${app}/update`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function policyState(cluster: { admin: InProcessCluster["admin"] }, app: string): Promise<Record<string, Record<string, number>>> {
  return (await cluster.admin.postJson<{ weights: Record<string, Record<string, number>> }>("/admin/get_policy_state", { app_name: app })).weights;
}

const sumOf = (raw: Buffer) => (decodeInput("doubles", raw) as number[]).reduce((a, b) => a + b, 0);
/** A model answering f(sum of the input) for each input. */
const model = (f: (sum: number) => unknown, delayMs = 0): BatchHandler => async (batch) => {
  if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
  return batch.inputs.map((raw) => {
    const y = f(sumOf(raw));
    return typeof y === "string" ? y : JSON.stringify(y);
  });
};

describe("selection policies through the HTTP API", () => {
  it("default: Clipper's single model; feedback is accepted and ignored", async () => {
    await addApp(c, "plain", undefined);
    await addModel(c, "echo");
    await link(c, "plain", ["echo"]);
    await settled(c, "plain", undefined, ["echo"]);
    await c.addContainer("echo", "1", "doubles", model((s) => s));
    const reply = await c.predict("plain", { input: [1, 2] });
    expect(reply.body).toEqual({ query_id: expect.any(Number), output: 3, default: false });
    expect(await update(c, "plain", { uid: 1, input: [1, 2], label: 3 })).toEqual({ status: 200, body: { feedback_accepted: true } });
    expect(await policyState(c, "plain")).toEqual({});
  });

  it("ensemble: votes, reports confidence, answers at the deadline with who is missing, and says unsure", async () => {
    await addApp(c, "vote", { name: "ensemble", threshold: 0.5 }, 400_000);
    for (const m of ["cat-a", "cat-b", "sloth"]) await addModel(c, m);
    await link(c, "vote", ["cat-a", "cat-b", "sloth"]);
    await settled(c, "vote", { name: "ensemble", threshold: 0.5 }, ["cat-a", "cat-b", "sloth"]);
    await c.addContainer("cat-a", "1", "doubles", model(() => "cat"));
    await c.addContainer("cat-b", "1", "doubles", model(() => ({ label: "cat", confidence: 0.6 })));
    await c.addContainer("sloth", "1", "doubles", model(() => "dog", 1_500));
    const reply = await c.predict("vote", { input: [1] });
    expect(reply.body).toEqual({
      query_id: expect.any(Number), output: "cat", default: false,
      confidence: 0.666667, models: ["cat-a", "cat-b"], missing_models: ["sloth"],
    });
    expect(reply.ms).toBeLessThan(1_200);

    expect(await setPolicy(c, "vote", { name: "ensemble", threshold: 0.9 })).toBe("Successfully set policy of application 'vote' to 'ensemble'");
    await settled(c, "vote", { name: "ensemble", threshold: 0.9 }, ["cat-a", "cat-b", "sloth"]);
    const unsure = await c.predict("vote", { input: [1] });
    expect(unsure.body).toMatchObject({
      output: "unsure", default: true, confidence: 0.666667, models: ["cat-a", "cat-b"], missing_models: ["sloth"], unsure: true,
    });
    expect(unsure.body.default_explanation).toContain("confidence");
    expect(await update(c, "vote", { uid: 1, input: [1], label: "cat" })).toEqual({ status: 200, body: { feedback_accepted: true } });
  });

  it("exp3: plays one model per query and learns from /update to prefer the right one", async () => {
    await addApp(c, "bandit", { name: "exp3", gamma: 0.1 });
    await addModel(c, "right");
    await addModel(c, "wrong");
    await link(c, "bandit", ["right", "wrong"]);
    await settled(c, "bandit", { name: "exp3", gamma: 0.1 }, ["right", "wrong"]);
    await c.addContainer("right", "1", "doubles", model((s) => s));
    await c.addContainer("wrong", "1", "doubles", model((s) => s + 1));
    const answeredBy: string[] = [];
    for (let round = 0; round < 80; round++) {
      const input = [round, 1];
      const reply = await c.predict("bandit", { input });
      expect(reply.body.default).toBe(false);
      answeredBy.push(reply.body.answered_by);
      expect(await update(c, "bandit", { uid: 0, input, label: round + 1 }).then((r) => r.status)).toBe(200);
    }
    // uid 0 (Clipper's default user) is the application-wide state; wait for the frontend to save it.
    await waitFor(async () => ((await policyState(c, "bandit"))["*"]?.wrong ?? 1) < 0.5, 5_000, "learned weights in the daemon");
    const weights = (await policyState(c, "bandit"))["*"]!;
    expect(weights.right).toBe(1);
    expect(answeredBy.slice(-20).filter((m) => m === "right").length).toBeGreaterThan(answeredBy.slice(0, 20).filter((m) => m === "right").length);
    const metrics = await (await fetch(`${c.frontend.queryUrl}/metrics`)).text();
    expect(metrics).toMatch(/clipper_policy_choices_total\{app="bandit",policy="exp3",model="right"\} \d+/);
    expect(metrics).toMatch(/clipper_policy_weight\{app="bandit",model="right"\} 1/);
    // Per-uid state stays apart.
    await c.predict("bandit", { input: [5], uid: 42 });
    await update(c, "bandit", { uid: 42, input: [5], label: 5 });
    await waitFor(async () => "42" in (await policyState(c, "bandit")), 5_000, "per-uid weights in the daemon");
  });

  it("exp4: a weighted ensemble that learns, per uid, which model to trust", async () => {
    await addApp(c, "weighted", { name: "exp4", eta: 1 });
    for (const m of ["dog-a", "cat-c", "dog-b"]) await addModel(c, m);
    await link(c, "weighted", ["dog-a", "cat-c", "dog-b"]);
    await settled(c, "weighted", { name: "exp4", eta: 1 }, ["dog-a", "cat-c", "dog-b"]);
    await c.addContainer("dog-a", "1", "doubles", model(() => "dog"));
    await c.addContainer("cat-c", "1", "doubles", model(() => "cat"));
    await c.addContainer("dog-b", "1", "doubles", model(() => "dog"));
    const first = await c.predict("weighted", { input: [3], uid: 7 });
    expect(first.body).toMatchObject({ output: "dog", default: false, confidence: 0.666667, models: ["dog-a", "cat-c", "dog-b"], missing_models: [] });
    // User 7 says "cat": after 2 rounds 1 > 2e^-2, so the weighted vote turns.
    for (let round = 0; round < 2; round++) {
      await c.predict("weighted", { input: [3], uid: 7 });
      await update(c, "weighted", { uid: 7, input: [3], label: "cat" });
    }
    const learned = await c.predict("weighted", { input: [3], uid: 7 });
    expect(learned.body).toMatchObject({ output: "cat", default: false });
    expect(learned.body.confidence).toBeCloseTo(1 / (1 + 2 * Math.exp(-2)), 5);
    // Other users (and the application-wide state) are unaffected.
    expect((await c.predict("weighted", { input: [3], uid: 8 })).body.output).toBe("dog");
    expect((await c.predict("weighted", { input: [3] })).body.output).toBe("dog");
    await waitFor(async () => (await policyState(c, "weighted"))["7"]?.["dog-a"] !== undefined, 5_000, "user 7's weights in the daemon");
    expect((await policyState(c, "weighted"))["7"]!["dog-a"]).toBeCloseTo(Math.exp(-2), 9);
  });

  it("canary: splits traffic between versions, sticky per uid, with per-version metrics; promote and roll back", async () => {
    await addModel(c, "ranker", "1");
    await addModel(c, "ranker", "2");
    const split: PolicyConfig = { name: "canary", weights: { "1": 50, "2": 50, "3": 10 } };
    await addApp(c, "rank", split);
    await link(c, "rank", ["ranker"]);
    await settled(c, "rank", split, ["ranker"]);
    await c.addContainer("ranker", "1", "doubles", model(() => "v1"));
    await c.addContainer("ranker", "2", "doubles", model(() => "v2"));
    const counts: Record<string, number> = {};
    for (let i = 0; i < 100; i++) {
      const reply = await c.predict("rank", { input: [i] });
      expect(reply.body.output).toBe(`v${reply.body.version}`);
      expect(reply.body.missing_versions).toEqual(["3"]); // version 3 does not exist: weight 0, and said so
      counts[reply.body.version] = (counts[reply.body.version] ?? 0) + 1;
    }
    expect(counts["1"]).toBeGreaterThan(20);
    expect(counts["2"]).toBeGreaterThan(20);
    const sticky = await c.predict("rank", { input: [1], uid: "alice" });
    for (let i = 0; i < 10; i++) expect((await c.predict("rank", { input: [i], uid: "alice" })).body.version).toBe(sticky.body.version);
    const metrics = await (await fetch(`${c.frontend.queryUrl}/metrics`)).text();
    expect(metrics).toMatch(/clipper_canary_queries_total\{app="rank",model="ranker",version="2",outcome="output"\} \d+/);
    expect(metrics).toContain('clipper_canary_latency_seconds_count{app="rank",model="ranker",version="1"}');

    // Promote: all traffic to version 2. Roll back: all to version 1.
    for (const [weights, version] of [[{ "1": 0, "2": 1 }, "2"], [{ "1": 1, "2": 0 }, "1"]] as const) {
      const policy: PolicyConfig = { name: "canary", weights: { ...weights } };
      await setPolicy(c, "rank", policy);
      await settled(c, "rank", policy, ["ranker"]);
      for (let i = 0; i < 10; i++) expect((await c.predict("rank", { input: [i], uid: i })).body).toMatchObject({ output: `v${version}`, version });
    }
    // A canary serves one model.
    await addModel(c, "other");
    await expect(link(c, "rank", ["other"])).rejects.toThrow(/canary selection policy serves one model/);
  });

  it("cascade: the fast model answers when confident, the slow one otherwise, and says which", async () => {
    const policy: PolicyConfig = { name: "cascade", models: ["fast", "slow"], threshold: 0.8 };
    await addApp(c, "idk", policy);
    await addModel(c, "fast");
    await addModel(c, "slow");
    await link(c, "idk", ["slow", "fast"]);
    await settled(c, "idk", policy, ["slow", "fast"]);
    let slowCalls = 0;
    await c.addContainer("fast", "1", "doubles", model((s) => ({ label: s > 5 ? "big" : "small?", confidence: s > 5 ? 0.95 : 0.3 })));
    await c.addContainer("slow", "1", "doubles", async (batch) => {
      slowCalls += batch.inputs.length;
      return batch.inputs.map((raw) => (sumOf(raw) > 5 ? "big" : "small"));
    });
    const confident = await c.predict("idk", { input: [9] });
    expect(confident.body).toEqual({
      query_id: expect.any(Number), output: "big", default: false,
      confidence: 0.95, answered_by: "fast", models: ["fast"], missing_models: [],
    });
    expect(slowCalls).toBe(0);
    const unsure = await c.predict("idk", { input: [1] });
    expect(unsure.body).toMatchObject({ output: "small", default: false, confidence: 1, answered_by: "slow", models: ["fast", "slow"] });
    expect(slowCalls).toBe(1);
  });

  it("answers the default output when a combining policy has no connected model", async () => {
    await addApp(c, "empty", { name: "ensemble" }, 200_000);
    await addModel(c, "ghost");
    await link(c, "empty", ["ghost"]);
    await settled(c, "empty", { name: "ensemble" }, ["ghost"]);
    const reply = await c.predict("empty", { input: [1] });
    expect(reply.body).toMatchObject({ default: true, default_explanation: NO_CONNECTED_MODELS, models: [], missing_models: ["ghost"] });
  });
});

describe("the library (ClipperConnection)", () => {
  it("registers an application with a policy, changes it, and reads learned state", async () => {
    const addresses = {
      cluster: "test", manager: "local" as const, queryUrl: c.frontend.queryUrl, managementUrl: c.management.url,
      rpcAddress: `tcp://127.0.0.1:${c.frontend.rpcPort}`, metricsUrl: `${c.frontend.queryUrl}/metrics`,
    };
    const conn = new ClipperConnection({ connect: async () => addresses } as unknown as ContainerManager);
    await conn.connect();
    expect(await conn.registerApplication({ name: "lib-app", inputType: "d", policy: "ensemble:threshold=0.6" }))
      .toBe("Successfully added application with name 'lib-app'");
    expect((await conn.getAppInfo("lib-app"))?.policy).toEqual({ name: "ensemble", threshold: 0.6 });
    expect(await conn.setApplicationPolicy("lib-app", { name: "exp4", eta: 0.5 })).toBe("Successfully set policy of application 'lib-app' to 'exp4'");
    expect((await conn.getAllApps(true)).find((a) => a.name === "lib-app")?.policy).toEqual({ name: "exp4", eta: 0.5 });
    expect(await conn.getPolicyState("lib-app")).toEqual({ app_name: "lib-app", policy: "exp4", weights: {} });
    await expect(conn.setApplicationPolicy("lib-app", "exp4:eta")).rejects.toMatchObject({ code: "USAGE" });
    await expect(conn.setApplicationPolicy("lib-app", "exp4:eta=-1")).rejects.toThrow("Invalid policy 'exp4': eta must be a positive number");
  });
});

describe("durability of learned weights", () => {
  it("keeps bandit weights across a management daemon restart and hands them to a new frontend", async () => {
    const cluster = await startInProcessCluster();
    let restarted: Awaited<ReturnType<typeof startManagementServer>> | undefined;
    try {
      await addApp(cluster, "durable", { name: "exp3", gamma: 0.5 });
      await addModel(cluster, "good");
      await addModel(cluster, "bad");
      await link(cluster, "durable", ["good", "bad"]);
      await settled(cluster, "durable", { name: "exp3", gamma: 0.5 }, ["good", "bad"]);
      await cluster.addContainer("good", "1", "doubles", model((s) => s));
      await cluster.addContainer("bad", "1", "doubles", model((s) => -s));
      for (let round = 1; round <= 30; round++) {
        await cluster.predict("durable", { input: [round] });
        await update(cluster, "durable", { uid: 0, input: [round], label: round });
      }
      await waitFor(async () => ((await policyState(cluster, "durable"))["*"]?.bad ?? 1) < 1, 5_000, "weights in the daemon");
      // Let the last flush land, then read what is durable.
      await new Promise((r) => setTimeout(r, 600));
      const before = await policyState(cluster, "durable");
      expect(before["*"]!.good).toBe(1);
      expect(before["*"]!.bad).toBeLessThan(1);

      // Restart the daemon on the same port and state directory.
      const port = cluster.management.port;
      await cluster.management.close();
      restarted = await startManagementServer({
        host: "127.0.0.1", port, stateDir: cluster.stateDir, logger: pino({ level: "silent" }),
      });
      expect(await policyState(cluster, "durable")).toEqual(before);

      // A new frontend learns the weights from the daemon's watch stream.
      const fresh = await startQueryFrontend({
        host: "127.0.0.1", port: 0, rpcPort: 0, managementUrl: restarted.url, log: pino({ level: "silent" }),
        rpcAuth: "plain", rpcKey: cluster.rpcKey,
      });
      try {
        await waitFor(async () => {
          const text = await (await fetch(`${fresh.queryUrl}/metrics`)).text();
          return text.includes(`clipper_policy_weight{app="durable",model="bad"} ${before["*"]!.bad}`);
        }, 5_000, "the new frontend's weights");
      } finally {
        await fresh.close();
      }

      // The old frontend follows the restarted daemon and keeps learning into it.
      await cluster.predict("durable", { input: [99] });
      await update(cluster, "durable", { uid: "u1", input: [99], label: 99 });
      await waitFor(async () => "u1" in (await policyState(cluster, "durable")), 10_000, "new weights in the restarted daemon");

      // Deleting the application deletes its learned state.
      await cluster.admin.postText("/admin/delete_app", { name: "durable" });
      await addApp(cluster, "durable", { name: "exp3" });
      expect(await policyState(cluster, "durable")).toEqual({});
    } finally {
      await cluster.close();
      await restarted?.close();
    }
  });
});
