/**
 * The lifecycle every ContainerManager keeps (issue 11 §3/§4), written once and run against each
 * manager: local (real processes), Docker (an in-process fake of the Engine API, plus the real
 * daemon where one runs) and Kubernetes (the in-process fake API server). A manager file calls
 * `describeLifecycle` with a harness that starts its cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterOptions, ContainerManager, ModelDeployment } from "../../src/managers/container-manager.js";
import { ManagerError } from "../../src/managers/errors.js";

export interface LifecycleHarness {
  manager: ContainerManager;
  /** What start and restart use. */
  options: ClusterOptions;
  /** A deployment this manager can run; another `variant` is a changed deployment of the same version. */
  deployment(name: string, version: string, variant?: number): ModelDeployment;
  /** Replicas of the version running now, as the manager's world says (processes, containers, pods). */
  running(name: string, version: string): Promise<number>;
  /** Whatever the harness itself started (servers, directories); the cluster is already stopped. */
  close(): Promise<void>;
}

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ManagerError) return err.reason;
    throw err;
  }
  return "resolved";
}

export function describeLifecycle(title: string, setup: () => Promise<LifecycleHarness>, options: { timeoutMs?: number } = {}): void {
  describe(`${title}: the shared model lifecycle`, { timeout: options.timeoutMs ?? 60_000 }, () => {
    let h: LifecycleHarness;
    let m: ContainerManager;

    beforeAll(async () => {
      h = await setup();
      m = h.manager;
      await m.startClipper(h.options);
    });
    afterAll(async () => {
      await m?.stopAll({ keepState: false }).catch(() => undefined);
      await m?.close?.();
      await h?.close();
    });

    it("deploys replicas and refuses replica counts outside 0..64", async () => {
      await m.deployModel(h.deployment("m", "1"), 2);
      expect(await m.getNumReplicas("m", "1")).toBe(2);
      expect(await h.running("m", "1")).toBe(2);
      for (const bad of [-1, 65, 1.5]) expect(await reason(m.setNumReplicas("m", "1", bad))).toBe("INVALID_ARGUMENT");
      expect(await reason(m.deployModel(h.deployment("m", "1"), 65))).toBe("INVALID_ARGUMENT");
    });

    it("a stopped version keeps its deployment: setNumReplicas brings it back", async () => {
      await m.stopModels({ m: ["1"] });
      expect(await m.getNumReplicas("m", "1")).toBe(0);
      expect(await h.running("m", "1")).toBe(0);
      await m.setNumReplicas("m", "1", 1);
      expect(await m.getNumReplicas("m", "1")).toBe(1);
      expect(await h.running("m", "1")).toBe(1);
    });

    it("stopping every version of a model ([]) and every model keeps the deployments too", async () => {
      await m.deployModel(h.deployment("m", "2"), 1);
      await m.stopModels({ m: [] });
      expect([await h.running("m", "1"), await h.running("m", "2")]).toEqual([0, 0]);
      await m.setNumReplicas("m", "2", 1);
      expect(await h.running("m", "2")).toBe(1);
      await m.stopAllModelContainers();
      expect(await h.running("m", "2")).toBe(0);
      await m.setNumReplicas("m", "2", 1);
      expect(await h.running("m", "2")).toBe(1);
    });

    it("a deleted version is gone: its replicas stop and scaling it is NOT_FOUND", async () => {
      await m.deleteModels({ m: ["2"] });
      expect(await h.running("m", "2")).toBe(0);
      expect(await m.getNumReplicas("m", "2")).toBe(0);
      expect(await reason(m.setNumReplicas("m", "2", 1))).toBe("NOT_FOUND");
      // Deleting what is not there is not an error (it is already gone).
      expect(await reason(m.deleteModels({ m: ["2"], nothing: [] }))).toBe("resolved");
    });

    it("a changed deployment of the same version replaces its replicas; the same one only scales", async () => {
      await m.deployModel(h.deployment("m", "1"), 2);
      expect(await h.running("m", "1")).toBe(2);
      await m.deployModel(h.deployment("m", "1", 1), 1);
      expect(await m.getNumReplicas("m", "1")).toBe(1);
      expect(await h.running("m", "1")).toBe(1);
    });

    it("logs COMPONENT: one grammar (role, model, model-version, model-version-replica, exact name)", async () => {
      const names = async (q?: string) => (await m.logs(q)).map((l) => l.component);
      const all = await names();
      expect(all.length).toBeGreaterThanOrEqual(3);
      expect((await names("management")).length).toBeGreaterThanOrEqual(1);
      expect((await names("frontend")).length).toBeGreaterThanOrEqual(1);
      const replicas = await names("m");
      expect(replicas.length).toBeGreaterThanOrEqual(1);
      const version = await names("m-1");
      expect(version.length).toBeGreaterThanOrEqual(1);
      for (const r of version) expect(replicas).toContain(r);
      const one = await names("m-1-0");
      expect(one).toHaveLength(1);
      expect(version).toContain(one[0]);
      expect(await names(all[0])).toContain(all[0]);
      expect(await reason(m.logs("no-such-component"))).toBe("NOT_FOUND");
    });

    it("stop --keep-state then start brings back the recorded replicas", async () => {
      await m.setNumReplicas("m", "1", 2);
      await m.stopAll({ keepState: true });
      expect(await h.running("m", "1")).toBe(0);
      await m.startClipper(h.options);
      expect(await m.getNumReplicas("m", "1")).toBe(2);
      expect(await h.running("m", "1")).toBe(2);
      await m.stopAll({ keepState: false });
      expect(await reason(m.stopAll({ keepState: true }))).toBe("CLUSTER_NOT_RUNNING");
    });
  });
}
