// The CLI end to end on Kubernetes: `clipper start --manager kubernetes` and the usual commands
// against the in-process fake API server (no API server can run here), whose service proxy leads to
// a real management daemon and query frontend on loopback, and whose "kubelet"
// (test/support/fake-kubelet.ts) runs model pods as processes of our Node runtime.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, type CliResult } from "./support/cli.js";
import { startInProcessCluster, waitFor, type InProcessCluster } from "./support/cluster-in-process.js";
import { startFakeKubeApi, writeKubeconfig, type FakeKubeApi } from "./support/fake-kube-api.js";
import { startFakeKubelet, type FakeKubelet } from "./support/fake-kubelet.js";
import { versionSecret } from "../runtime/shared/rpc-auth.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FIXTURES = join(ROOT, "test", "fixtures", "node-models");
const UNPULLABLE = "registry.example/missing:1";

let api: FakeKubeApi;
let kubelet: FakeKubelet;
let cluster: InProcessCluster;
let dir: string;
let kubeconfig: string;
let env: Record<string, string>;

const cli = (args: string[], extraEnv: Record<string, string> = {}): Promise<CliResult> => runCli(args, { ...env, ...extraEnv });

beforeAll(async () => {
  api = await startFakeKubeApi();
  dir = mkdtempSync(join(tmpdir(), "k8s-cli-"));
  kubeconfig = writeKubeconfig(join(dir, "kubeconfig"), api.url, "ml");
  cluster = await startInProcessCluster({ replicaTimeoutMs: 5000 });
  api.setServiceBackend("clipper-demo-management", cluster.management.url, "ml");
  api.setServiceBackend("clipper-demo-query-frontend", cluster.frontend.queryUrl, "ml");
  // The cluster's own pods are the servers above: ready as soon as they are applied. A model image
  // the "registry" does not have cannot be pulled, as the kubelet would report.
  api.onDeployment((event, dep) => {
    if (event === "DELETED") return;
    const { name, namespace } = dep.metadata;
    if (dep.metadata.labels["ai.clipper.name"] !== "model") setImmediate(() => api.markReady(name, namespace));
    else if (dep.spec.template.spec.containers[0].image === UNPULLABLE) {
      setImmediate(() => api.setPodProblem(name, { reason: "ImagePullBackOff", message: `Back-off pulling image "${UNPULLABLE}"` }, namespace));
    }
  });
  kubelet = startFakeKubelet(api, {
    skipImages: [UNPULLABLE],
    env: { CLIPPER_IP: "127.0.0.1", CLIPPER_PORT: String(cluster.frontend.rpcPort), CLIPPER_MODEL_PATH: FIXTURES, CLIPPER_PREDICT: "sum.mjs" },
  });
  env = { CLIPPER_HOME: join(dir, "home"), KUBECONFIG: join(dir, "no-such-kubeconfig"), NO_COLOR: "1" };
  // The in-process frontend authenticates replicas with its own RPC key: the cluster's key Secret is
  // there as an earlier start would have left it, and start keeps an existing key.
  const create = (path: string, body: unknown) => fetch(`${api.url}${path}`, {
    method: "POST", headers: { "content-type": "application/json", authorization: "Bearer test-token" }, body: JSON.stringify(body),
  }).then((r) => expect(r.status).toBe(201));
  await create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "ml" } });
  await create("/api/v1/namespaces/ml/secrets", {
    apiVersion: "v1", kind: "Secret", type: "Opaque", stringData: { key: cluster.rpcKey },
    metadata: { name: "clipper-demo-rpc-key", namespace: "ml", labels: { "ai.clipper.container.label": "demo" } },
  });
}, 60_000);

afterAll(async () => {
  await kubelet?.close();
  await cluster?.close();
  await api?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the CLI on Kubernetes (fake API server, real daemon, frontend and model runtimes)", () => {
  it("starts: applies the objects, waits for the rollout, reaches the daemon through the API server", async () => {
    const r = await cli(["start", "--manager", "kubernetes", "--kubeconfig", kubeconfig, "--cluster", "demo", "--create-namespace",
      "--runtime-image", "registry.example/clipper-runtime:1", "--registry", "registry.example/team", "--image-pull-secret", "regcred", "--json"]);
    expect(r.stderr.split("\n").filter((l) => l.startsWith("error"))).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({
      cluster: "demo", manager: "kubernetes", registry: "registry.example/team", tokenRequired: true,
      kubernetes: { kubeconfig, namespace: "ml" },
      applicationQueryUrls: ["http://clipper-demo-query-frontend.ml.svc:1337"],
    });
    expect(api.list("deployments", "ml").map((d) => d.metadata.name).sort())
      .toEqual(["clipper-demo-autoscaler", "clipper-demo-management", "clipper-demo-query-frontend"]);
    // The key was kept, mounted into the frontends only; the RPC port is closed to all but model pods.
    expect(Buffer.from(api.get("secrets", "clipper-demo-rpc-key", "ml")!.data.key, "base64").toString()).toBe(cluster.rpcKey);
    const frontend = api.get("deployments", "clipper-demo-query-frontend", "ml")!.spec.template.spec;
    expect(frontend.containers[0].command.join(" ")).toContain("--rpc-auth plain --rpc-key-file /etc/clipper-rpc/key");
    expect(JSON.stringify(api.get("deployments", "clipper-demo-management", "ml"))).not.toContain("rpc-key");
    expect(api.list("networkpolicies", "ml").map((p) => p.metadata.name)).toEqual(["clipper-demo-frontend-rpc"]);
    // Every call carried the kubeconfig's credentials; the daemon was pinged through the service proxy.
    expect(api.requests.every((q) => q.authorization)).toBe(true);
    expect(api.requests.some((q) => q.path.includes("/services/http%3Aclipper-demo-management%3Amanagement/proxy/admin/ping"))).toBe(true);
  });

  it("registers an app, deploys a model whose pods run and register, and answers queries", async () => {
    expect((await cli(["register-app", "sum-app", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "5000"])).code).toBe(0);
    const deploy = await cli(["deploy-model", "sum", "--version", "1", "--input-type", "doubles", "--framework", "node",
      "--image", "registry.example/team/demo-sum:1", "--replicas", "2", "--link", "sum-app", "--json"]);
    expect(deploy.stderr.split("\n").filter((l) => l.startsWith("error"))).toEqual([]);
    expect(deploy.code).toBe(0);
    expect(kubelet.running("clipper-demo-sum-1")).toBe(2);
    // The model Deployment pulls with the cluster's pull secrets and finds every frontend by DNS.
    const pod = api.get("deployments", "clipper-demo-sum-1", "ml")!.spec.template.spec;
    expect(pod.imagePullSecrets).toEqual([{ name: "regcred" }]);
    expect(pod.containers[0].env).toEqual(expect.arrayContaining([
      { name: "CLIPPER_IP", value: "clipper-demo-frontend-rpc.ml.svc" }, { name: "CLIPPER_FRONTEND_DISCOVERY", value: "dns" },
      { name: "CLIPPER_RPC_SECRET", valueFrom: { secretKeyRef: { name: "clipper-demo-sum-1-rpc", key: "secret" } } },
    ]));
    // The pods registered with the credential the kubelet read from the version's own Secret.
    const secret = api.get("secrets", "clipper-demo-sum-1-rpc", "ml")!;
    expect(Buffer.from(secret.data.secret, "base64").toString()).toBe(versionSecret(cluster.rpcKey, { name: "sum", version: "1", inputType: "doubles" }));
    expect(JSON.stringify(api.get("deployments", "clipper-demo-sum-1", "ml"))).not.toContain(Buffer.from(secret.data.secret, "base64").toString());
    const p = await cli(["predict", "sum-app", "[1, 2, 3.5]", "--json"]);
    expect(p.code).toBe(0);
    expect(p.json).toMatchObject({ output: 6.5, default: false });
  });

  it("shows pods, readiness and restarts in status, and pod logs", async () => {
    const s = await cli(["status", "--json"]);
    expect(s.code).toBe(0);
    expect(s.json.replicas).toHaveLength(2);
    expect(s.json.replicas.every((r: any) => r.ready === true && r.restarts === 0 && r.pod.startsWith("clipper-demo-sum-1-"))).toBe(true);
    expect(s.json.components.map((c: any) => [c.component.split("/")[0], c.ready])).toEqual([["autoscaler", true], ["management", true], ["query_frontend", true]]);
    const text = await cli(["status"]);
    expect(text.stdout).toMatch(/MODEL\s+VERSION\s+REPLICA\s+POD\s+STATE\s+READY\s+RESTARTS/);
    const logs = await cli(["logs", "sum-1-0", "--tail", "50", "--json"]);
    expect(logs.code).toBe(0);
    expect(logs.json).toHaveLength(1);
    expect(logs.json[0].component).toMatch(/^clipper-demo-sum-1-[0-9a-f]{10}-0$/);
    expect(logs.json[0].lines.join("\n")).toMatch(/sent container metadata[\s\S]*wrote the readiness file/);
  });

  it("scales through the scale subresource and the frontend sees it", async () => {
    const r = await cli(["replicas", "sum", "1", "--json"]);
    expect(r.code).toBe(0);
    expect(api.get("deployments", "clipper-demo-sum-1", "ml")!.spec.replicas).toBe(1);
    expect(api.requests.some((q) => q.method === "PUT" && q.path.endsWith("/deployments/clipper-demo-sum-1/scale"))).toBe(true);
    await waitFor(() => kubelet.running("clipper-demo-sum-1") === 1, 10_000, "the second pod to stop");
    expect((await cli(["predict", "sum-app", "[2, 2]", "--json"])).json).toMatchObject({ output: 4 });
  });

  it("stop-models keeps the version so replicas brings it back; stop --keep-state then start brings back its pods", async () => {
    expect((await cli(["stop-models", "sum", "--version", "1"])).code).toBe(0);
    expect(kubelet.running("clipper-demo-sum-1")).toBe(0);
    expect(api.get("deployments", "clipper-demo-sum-1", "ml")!.spec.replicas).toBe(0);
    const back = await cli(["replicas", "sum", "1", "--version", "1"]);
    expect(back.stderr.split("\n").filter((l) => l.startsWith("error"))).toEqual([]);
    expect(kubelet.running("clipper-demo-sum-1")).toBe(1);
    expect((await cli(["predict", "sum-app", "[1, 1]", "--json"])).json).toMatchObject({ output: 2 });

    expect((await cli(["stop", "--keep-state"])).code).toBe(0);
    expect(kubelet.running("clipper-demo-sum-1")).toBe(0);
    expect(api.get("deployments", "clipper-demo-query-frontend", "ml")).toBeUndefined();
    const start = await cli(["start", "--manager", "kubernetes", "--kubeconfig", kubeconfig, "--cluster", "demo",
      "--runtime-image", "registry.example/clipper-runtime:1", "--registry", "registry.example/team", "--image-pull-secret", "regcred"]);
    expect(start.stderr.split("\n").filter((l) => l.startsWith("error"))).toEqual([]);
    expect(kubelet.running("clipper-demo-sum-1")).toBe(1);
    await waitFor(async () => (await cli(["predict", "sum-app", "[2, 5]", "--json"])).json?.output === 7, 10_000, "the restored replica to answer");
  });

  it("a model whose image cannot be pulled fails the deploy in one line naming the pod, the reason and the events, leaving nothing behind", async () => {
    const r = await cli(["deploy-model", "broken", "--version", "1", "--input-type", "doubles", "--framework", "node",
      "--image", UNPULLABLE, "--ready-timeout-ms", "1500"]);
    expect(r.code).toBe(6);
    const line = r.stderr.split("\n").find((l) => l.startsWith("error:")) ?? "";
    expect(line).toMatch(/clipper-demo-broken-1 has 0 of 1 replicas ready/);
    expect(line).toMatch(/ImagePullBackOff/);
    expect(line).toMatch(/events: Failed: Back-off pulling image "registry\.example\/missing:1"/);
    expect(api.get("deployments", "clipper-demo-broken-1", "ml")).toBeUndefined();
    expect(api.get("secrets", "clipper-demo-broken-1-rpc", "ml")).toBeUndefined();
    expect((await cli(["models", "--json"])).json.map((m: any) => m.model_name)).toEqual(["sum"]);
  });

  it("a dry run with a missing --predict file (or none) fails as the live deploy does: same error line, same exit code", async () => {
    const missing = join(dir, "no-such-predict.py");
    const flags = (...more: string[]) => ["deploy-model", "ghost", "--version", "1", "--input-type", "doubles", "--framework", "python", ...more];
    const dry = ["--manager", "kubernetes", "--dry-run", "--cluster", "demo"];
    const firstError = (r: CliResult) => r.stderr.split("\n").find((l) => l.startsWith("error:"));
    for (const source of [["--predict", missing], []]) {
      const before = api.requests.length;
      const live = await cli(flags(...source));
      const printed = await cli(flags(...source, ...dry));
      expect(firstError(live)).toBe(source.length ? `error: predict file ${missing} does not exist` : "error: give --predict FILE[:FUNCTION] (or --image IMAGE with --manager docker)");
      expect([printed.code, firstError(printed), printed.stdout]).toEqual([live.code, firstError(live), ""]);
      expect(live.code).toBe(2);
      // Nothing was created or changed on the cluster.
      expect(api.requests.slice(before).filter((r) => r.method !== "GET")).toEqual([]);
    }
  });

  it("refuses a registry that is no registry address before anything is done", async () => {
    const before = api.requests.length;
    const r = await cli(["start", "--manager", "kubernetes", "--kubeconfig", kubeconfig, "--cluster", "demo", "--registry", "not a registry"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/'not a registry' is not a registry address \(host\[:port\]\[\/path\]\)/);
    expect(api.requests.length).toBe(before);
  });

  it("attaches from another machine by labels, then stops exactly what it created", async () => {
    const other = { CLIPPER_HOME: join(dir, "other-home") };
    const a = await cli(["attach", "--cluster", "demo", "--kubeconfig", kubeconfig, "--namespace", "ml", "--json"], other);
    expect(a.code).toBe(0);
    expect(a.json).toMatchObject({ cluster: "demo", manager: "kubernetes" });
    const apps = await cli(["apps", "--json"], other);
    expect(apps.json.map((app: { name: string }) => app.name)).toEqual(["sum-app"]);
    const missing = await cli(["attach", "--cluster", "nope", "--kubeconfig", kubeconfig, "--namespace", "ml"], other);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/no Kubernetes cluster named nope in namespace ml/);

    const stop = await cli(["stop", "--json"], other);
    expect(stop.code).toBe(0);
    await waitFor(() => kubelet.running("clipper-demo-sum-1") === 0, 10_000, "the model pods to stop");
    for (const plural of ["deployments", "services", "secrets", "persistentvolumeclaims", "networkpolicies"]) {
      expect(api.list(plural, "ml").filter((o) => o.metadata.labels?.["ai.clipper.container.label"] === "demo")).toEqual([]);
    }
    expect((await cli(["status"], other)).code).not.toBe(0);
  });
});
