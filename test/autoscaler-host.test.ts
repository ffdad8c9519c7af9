/**
 * The autoscaler host of the Kubernetes manager (src/autoscaler/host.ts) against the fake API server
 * and a real management daemon: a version autoscaled to min 2 that runs 1 replica is scaled through
 * the Deployment's scale subresource, the decision is in the daemon's event log, every call the host
 * makes is one its Role (autoscaler-manifests.ts) allows, and nothing scales after it stops. The
 * host is given a kubeconfig for the fake server where a pod would load its in-cluster one.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startManagementServer, type ManagementServer } from "../runtime/management/server.js";
import { AUTOSCALER_EVENTS_PATH, SET_AUTOSCALING_PATH } from "../runtime/shared/autoscaling.js";
import { startAutoscalerHost } from "../src/autoscaler/host.js";
import type { AutoscaleLoop } from "../src/autoscaler/loop.js";
import { AUTOSCALER_RULES } from "../src/managers/kubernetes/autoscaler-manifests.js";
import { waitFor } from "./support/cluster-in-process.js";
import { ROOT } from "./support/management-daemon.js";
import { startFakeKubeApi, writeKubeconfig, type FakeKubeApi } from "./support/fake-kube-api.js";

const MODEL = {
  model_name: "sum", model_version: "1", labels: [], input_type: "doubles", container_name: "NO_CONTAINER", model_data_path: "x", batch_size: -1,
};
const TOKEN = "host-test-token";

/** What RBAC would ask of a request: the API group, the resource (with its subresource) and the verb. */
function rbacRequest(method: string, path: string): { group: string; resource: string; verb: string } {
  const segs = new URL(path, "http://x").pathname.split("/").filter(Boolean);
  const [group, rest] = segs[0] === "api" ? ["", segs.slice(2)] : [segs[1]!, segs.slice(3)];
  const [plural, name, sub] = rest[0] === "namespaces" && rest.length >= 3 ? rest.slice(2) : rest;
  const verbs: Record<string, string> = { GET: name === undefined ? "list" : "get", PUT: "update", PATCH: "patch", POST: "create", DELETE: "delete" };
  return { group, resource: sub ? `${plural}/${sub}` : plural!, verb: verbs[method] ?? method };
}

function allowedByRole(r: { group: string; resource: string; verb: string }): boolean {
  return AUTOSCALER_RULES.some((rule) => (rule.apiGroups as readonly string[]).includes(r.group)
    && (rule.resources as readonly string[]).includes(r.resource) && (rule.verbs as readonly string[]).includes(r.verb));
}

let api: FakeKubeApi;
let daemon: ManagementServer;
let dir: string;
let loop: AutoscaleLoop | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "k8s-autoscaler-host-"));
  api = await startFakeKubeApi();
  api.setAutoReady(true);
  daemon = await startManagementServer({ host: "127.0.0.1", port: 0, stateDir: join(dir, "state"), token: TOKEN, logger: pino({ level: "silent" }) });
});
afterAll(async () => {
  await loop?.stop();
  await daemon?.close();
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function post(path: string, body: unknown): Promise<Response> {
  return fetch(daemon.url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

describe("the autoscaler host on Kubernetes (fake API server, real management daemon)", () => {
  it("moves a version below its min up through the scale subresource, records it, calls only what its Role allows, and stops", async () => {
    await fetch(`${api.url}/api/v1/namespaces`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ metadata: { name: "ml" } }) });
    // A model Deployment as deploy-model leaves it, with 1 replica.
    const created = await fetch(`${api.url}/apis/apps/v1/namespaces/ml/deployments`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({
        metadata: { name: "clipper-demo-sum-1", namespace: "ml", labels: { "ai.clipper.container.label": "demo", "ai.clipper.name": "model" } },
        spec: { replicas: 1, selector: { matchLabels: { app: "sum" } }, template: { metadata: { labels: { app: "sum" } }, spec: { containers: [{ name: "model", image: "sum:1" }] } } },
      }),
    });
    expect(created.status).toBe(201);
    expect((await post("/admin/add_model", MODEL)).status).toBe(200);
    expect((await post(SET_AUTOSCALING_PATH, { model_name: "sum", min_replicas: 2, max_replicas: 3 })).status).toBe(200);

    const kubeconfig = writeKubeconfig(join(dir, "kubeconfig"), api.url, "ml");
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, `${TOKEN}\n`);
    const logs: string[] = [];
    const before = api.requests.length;
    loop = await startAutoscalerHost(
      { manager: "kubernetes", cluster: "demo", namespace: "ml", adminUrl: daemon.url, tokenFile, intervalMs: 100 },
      { kubeconfig, log: (level, message, fields) => logs.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`) },
    );
    await waitFor(() => api.get("deployments", "clipper-demo-sum-1", "ml")?.spec.replicas === 2, 10_000, "the Deployment to be scaled to 2");

    // The loop records its event after the scale call returns, which is after the API server applied it.
    let scaleUp: Record<string, unknown> | undefined;
    await waitFor(async () => {
      const events = await (await fetch(`${daemon.url}${AUTOSCALER_EVENTS_PATH}`)).json() as { events: Record<string, unknown>[] };
      scaleUp = events.events.find((e) => e.kind === "scale_up");
      return scaleUp !== undefined;
    }, 10_000, "the scale_up event");
    expect(scaleUp).toMatchObject({ model_name: "sum", model_version: "1", from: 1, to: 2 });
    expect(logs.filter((l) => l.startsWith("warn"))).toEqual([]);

    const calls = api.requests.slice(before);
    expect(calls.some((c) => c.method === "PUT" && c.path.endsWith("/deployments/clipper-demo-sum-1/scale"))).toBe(true);
    const denied = calls.map((c) => ({ ...rbacRequest(c.method, c.path), path: c.path })).filter((r) => !allowedByRole(r));
    expect(denied).toEqual([]);
    // The check is live: a rollout wait (get deployments) or a pod list would be refused.
    expect(allowedByRole(rbacRequest("GET", "/apis/apps/v1/namespaces/ml/deployments/clipper-demo-sum-1"))).toBe(false);
    expect(allowedByRole(rbacRequest("GET", "/api/v1/namespaces/ml/pods"))).toBe(false);

    // Stopped, it makes no call; a later change of bounds is not acted on.
    await loop.stop();
    loop = undefined;
    const stoppedAt = api.requests.length;
    expect((await post(SET_AUTOSCALING_PATH, { model_name: "sum", min_replicas: 3, max_replicas: 3 })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 400));
    expect(api.requests.length).toBe(stoppedAt);
    expect(api.get("deployments", "clipper-demo-sum-1", "ml")?.spec.replicas).toBe(2);
  });
});

describe("the autoscaler host's entry point (dist/src/autoscaler/host-main.js)", () => {
  const ENTRY = join(ROOT, "dist", "src", "autoscaler", "host-main.js");

  function run(env: Record<string, string>, signalAfter?: (line: string) => boolean) {
    const child = spawn(process.execPath, [ENTRY], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (signalAfter && out.split("\n").some(signalAfter)) child.kill("SIGTERM");
    });
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    return new Promise<{ code: number | null; lines: Record<string, unknown>[] }>((resolve) => child.once("close", (code) => resolve({
      code, lines: out.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
    })));
  }

  it("exits 2 with a JSON line naming a bad variable", async () => {
    const r = await run({ CLIPPER_MANAGER: "docker", CLIPPER_CLUSTER: "c1", CLIPPER_ADMIN_URL: "ftp://x" });
    expect(r.code).toBe(2);
    expect(r.lines).toEqual([expect.objectContaining({ component: "autoscaler", msg: expect.stringMatching(/CLIPPER_ADMIN_URL: must be an http\(s\) URL/) })]);
  });

  it("refuses the Kubernetes manager outside a pod, where there is no in-cluster API server", async () => {
    const r = await run({ CLIPPER_MANAGER: "kubernetes", CLIPPER_CLUSTER: "c1", CLIPPER_NAMESPACE: "ml", CLIPPER_ADMIN_URL: daemon.url });
    expect(r.code).toBe(2);
    expect(r.lines.at(-1)?.msg).toMatch(/KUBERNETES_SERVICE_HOST is not set/);
  });

  it("runs until SIGTERM, logging JSON lines, then exits 0", async () => {
    const r = await run(
      { CLIPPER_MANAGER: "docker", CLIPPER_CLUSTER: "c1", CLIPPER_ADMIN_URL: daemon.url, CLIPPER_AUTOSCALE_INTERVAL_MS: "100" },
      (line) => line.includes("autoscaler running"),
    );
    expect(r.code).toBe(0);
    expect(r.lines.map((l) => l.msg)).toEqual(["autoscaler running", "signal received; stopping the autoscaler"]);
    expect(r.lines[0]).toMatchObject({ component: "autoscaler", cluster: "c1", manager: "docker" });
  });
});
