/**
 * Query API keys: the token bucket and the frontend's checks with an injected clock, the admin
 * endpoints (only a hash is stored), and a frontend with `--query-auth keys` over real HTTP.
 * The parts that start nothing are in test/unit/api-keys.test.ts.
 */
import { readFile } from "node:fs/promises";
import { JOURNAL_FILE, STATE_FILE } from "../runtime/management/store.js";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADD_API_KEY_PATH, type CreatedApiKey, GET_API_KEYS_PATH, hashApiKey, REVOKE_API_KEY_PATH } from "../runtime/shared/api-keys.js";
import { AdminApiError } from "../src/errors.js";
import { startInProcessCluster, sumHandler, waitFor, type InProcessCluster } from "./support/cluster-in-process.js";

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

    // What the daemon keeps on disk: the last snapshot and the journal of the writes since.
    const file = (await readFile(join(c.stateDir, STATE_FILE), "utf8")) + (await readFile(join(c.stateDir, JOURNAL_FILE), "utf8"));
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
