/**
 * The operator's commands on the Kubernetes manager against the in-process fake API server.
 * `logs --follow / --since`: the pod log is read with follow, tailLines and sinceTime as the client
 * sends them, new lines arrive while following, and an abort ends it all. `status` with usage:
 * uptime from the pods, CPU and memory from metrics.k8s.io, or "-" and why when the cluster has no
 * metrics API.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubernetesContainerManager } from "../src/managers/kubernetes/kubernetes-manager.js";
import type { LogLine } from "../src/managers/container-manager.js";
import { waitFor } from "./support/cluster-in-process.js";
import { startFakeKubeApi, writeKubeconfig, type FakeKubeApi } from "./support/fake-kube-api.js";

let api: FakeKubeApi;
let dir: string;
let daemon: Server;
let m: KubernetesContainerManager;
/** What each pod has written, as the fake serves it. */
const written = new Map<string, string[]>();

beforeAll(async () => {
  api = await startFakeKubeApi();
  daemon = createServer((req, res) => res.end(req.url === "/admin/ping" ? "PONG" : "{}"));
  await new Promise<void>((r) => daemon.listen(0, "127.0.0.1", r));
  api.setServiceBackend("clipper-flw-management", `http://127.0.0.1:${(daemon.address() as AddressInfo).port}`, "ml");
  api.setAutoReady(true);
  api.setPodLogs((pod) => (String(pod.metadata.name).includes("-sum-") ? written.get("model")?.join("\n") : undefined));
  dir = mkdtempSync(join(tmpdir(), "k8s-logs-"));
  m = await KubernetesContainerManager.create({
    cluster: "flw", kubeconfig: writeKubeconfig(join(dir, "config"), api.url, "ml"), createNamespace: true,
    runtimeImage: "registry.example/clipper-runtime:0.1.0", frontendReplicas: 1, pollMs: 10, rolloutTimeoutMs: 3000,
  });
  await m.startClipper({
    cluster: "flw", host: "0.0.0.0", queryPort: 1337, managementPort: 1338, rpcPort: 7000, maxBodyBytes: 1 << 20, startupTimeoutMs: 5000, replicaTimeoutMs: 10000,
  });
  await m.deployModel({
    name: "sum", version: "1", inputType: "doubles", framework: "python", predictFile: "/m/predict.py", predictFunction: "predict",
    modelPath: "/m", image: "registry.example/sum:1",
  }, 1);
});
afterAll(async () => {
  await m.close();
  await new Promise((r) => daemon.close(r));
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("pod logs followed through the fake API server", () => {
  it("tails, follows new lines, passes --since as sinceTime, and stops on abort", async () => {
    const pod = (await m.logs("sum-1-0"))[0]!.component;
    written.set("model", ["2026-12-03T06:00:00Z old", "2026-12-03T07:30:00Z one", "2026-12-03T07:31:00Z two"]);
    const got: LogLine[] = [];
    const stop = new AbortController();
    const done = m.streamLogs("sum", { tail: 1, follow: true, signal: stop.signal }, (l) => got.push(l));
    await waitFor(() => got.length === 1, 5_000, "the tail");
    written.get("model")!.push("three");
    await waitFor(() => got.length === 2, 5_000, "a new line");
    stop.abort();
    await done;
    expect(got).toEqual([{ component: pod, line: "2026-12-03T07:31:00Z two" }, { component: pod, line: "three" }]);
    const follow = api.requests.find((r) => r.path.includes(`/pods/${pod}/log`) && r.path.includes("follow=true"));
    expect(follow?.path).toContain("tailLines=1");
    expect(follow?.authorization).toBe(true);

    const since: string[] = [];
    await m.streamLogs(pod, { tail: 100, since: new Date("2026-12-03T07:00:00Z"), follow: false }, (l) => since.push(l.line));
    expect(since).toEqual(["2026-12-03T07:30:00Z one", "2026-12-03T07:31:00Z two", "three"]);
    expect(api.requests.some((r) => r.path.includes("sinceTime=2026-12-03T07%3A00%3A00.000Z"))).toBe(true);
  });

  it("ends a followed stream when its pod goes, and refuses a component that matches nothing", async () => {
    const got: LogLine[] = [];
    const stop = new AbortController();
    const done = m.streamLogs("sum", { tail: 1, follow: true, signal: stop.signal }, (l) => got.push(l));
    await waitFor(() => got.length === 1, 5_000, "the tail");
    const before = api.requests.filter((r) => r.path.includes("/log")).length;
    await m.setNumReplicas("sum", "1", 0);
    // The pod is gone: its stream ended and is not opened again (nothing matches to reopen).
    await new Promise((r) => setTimeout(r, 1_500));
    const after = api.requests.filter((r) => r.path.includes("/log")).length;
    expect(after - before).toBeLessThanOrEqual(1);
    stop.abort();
    await done;
    await expect(m.streamLogs("nothing", { tail: 1, follow: false }, () => undefined)).rejects.toMatchObject({ reason: "NOT_FOUND" });
  });
});

describe("pod usage for clipper status", () => {
  it("says why CPU and memory are unknown without a metrics API, and reads them with one", async () => {
    const bare = await m.status({ usage: true });
    expect(bare.usageNote).toMatch(/no metrics API \(metrics\.k8s\.io\): install metrics-server/);
    for (const c of bare.components) {
      expect(c.usage?.uptimeSeconds, c.component).toBeGreaterThanOrEqual(0);
      expect(c.usage?.cpuPercent).toBeUndefined();
    }
    // Without usage, status asks nothing of the metrics API (deploys poll it).
    const before = api.requests.length;
    expect((await m.status()).usageNote).toBeUndefined();
    expect(api.requests.slice(before).some((r) => r.path.includes("metrics.k8s.io"))).toBe(false);

    await m.setNumReplicas("sum", "1", 1);
    api.setPodMetrics((pod) => (String(pod.metadata.name).includes("-sum-") ? { cpu: "250m", memory: "64Mi" } : { cpu: "1500000n", memory: "1048576Ki" }));
    let measured = await m.status({ usage: true });
    await waitFor(async () => (measured = await m.status({ usage: true })).replicas.length === 1, 5_000, "the replica back");
    expect(measured.usageNote).toBeUndefined();
    expect(measured.replicas[0]!.usage).toMatchObject({ cpuPercent: 25, memoryBytes: 64 * 1024 * 1024, uptimeSeconds: expect.any(Number) });
    expect(measured.components[0]!.usage).toMatchObject({ cpuPercent: 0.2, memoryBytes: 1024 ** 3 });
    expect(api.requests.some((r) => r.path.startsWith("/apis/metrics.k8s.io/v1beta1/namespaces/ml/pods?labelSelector="))).toBe(true);
  });
});
