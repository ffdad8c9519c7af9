/**
 * The prediction cache in a running frontend (an in-process cluster). The cache's storage, the model
 * caller's sharing and deadlines (fake timers) and invalidation are in test/unit/cache.test.ts.
 */
import { afterEach, describe, expect, it } from "vitest";
import { BATCH_ERROR_PREFIX } from "../runtime/rpc/codec.js";
import { addLinkedModel, startInProcessCluster, sumHandler, type InProcessCluster } from "./support/cluster-in-process.js";

describe("prediction cache in a running frontend (in-process cluster)", () => {
  let c: InProcessCluster | undefined;
  afterEach(async () => {
    await c?.close();
    c = undefined;
  });

  async function setup(cacheBytes: number | undefined, asked: number[]): Promise<InProcessCluster> {
    const cluster = await startInProcessCluster({ cacheBytes });
    c = cluster;
    await addLinkedModel(cluster);
    await cluster.addContainer("m", "1", "doubles", async (batch) => {
      asked.push(batch.inputs.length);
      await new Promise((r) => setTimeout(r, 50));
      return batch.inputs.map((raw) => (raw.readDoubleLE(0) === 13 ? `${BATCH_ERROR_PREFIX}unlucky` : (sumHandler({ ...batch, inputs: [raw] }) as string[])[0]!));
    });
    return cluster;
  }

  const total = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

  it("answers a repeated query without asking the container, shares concurrent ones, and counts hits and misses", async () => {
    const asked: number[] = [];
    const cluster = await setup(1 << 20, asked);
    const first = await cluster.predict("app", { input: [1, 2, 3] });
    expect(first.body).toMatchObject({ output: 6, default: false });
    const again = await cluster.predict("app", { input: [1, 2, 3] });
    expect(again.body).toMatchObject({ output: 6, default: false });
    expect(total(asked)).toBe(1);
    expect(again.ms).toBeLessThan(first.ms); // no model round trip (the model takes 50 ms)

    const [x, y] = await Promise.all([cluster.predict("app", { input: [4, 4] }), cluster.predict("app", { input: [4, 4] })]);
    expect(x.body).toMatchObject({ output: 8, default: false });
    expect(y.body).toMatchObject({ output: 8, default: false });
    expect(total(asked)).toBe(2);

    // Failures are not cached: the container is asked every time.
    for (let i = 0; i < 2; i++) expect((await cluster.predict("app", { input: [13] })).body).toMatchObject({ default: true });
    expect(total(asked)).toBe(4);

    const metrics = await (await fetch(`${cluster.frontend.queryUrl}/metrics`)).text();
    expect(metrics).toMatch(/clipper_cache_hits_total\{model="m:1"\} 1\b/);
    expect(metrics).toMatch(/clipper_cache_misses_total\{model="m:1"\} 4\b/);
    expect(metrics).toMatch(/clipper_cache_inflight_joins_total\{model="m:1"\} 1\b/);
    expect(metrics).toMatch(/clipper_cache_entries 2\b/);
    expect(metrics).toMatch(/clipper_cache_max_bytes 1048576\b/);

    // Deleting the version and registering it again drops its entries. (The last version of a
    // linked model cannot be deleted: unlink, delete, register, link again.)
    await cluster.admin.postText("/admin/delete_model_links", { app_name: "app", model_names: ["m"] });
    await cluster.admin.postText("/admin/delete_versioned_model", { model_name: "m", model_version: "1" });
    await cluster.waitForConfig((f) => f.state()?.models.m === undefined);
    await cluster.admin.postText("/admin/add_model", {
      model_name: "m", model_version: "1", labels: [], input_type: "doubles",
      container_name: "NO_CONTAINER", model_data_path: "x", batch_size: -1,
    });
    await cluster.admin.postText("/admin/add_model_links", { app_name: "app", model_names: ["m"] });
    await cluster.waitForConfig((f) => f.state()?.applications.app?.linked_models[0] === "m" && f.state()?.models.m?.current_version === "1");
    expect((await cluster.predict("app", { input: [1, 2, 3] })).body).toMatchObject({ output: 6, default: false });
    expect(total(asked)).toBe(5);
  });

  it("with cacheBytes 0 (or unset) asks the container every time and exports no cache series", async () => {
    const asked: number[] = [];
    const cluster = await setup(0, asked);
    for (let i = 0; i < 2; i++) expect((await cluster.predict("app", { input: [1, 2, 3] })).body).toMatchObject({ output: 6 });
    expect(total(asked)).toBe(2);
    const metrics = await (await fetch(`${cluster.frontend.queryUrl}/metrics`)).text();
    expect(metrics).not.toContain("clipper_cache_");
  });
});
