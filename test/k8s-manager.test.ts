// The live Kubernetes manager driven against the in-process fake API server (no API server runs here).
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubernetesContainerManager, type KubernetesManagerOptions } from "../src/managers/kubernetes/kubernetes-manager.js";
import type { ClusterOptions, ModelDeployment } from "../src/managers/container-manager.js";
import { waitFor } from "./support/cluster-in-process.js";
import { versionSecret } from "../runtime/shared/rpc-auth.js";
import { startFakeKubeApi, writeKubeconfig, type FakeKubeApi } from "./support/fake-kube-api.js";

let api: FakeKubeApi;
let dir: string;
let kubeconfig: string;

/** The management daemon as the proxy reaches it: only its ping matters to start. */
let daemon: Server;

beforeAll(async () => {
  api = await startFakeKubeApi();
  daemon = createServer((req, res) => res.end(req.url === "/admin/ping" ? "PONG" : "{}"));
  await new Promise<void>((r) => daemon.listen(0, "127.0.0.1", r));
  api.setServiceBackend("clipper-demo-management", `http://127.0.0.1:${(daemon.address() as AddressInfo).port}`, "ml");
  dir = mkdtempSync(join(tmpdir(), "k8s-manager-"));
  kubeconfig = writeKubeconfig(join(dir, "config"), api.url, "ml");
});
afterAll(async () => {
  await Promise.all(managers.map((m) => m.close()));
  await new Promise((r) => daemon.close(r));
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

const OPTIONS: ClusterOptions = {
  cluster: "demo", host: "0.0.0.0", queryPort: 1337, managementPort: 1338, rpcPort: 7000,
  maxBodyBytes: 1 << 20, startupTimeoutMs: 5000, replicaTimeoutMs: 10000,
};

const MODEL: ModelDeployment = {
  name: "sum", version: "1", inputType: "doubles", framework: "python", predictFile: "/m/predict.py",
  predictFunction: "predict", modelPath: "/m", image: "registry.example/sum:1",
};

const managers: KubernetesContainerManager[] = [];
async function manager(extra: Partial<KubernetesManagerOptions> = {}) {
  const m = await KubernetesContainerManager.create({
    cluster: "demo", kubeconfig, createNamespace: true, runtimeImage: "registry.example/clipper-runtime:0.1.0",
    frontendReplicas: 2, pollMs: 10, rolloutTimeoutMs: 3000, ...extra,
  });
  managers.push(m);
  return m;
}

describe("KubernetesContainerManager against the fake API", () => {
  it("starts a cluster: namespace from the context, objects created, waits until the fake marks it ready", async () => {
    const m = await manager();
    expect(m.namespace).toBe("ml");
    const before = api.requests.length;
    let settled = false;
    const started = m.startClipper(OPTIONS).finally(() => { settled = true; });
    started.catch(() => undefined);
    // Everything is applied once the manager polls the rollout; it keeps waiting until the "controller" says ready.
    await waitFor(() => api.requests.slice(before).some((r) => r.method === "GET" && r.path.endsWith("/deployments/clipper-demo-query-frontend")),
      5000, "the rollout to be polled");
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false);
    expect(api.get("namespaces", "ml")).toBeDefined();
    expect(api.list("deployments", "ml").map((d) => d.metadata.name).sort())
      .toEqual(["clipper-demo-autoscaler", "clipper-demo-management", "clipper-demo-query-frontend"]);
    for (const plural of ["serviceaccounts", "roles", "rolebindings"]) {
      expect(api.list(plural, "ml").map((o) => o.metadata.name), plural).toEqual(["clipper-demo-autoscaler"]);
    }
    expect(api.list("services", "ml")).toHaveLength(3);
    expect(api.get("persistentvolumeclaims", "clipper-demo-state", "ml")).toBeDefined();
    api.markReady("clipper-demo-management", "ml");
    api.markReady("clipper-demo-query-frontend", "ml");
    const addresses = await started;
    expect(addresses.manager).toBe("kubernetes");
    // This process reaches the services through the API server's proxy; applications by the Service.
    expect(addresses.queryUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(addresses.applicationQueryUrls).toEqual(["http://clipper-demo-query-frontend.ml.svc:1337"]);
    expect(addresses.kubernetes).toEqual({ kubeconfig, namespace: "ml" });
    expect(addresses.token).toBeTruthy();
    expect((await m.connect()).token).toBe(addresses.token);
    // Start waited for the daemon to answer through the proxy, with the kubeconfig's credentials.
    const pings = api.requests.filter((r) => r.path.endsWith("/services/http%3Aclipper-demo-management%3Amanagement/proxy/admin/ping"));
    expect(pings.length).toBeGreaterThan(0);
    expect(pings.every((r) => r.authorization)).toBe(true);
  });

  it("applies again: 409 on create becomes a replace at the current resourceVersion, keeping the token", async () => {
    api.setAutoReady(true);
    const before = api.get("deployments", "clipper-demo-query-frontend", "ml")!;
    const token = (await (await manager()).connect()).token;
    const rpcKey = api.get("secrets", "clipper-demo-rpc-key", "ml")!.data.key;
    const again = await (await manager({ frontendReplicas: 3 })).startClipper(OPTIONS);
    expect(again.token).toBe(token);
    // The RPC key is kept too: credentials of running model versions stay valid.
    expect(api.get("secrets", "clipper-demo-rpc-key", "ml")!.data.key).toBe(rpcKey);
    const after = api.get("deployments", "clipper-demo-query-frontend", "ml")!;
    expect(after.metadata.uid).toBe(before.metadata.uid);
    expect(after.spec.replicas).toBe(3);
    expect(after.metadata.generation).toBe(before.metadata.generation + 1);
    expect(api.requests.some((r) => r.method === "PUT" && r.path.endsWith("/deployments/clipper-demo-query-frontend"))).toBe(true);
  });

  it("deploys, scales through the scale subresource, reports status, stops versions (kept) and deletes them", async () => {
    const m = await manager();
    await m.deployModel(MODEL, 2);
    await m.deployModel({ ...MODEL, version: "2" }, 1);
    expect(await m.getNumReplicas("sum", "1")).toBe(2);
    await m.setNumReplicas("sum", "1", 4);
    expect(api.requests.some((r) => r.method === "PUT" && r.path.endsWith("/deployments/clipper-demo-sum-1/scale"))).toBe(true);
    expect(await m.getNumReplicas("sum", "1")).toBe(4);
    expect(await m.getNumReplicas("sum", "9")).toBe(0);
    await expect(m.setNumReplicas("nope", "1", 1)).rejects.toThrow(/deploy it first/);
    // The counts every manager accepts (0..64), refused before anything is written.
    const writes = () => api.requests.filter((r) => r.method !== "GET").length;
    const before65 = writes();
    await expect(m.setNumReplicas("sum", "1", 65)).rejects.toThrow(/from 0 to 64/);
    await expect(m.deployModel(MODEL, -1)).rejects.toThrow(/from 0 to 64/);
    expect(writes()).toBe(before65);

    // After connect (ClipperConnection always connects first), status reuses what it found: one pod
    // list, no second look-up of the cluster (deploys poll status while they wait).
    await m.connect();
    const before = api.requests.length;
    const status = await m.status();
    expect(api.requests.slice(before).map((r) => r.path.split("?")[0])).toEqual(["/api/v1/namespaces/ml/pods"]);
    expect(status.replicas.filter((r) => r.version === "1")).toHaveLength(4);
    expect(status.replicas.every((r) => r.state === "running")).toBe(true);
    expect(status.components.map((c) => c.component.split("/")[0]).sort())
      .toEqual(["autoscaler", "management", "query_frontend", "query_frontend", "query_frontend"]);

    // logs COMPONENT by the shared grammar: a version, one replica as status numbers it, a role; a
    // part of a pod name or a name from Object.prototype names what exists instead.
    const logs = async (q: string) => (await m.logs(q)).map((l) => l.component);
    expect(await logs("sum-1")).toHaveLength(4);
    expect(await logs("sum-2-0")).toEqual([status.replicas.find((r) => r.version === "2")!.pod]);
    expect(await logs("query_frontend")).toHaveLength(3);
    for (const bad of ["clipper-demo-sum", "__proto__", "constructor", "sum-1-4"]) {
      await expect(m.logs(bad)).rejects.toThrow(new RegExp(`no logs for component ${bad} \\(known: clipper-demo-`));
    }

    // Each version has its own credential Secret, derived from the cluster's key.
    const key = Buffer.from(api.get("secrets", "clipper-demo-rpc-key", "ml")!.data.key, "base64").toString();
    for (const version of ["1", "2"]) {
      const secret = api.get("secrets", `clipper-demo-sum-${version}-rpc`, "ml")!;
      expect(Buffer.from(secret.data.secret, "base64").toString()).toBe(versionSecret(key, { name: "sum", version, inputType: "doubles" }));
    }
    const modelSecrets = () => api.list("secrets", "ml").map((x) => x.metadata.name).filter((n: string) => n.startsWith("clipper-demo-sum-"));

    // Stopping a version scales its Deployment to 0 and keeps it and its credential: the record survives.
    const modelReplicas = () => Object.fromEntries(api.list("deployments", "ml")
      .filter((d) => d.metadata.labels["ai.clipper.name"] === "model").map((d) => [d.metadata.name, d.spec.replicas]));
    await m.stopModels({ sum: ["1"] });
    expect(modelReplicas()).toEqual({ "clipper-demo-sum-1": 0, "clipper-demo-sum-2": 1 });
    expect(modelSecrets()).toEqual(["clipper-demo-sum-1-rpc", "clipper-demo-sum-2-rpc"]);
    expect(await m.getNumReplicas("sum", "1")).toBe(0);
    await m.stopAllModelContainers();
    expect(modelReplicas()).toEqual({ "clipper-demo-sum-1": 0, "clipper-demo-sum-2": 0 });
    // The same deployment again only scales (the Deployment is not rewritten); a changed one replaces it.
    const generation = api.get("deployments", "clipper-demo-sum-2", "ml")!.metadata.generation;
    await m.deployModel({ ...MODEL, version: "2" }, 1);
    expect(api.get("deployments", "clipper-demo-sum-2", "ml")!.metadata.generation).toBe(generation + 1);
    expect(api.requests.some((r) => r.method === "PUT" && r.path.endsWith("/deployments/clipper-demo-sum-2"))).toBe(false);
    await m.deployModel({ ...MODEL, version: "2", env: { MODE: "fast" } }, 1);
    expect(api.requests.some((r) => r.method === "PUT" && r.path.endsWith("/deployments/clipper-demo-sum-2"))).toBe(true);
    // Deleting forgets a version: its Deployment and Secret go, and scaling it is NOT_FOUND.
    await m.deleteModels({ sum: ["1"] });
    expect(modelReplicas()).toEqual({ "clipper-demo-sum-2": 1 });
    expect(modelSecrets()).toEqual(["clipper-demo-sum-2-rpc"]);
    await expect(m.setNumReplicas("sum", "1", 1)).rejects.toThrow(/no deployment of model sum version 1 .*deploy it first/);
    await m.deleteModels({ sum: [], absent: ["1"] });
    expect(modelReplicas()).toEqual({});
    expect(modelSecrets()).toEqual([]);

    // A cluster that authenticates replicas and has lost its key says so, and deploys nothing.
    const saved = api.get("secrets", "clipper-demo-rpc-key", "ml")!;
    await fetch(`${api.url}/api/v1/namespaces/ml/secrets/clipper-demo-rpc-key`, { method: "DELETE" });
    await expect(m.deployModel({ ...MODEL, version: "5" }, 1)).rejects.toThrow(/its Secret clipper-demo-rpc-key in namespace ml is missing/);
    expect(api.get("deployments", "clipper-demo-sum-5", "ml")).toBeUndefined();
    await fetch(`${api.url}/api/v1/namespaces/ml/secrets`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ metadata: { name: "clipper-demo-rpc-key", labels: saved.metadata.labels }, data: saved.data }),
    });
  });

  it("times out a rollout naming the pods that are not ready and why", async () => {
    api.setAutoReady(false);
    // The rollout waits on a scripted clock: each pause moves it on, so five minutes pass at once.
    let now = 0;
    const clock = { now: () => now, sleep: async (ms: number) => { now += ms; } };
    const m = await manager({ rolloutTimeoutMs: 300_000, pollMs: 60_000, clock });
    // The image cannot be pulled: the kubelet reports it as soon as the Deployment's pods exist.
    api.onDeployment((event, dep) => {
      if (event === "ADDED" && dep.metadata.name === "clipper-demo-sum-3") {
        api.setPodProblem("clipper-demo-sum-3", { reason: "ImagePullBackOff", message: "pull access denied" }, "ml");
      }
    });
    const deploying = m.deployModel({ ...MODEL, version: "3" }, 1).then(() => undefined, (e: unknown) => e);
    const message = String(await deploying);
    expect(message).toMatch(/not ready after 300 s: clipper-demo-sum-3 has 0 of 1 replicas ready.*ImagePullBackOff \(pull access denied\)/);
    expect(now).toBe(300_000);
    // ... and the kubelet's events for the pod.
    expect(message).toMatch(/events: Failed: pull access denied \(×3\)/);
    // The version this deploy created never came up: it is deleted again, with its credential.
    expect(api.get("deployments", "clipper-demo-sum-3", "ml")).toBeUndefined();
    expect(api.get("secrets", "clipper-demo-sum-3-rpc", "ml")).toBeUndefined();
    api.setAutoReady(true);
  });

  it("stop --keep-state keeps the state, the Secrets and the model Deployments at 0 with their counts; stop deletes exactly what carries the cluster label", async () => {
    await fetch(`${api.url}/api/v1/namespaces/ml/secrets`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ metadata: { name: "someone-else" } }),
    });
    const m = await manager();
    await m.deployModel({ ...MODEL, version: "4" }, 2);
    await m.stopAll({ keepState: true });
    // What runs or routes is gone; the model version is kept at 0, its count recorded.
    expect(api.list("deployments", "ml").map((d) => [d.metadata.name, d.spec.replicas, d.metadata.annotations["ai.clipper.kept_replicas"]]))
      .toEqual([["clipper-demo-sum-4", 0, "2"]]);
    expect(api.list("services", "ml")).toHaveLength(0);
    expect(api.list("networkpolicies", "ml")).toHaveLength(0);
    // The autoscaler and its permission to scale go too: a stopped cluster holds no credential to scale.
    for (const plural of ["serviceaccounts", "roles", "rolebindings"]) expect(api.list(plural, "ml"), plural).toHaveLength(0);
    expect(api.list("secrets", "ml").map((s) => s.metadata.name).sort())
      .toEqual(["clipper-demo-rpc-key", "clipper-demo-sum-4-rpc", "clipper-demo-token", "someone-else"]);
    expect(api.get("persistentvolumeclaims", "clipper-demo-state", "ml")).toBeDefined();
    await expect(m.connect()).rejects.toThrow(/no Kubernetes cluster named demo/);
    // Stopping a stopped cluster is refused, and the recorded count stays.
    await expect(m.stopAll({ keepState: true })).rejects.toThrow(/no Kubernetes cluster named demo/);
    // A count no stop could have recorded fails start before anything is applied.
    const sum4 = api.get("deployments", "clipper-demo-sum-4", "ml")!;
    await fetch(`${api.url}/apis/apps/v1/namespaces/ml/deployments/clipper-demo-sum-4`, {
      method: "PUT", headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...sum4, metadata: { ...sum4.metadata, annotations: { ...sum4.metadata.annotations, "ai.clipper.kept_replicas": "65" } } }),
    });
    const writes = api.requests.filter((r) => r.method !== "GET").length;
    await expect((await manager()).startClipper(OPTIONS)).rejects.toThrow(/records "65" kept replicas .*no count from 0 to 64/);
    expect(api.requests.filter((r) => r.method !== "GET").length).toBe(writes);
    // Start brings the kept version back to its count. Its RPC key Secret went missing meanwhile: the
    // new key's credential replaces the version's, so its pods can still register.
    const annotated = api.get("deployments", "clipper-demo-sum-4", "ml")!;
    await fetch(`${api.url}/apis/apps/v1/namespaces/ml/deployments/clipper-demo-sum-4`, {
      method: "PUT", headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...annotated, metadata: { ...annotated.metadata, annotations: { ...annotated.metadata.annotations, "ai.clipper.kept_replicas": "2" } } }),
    });
    await fetch(`${api.url}/api/v1/namespaces/ml/secrets/clipper-demo-rpc-key`, { method: "DELETE" });
    const restarted = await manager();
    await restarted.startClipper(OPTIONS);
    const back = api.get("deployments", "clipper-demo-sum-4", "ml")!;
    expect([back.spec.replicas, back.metadata.annotations["ai.clipper.kept_replicas"]]).toEqual([2, undefined]);
    const newKey = Buffer.from(api.get("secrets", "clipper-demo-rpc-key", "ml")!.data.key, "base64").toString();
    expect(Buffer.from(api.get("secrets", "clipper-demo-sum-4-rpc", "ml")!.data.secret, "base64").toString())
      .toBe(versionSecret(newKey, { name: "sum", version: "4", inputType: "doubles" }));
    await restarted.stopAll({ keepState: true });
    await m.stopAll({ keepState: false }); // the claim, the Secrets and the kept Deployment are still there
    expect(api.list("persistentvolumeclaims", "ml")).toHaveLength(0);
    await expect(m.stopAll()).rejects.toThrow(/no Kubernetes cluster named demo/);
  });

  it("starts with the user's token Secret, and refuses one that does not exist", async () => {
    await expect((await manager({ tokenSecret: "absent" })).startClipper(OPTIONS)).rejects.toThrow(/the Secret absent in namespace ml does not exist or has no key `token`/);
    await fetch(`${api.url}/api/v1/namespaces/ml/secrets`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ metadata: { name: "my-token" }, data: { token: Buffer.from("s3cret").toString("base64") } }),
    });
    const m = await manager({ tokenSecret: "my-token", registry: "registry.example:5000" });
    const started = await m.startClipper(OPTIONS);
    expect(started.token).toBe("s3cret");
    expect(started.registry).toBe("registry.example:5000");
    const connected = await (await manager()).connect();
    expect(connected.token).toBe("s3cret");
    expect(connected.registry).toBe("registry.example:5000");
    await m.stopAll({ keepState: false });
  });

  it("a user who may not create Roles is told to ask for it or pass --no-autoscaler, and can then start and stop", async () => {
    api.setAutoReady(true);
    api.forbid(["roles", "rolebindings"]);
    try {
      const err = await (await manager()).startClipper(OPTIONS).then(() => undefined, (e: unknown) => e as Error);
      expect(err?.message).toMatch(/answered 403: .*roles.*ask for create and update on roles, rolebindings and serviceaccounts .* or start with --no-autoscaler/);
      const m = await manager();
      await m.startClipper({ ...OPTIONS, autoscaler: false });
      expect(api.get("deployments", "clipper-demo-autoscaler", "ml")).toBeUndefined();
      // Stop lists the autoscaler's permissions too; one it may not list it cannot have created.
      await m.stopAll({ keepState: false });
      expect(api.list("deployments", "ml")).toEqual([]);
      // The ServiceAccount the refused start created (before its Role) is gone with the rest.
      expect(api.list("serviceaccounts", "ml")).toEqual([]);
    } finally {
      api.forbid([]);
    }
  });
});

describe("frontend workers per pod on Kubernetes", () => {
  it("declares every worker's RPC port, tells replicas the list, and gives kept versions the ports of the next start", async () => {
    api.setAutoReady(true);
    api.setServiceBackend("clipper-wk-management", `http://127.0.0.1:${(daemon.address() as AddressInfo).port}`, "ml");
    const options: ClusterOptions = { ...OPTIONS, cluster: "wk", frontendWorkers: 2 };
    const m = await manager({ cluster: "wk" });
    await m.startClipper(options);
    const frontend = api.get("deployments", "clipper-wk-query-frontend", "ml")!;
    expect(frontend.metadata.annotations["ai.clipper.query_frontend.workers"]).toBe("2");
    const container = frontend.spec.template.spec.containers[0];
    expect(container.command.join(" ")).toContain("--rpc-port 7000 --workers 2 ");
    expect(container.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]))
      .toEqual([["query", 1337], ["rpc", 7000], ["rpc-1", 7001]]);
    const headless = api.get("services", "clipper-wk-frontend-rpc", "ml")!;
    expect(headless.spec.ports.map((p: { name: string; port: number; targetPort: string }) => [p.name, p.port, p.targetPort]))
      .toEqual([["rpc", 7000, "rpc"], ["rpc-1", 7001, "rpc-1"]]);
    expect(api.get("networkpolicies", "clipper-wk-frontend-rpc", "ml")!.spec.ingress[0].ports).toEqual([{ port: 7000, protocol: "TCP" }, { port: 7001, protocol: "TCP" }]);

    await m.deployModel(MODEL, 1);
    const portEnv = () => api.get("deployments", "clipper-wk-sum-1", "ml")!.spec.template.spec.containers[0].env
      .filter((e: { name: string }) => e.name === "CLIPPER_PORT");
    expect(portEnv()).toEqual([{ name: "CLIPPER_PORT", value: "7000,7001" }]);
    // Kept by a stop, then started with three workers: the version's pods are told the three ports.
    await m.stopAll({ keepState: true });
    const restarted = await manager({ cluster: "wk" });
    await restarted.startClipper({ ...options, frontendWorkers: 3 });
    expect(portEnv()).toEqual([{ name: "CLIPPER_PORT", value: "7000,7001,7002" }]);
    expect(api.get("deployments", "clipper-wk-sum-1", "ml")!.spec.replicas).toBe(1);

    // A worker count edited into nonsense on the frontend Deployment is refused, not guessed.
    const current = api.get("deployments", "clipper-wk-query-frontend", "ml")!;
    await fetch(`${api.url}/apis/apps/v1/namespaces/ml/deployments/clipper-wk-query-frontend`, {
      method: "PUT", headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...current, metadata: { ...current.metadata, annotations: { ...current.metadata.annotations, "ai.clipper.query_frontend.workers": "9" } } }),
    });
    await expect(restarted.deployModel({ ...MODEL, version: "2" }, 1)).rejects.toThrow(/ai\.clipper\.query_frontend\.workers="9", not a worker count from 1 to 8/);
    expect(api.get("deployments", "clipper-wk-sum-2", "ml")).toBeUndefined();
    await restarted.stopAll({ keepState: false });
  });
});
