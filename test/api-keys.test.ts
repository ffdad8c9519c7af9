/**
 * Query API keys: the token bucket and the frontend's checks with an injected clock, the admin
 * endpoints (only a hash is stored), and a frontend with `--query-auth keys` over real HTTP.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueryAuth } from "../runtime/frontend/query-auth.js";
import { QueryError } from "../runtime/frontend/query-errors.js";
import { TokenBucket } from "../runtime/frontend/token-bucket.js";
import { ADD_API_KEY_PATH, type CreatedApiKey, defaultQueryAuth, GET_API_KEYS_PATH, hashApiKey, REVOKE_API_KEY_PATH } from "../runtime/shared/api-keys.js";
import { emptyState, type ClusterState } from "../runtime/shared/state.js";
import { addApiKey } from "../runtime/management/api-key-operations.js";
import { addApp, deleteApp } from "../runtime/management/operations.js";
import { describeViolation, stateViolations } from "../runtime/shared/state-invariants.js";
import { AdminApiError } from "../src/errors.js";
import { startInProcessCluster, sumHandler, waitFor, type InProcessCluster } from "./support/cluster-in-process.js";

describe("TokenBucket", () => {
  it("allows a burst, then one request per 1/rate seconds, with Retry-After in whole seconds", () => {
    let now = 0;
    const bucket = new TokenBucket(2, 2, () => now);
    expect(bucket.take().ok).toBe(true);
    expect(bucket.take().ok).toBe(true);
    expect(bucket.take()).toEqual({ ok: false, retryAfterSeconds: 1 });
    now = 499;
    expect(bucket.take().ok).toBe(false);
    now = 500;
    expect(bucket.take().ok).toBe(true);
    now = 60_000; // a long pause refills to the burst, no more
    expect([bucket.take().ok, bucket.take().ok, bucket.take().ok]).toEqual([true, true, false]);
  });

  it("says how long a slow rate must wait", () => {
    let now = 0;
    const bucket = new TokenBucket(0.1, 1, () => now);
    expect(bucket.take().ok).toBe(true);
    expect(bucket.take()).toEqual({ ok: false, retryAfterSeconds: 10 });
    now = 4_000;
    expect(bucket.take()).toEqual({ ok: false, retryAfterSeconds: 6 });
  });
});

function stateWith(keys: { id: string; key: string; app?: string; rate?: number }[]): ClusterState {
  return {
    ...emptyState(),
    api_keys: keys.map((k) => ({
      id: k.id, sha256: hashApiKey(k.key), created_at: "2026-01-01T00:00:00.000Z",
      ...(k.app ? { app: k.app } : {}), ...(k.rate ? { rate: k.rate } : {}),
    })),
  };
}

function refusal(run: () => void): { status: number; headers?: Record<string, string> } | undefined {
  try {
    run();
    return undefined;
  } catch (err) {
    if (!(err instanceof QueryError)) throw err;
    return { status: err.status, headers: err.headers };
  }
}

describe("QueryAuth", () => {
  it("lets everything through in mode none", () => {
    const auth = new QueryAuth("none");
    expect(refusal(() => auth.check({}, { app: "a" }))).toBeUndefined();
  });

  it("answers 401 without or with an unknown key, 403 out of scope, 429 over the rate", () => {
    let now = 0;
    const auth = new QueryAuth("keys", () => now);
    auth.onState(stateWith([{ id: "0000aaaa", key: "clk_all" }, { id: "0000bbbb", key: "clk_a", app: "a", rate: 1 }]));
    expect(refusal(() => auth.check({}, { app: "a" }))?.status).toBe(401);
    expect(refusal(() => auth.check({ authorization: "Bearer nope" }, { app: "a" }))?.status).toBe(401);
    expect(refusal(() => auth.check({ authorization: "Basic clk_all" }, { app: "a" }))?.status).toBe(401);
    expect(refusal(() => auth.check({ authorization: "Bearer clk_all" }, { app: "constructor" }))).toBeUndefined();
    expect(refusal(() => auth.check({ "x-clipper-key": "clk_all" }, { oip: true }))).toBeUndefined();
    expect(refusal(() => auth.check({ authorization: "bearer  clk_a " }, { app: "a" }))).toBeUndefined();
    expect(refusal(() => auth.check({ authorization: "Bearer clk_a" }, { app: "b" }))?.status).toBe(403);
    expect(refusal(() => auth.check({ authorization: "Bearer clk_a" }, { oip: true }))?.status).toBe(403);
    expect(refusal(() => auth.check({ authorization: "Bearer clk_a" }, { app: "a" }))).toEqual({ status: 429, headers: { "retry-after": "1" } });
    now = 1000;
    expect(refusal(() => auth.check({ authorization: "Bearer clk_a" }, { app: "a" }))).toBeUndefined();
    // Revoked: refused at once.
    auth.onState(stateWith([{ id: "0000aaaa", key: "clk_all" }]));
    expect(refusal(() => auth.check({ authorization: "Bearer clk_a" }, { app: "a" }))?.status).toBe(401);
  });

  it("is off on loopback by default and on beyond it", () => {
    expect(defaultQueryAuth("127.0.0.1")).toBe("none");
    expect(defaultQueryAuth("localhost")).toBe("none");
    expect(defaultQueryAuth("0.0.0.0")).toBe("keys");
    expect(defaultQueryAuth("192.168.1.5")).toBe("keys");
  });
});

describe("API keys end to end (admin API, state, a frontend with --query-auth keys)", () => {
  let c: InProcessCluster;
  beforeAll(async () => {
    c = await startInProcessCluster({ queryAuth: "keys" });
    await c.admin.postText("/admin/add_app", { name: "a", input_type: "doubles", default_output: "-1", latency_slo_micros: 2_000_000 });
    await c.admin.postText("/admin/add_app", { name: "b", input_type: "doubles", default_output: "-1", latency_slo_micros: 2_000_000 });
    await c.admin.postText("/admin/add_model", {
      model_name: "m", model_version: "1", labels: [], input_type: "doubles", container_name: "x", model_data_path: "x", batch_size: -1,
    });
    await c.admin.postText("/admin/add_model_links", { app_name: "a", model_names: ["m"] });
    await c.addContainer("m", "1", "doubles", sumHandler);
  });
  afterAll(async () => {
    await c?.close();
  });

  async function predict(app: string, headers: Record<string, string>) {
    const res = await fetch(`${c.frontend.queryUrl}/${app}/predict`, {
      method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ input: [1, 2] }),
    });
    return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as Record<string, unknown> };
  }

  it("creates keys shown once, keeps only their hashes, lists and revokes them", async () => {
    const all = await c.admin.postJson<CreatedApiKey>(ADD_API_KEY_PATH, {});
    expect(all.key).toMatch(/^clk_[A-Za-z0-9_-]{43}$/);
    const scoped = await c.admin.postJson<CreatedApiKey>(ADD_API_KEY_PATH, { app: "a", rate: 2 });
    expect(scoped).toMatchObject({ app: "a", rate: 2, id: expect.stringMatching(/^[0-9a-f]{12}$/) });

    const file = await readFile(join(c.stateDir, "state.json"), "utf8");
    expect(file).not.toContain(all.key);
    expect(file).not.toContain(scoped.key);
    expect(file).toContain(hashApiKey(scoped.key));

    const listed = await c.admin.postJson<Record<string, unknown>[]>(GET_API_KEYS_PATH, {});
    expect(listed.map((k) => k.id).sort()).toEqual([all.id, scoped.id].sort());
    expect(JSON.stringify(listed)).not.toContain(hashApiKey(all.key));

    // Bad requests are 400 with the expected schema, never a key.
    for (const body of [{ app: "ghost" }, { rate: 0 }, { rate: -1 }, { rate: "fast" }, { app: "" }, { app: "toString" }]) {
      await expect(c.admin.postText(ADD_API_KEY_PATH, body), JSON.stringify(body)).rejects.toBeInstanceOf(AdminApiError);
    }
    await expect(c.admin.postText(REVOKE_API_KEY_PATH, { id: "constructor" })).rejects.toThrow(/No API key with id 'constructor'/);

    await waitFor(() => (c.frontend.state()?.api_keys?.length ?? 0) === 2, 10_000, "the frontend to learn the keys");
    expect((await predict("a", {})).status).toBe(401);
    expect(await predict("a", {})).toMatchObject({ body: { error: "Unauthorized", cause: expect.stringContaining("Authorization: Bearer") } });
    expect((await predict("a", { authorization: "Bearer clk_wrong" })).status).toBe(401);
    expect(await predict("a", { authorization: `Bearer ${all.key}` })).toMatchObject({ status: 200, body: { output: 3 } });
    expect((await predict("b", { "x-clipper-key": all.key })).status).toBe(200);
    expect((await predict("b", { "x-clipper-key": scoped.key })).status).toBe(403);

    // Rate 2/s: a burst of two, then 429 with Retry-After.
    const burst = [];
    for (let i = 0; i < 3; i++) burst.push(await predict("a", { "x-clipper-key": scoped.key }));
    expect(burst.map((r) => r.status)).toEqual([200, 200, 429]);
    expect(burst[2]!.retryAfter).toBe("1");
    expect(burst[2]!.body).toMatchObject({ error: "Too many requests" });

    // Update and OIP need a key too; health and metrics stay open.
    const update = await fetch(`${c.frontend.queryUrl}/a/update`, { method: "POST", body: JSON.stringify({ uid: 1, input: [1], label: 1 }) });
    expect(update.status).toBe(401);
    expect((await fetch(`${c.frontend.queryUrl}/v2/models/m/infer`, { method: "POST", body: "{}" })).status).toBe(401);
    expect((await fetch(`${c.frontend.queryUrl}/v2/models/m`)).status).toBe(401);
    expect((await fetch(`${c.frontend.queryUrl}/v2/models/m`, { headers: { authorization: `Bearer ${all.key}` } })).status).toBe(200);
    for (const open of ["/health", "/metrics", "/v2/health/ready", "/v2"]) expect((await fetch(c.frontend.queryUrl + open)).status, open).toBe(200);

    expect(await c.admin.postText(REVOKE_API_KEY_PATH, { id: all.id })).toBe(`Revoked API key '${all.id}'`);
    await waitFor(() => (c.frontend.state()?.api_keys?.length ?? 0) === 1, 10_000, "the frontend to see the revocation");
    expect((await predict("a", { authorization: `Bearer ${all.key}` })).status).toBe(401);
  });
});

describe("API keys and the applications they are limited to", () => {
  it("go when their application is deleted, so a new application of that name is not opened to them", () => {
    const withApp = addApp(emptyState(), JSON.stringify({ name: "a", input_type: "doubles", default_output: "-1", latency_slo_micros: 1000 })).next!;
    const scoped = addApiKey(withApp, JSON.stringify({ app: "a" })).next!;
    const everyApp = addApiKey(scoped, JSON.stringify({})).next!;
    expect(everyApp.api_keys!.map((k) => k.app)).toEqual(["a", undefined]);
    const deleted = deleteApp(everyApp, JSON.stringify({ name: "a" })).next!;
    expect(deleted.api_keys!.map((k) => k.app)).toEqual([undefined]);
    expect(stateViolations(deleted)).toEqual([]);
    // And the invariant the store checks before every write would refuse a key left behind.
    expect(stateViolations({ ...deleted, api_keys: everyApp.api_keys }).map(describeViolation))
      .toEqual([expect.stringMatching(/^api_keys\.0: key '.*' is limited to application 'a', which does not exist$/)]);
  });
});
