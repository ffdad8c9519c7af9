// The fake Kubernetes API the manager's integration test runs against: its semantics, briefly.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeKubeApi, type FakeKubeApi } from "./support/fake-kube-api.js";

let api: FakeKubeApi;
beforeAll(async () => { api = await startFakeKubeApi(); });
afterAll(async () => { await api.close(); });

async function call(method: string, path: string, body?: unknown, contentType = "application/json") {
  const res = await fetch(`${api.url}${path}`, {
    method,
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { "content-type": contentType } } : {}),
  });
  return { code: res.status, body: (await res.json()) as any };
}

const deployment = (name: string, labels: Record<string, string>, replicas = 1) => ({
  apiVersion: "apps/v1", kind: "Deployment",
  metadata: { name, labels },
  spec: {
    replicas,
    selector: { matchLabels: labels },
    template: { metadata: { labels }, spec: { containers: [{ name: "c", image: "img:1" }] } },
  },
});

const DEPLOYMENTS = "/apis/apps/v1/namespaces/t/deployments";

describe("fake kube api", () => {
  it("creates and reads namespaces; 409 AlreadyExists and 404 NotFound come as Status bodies", async () => {
    expect((await call("POST", "/api/v1/namespaces", { metadata: { name: "t" } })).code).toBe(201);
    const again = await call("POST", "/api/v1/namespaces", { metadata: { name: "t" } });
    expect(again.code).toBe(409);
    expect(again.body).toMatchObject({ kind: "Status", status: "Failure", reason: "AlreadyExists", code: 409 });
    expect((await call("GET", "/api/v1/namespaces/t")).body.status.phase).toBe("Active");
    const missing = await call("GET", "/api/v1/namespaces/nope");
    expect(missing.code).toBe(404);
    expect(missing.body).toMatchObject({ kind: "Status", reason: "NotFound", code: 404 });
    // Creating in a namespace that does not exist is refused.
    expect((await call("POST", "/api/v1/namespaces/nope/secrets", { metadata: { name: "s" } })).code).toBe(404);
  });

  it("stores objects with resourceVersion, refuses stale updates, and merges patches", async () => {
    const created = await call("POST", "/api/v1/namespaces/t/secrets", { metadata: { name: "s" }, stringData: { token: "abc" } });
    expect(created.code).toBe(201);
    expect(created.body.data.token).toBe(Buffer.from("abc").toString("base64"));
    const rv = created.body.metadata.resourceVersion as string;
    const replaced = await call("PUT", "/api/v1/namespaces/t/secrets/s", { ...created.body, data: { token: "eHl6" } });
    expect(replaced.code).toBe(200);
    expect(replaced.body.metadata.resourceVersion).not.toBe(rv);
    const stale = await call("PUT", "/api/v1/namespaces/t/secrets/s", { ...created.body });
    expect(stale.code).toBe(409);
    expect(stale.body.reason).toBe("Conflict");
    const patched = await call("PATCH", "/api/v1/namespaces/t/secrets/s", { metadata: { labels: { a: "b" } } }, "application/merge-patch+json");
    expect(patched.body.metadata.labels).toEqual({ a: "b" });
    expect(patched.body.data.token).toBe("eHl6");
    const stalePatch = await call("PATCH", "/api/v1/namespaces/t/secrets/s", { metadata: { resourceVersion: rv } }, "application/merge-patch+json");
    expect(stalePatch.code).toBe(409);
    expect((await call("PATCH", "/api/v1/namespaces/t/secrets/s", [{ op: "add", path: "/metadata/labels/c", value: "d" }], "application/json-patch+json")).body.metadata.labels)
      .toEqual({ a: "b", c: "d" });
    expect((await call("DELETE", "/api/v1/namespaces/t/secrets/s")).code).toBe(200);
    expect((await call("DELETE", "/api/v1/namespaces/t/secrets/s")).code).toBe(404);
  });

  it("lists and deletes collections by label selector", async () => {
    await call("POST", DEPLOYMENTS, deployment("a", { app: "x", role: "m" }));
    await call("POST", DEPLOYMENTS, deployment("b", { app: "x", role: "f" }));
    await call("POST", DEPLOYMENTS, deployment("c", { app: "y", role: "m" }));
    const names = async (sel: string) =>
      (await call("GET", `${DEPLOYMENTS}?labelSelector=${encodeURIComponent(sel)}`)).body.items.map((d: any) => d.metadata.name);
    expect(await names("app=x")).toEqual(["a", "b"]);
    expect(await names("app=x,role=m")).toEqual(["a"]);
    expect(await names("role!=m")).toEqual(["b"]);
    expect(await names("app in (x,y),role==m")).toEqual(["a", "c"]);
    expect((await call("DELETE", `${DEPLOYMENTS}?labelSelector=app%3Dx`)).code).toBe(200);
    expect(await names("")).toEqual(["c"]);
    await call("DELETE", `${DEPLOYMENTS}/c`);
  });

  it("scales through the scale subresource; status becomes ready only when marked", async () => {
    const created = await call("POST", DEPLOYMENTS, deployment("m", { app: "m" }, 2));
    expect(created.body.metadata.generation).toBe(1);
    expect(created.body.status.readyReplicas).toBeUndefined();
    const pods = async () => (await call("GET", "/api/v1/namespaces/t/pods?labelSelector=app%3Dm")).body.items;
    expect((await pods()).map((p: any) => p.status.phase)).toEqual(["Pending", "Pending"]);

    api.markReady("m", "t");
    let dep = (await call("GET", `${DEPLOYMENTS}/m`)).body;
    expect(dep.status).toMatchObject({ readyReplicas: 2, availableReplicas: 2, observedGeneration: 1 });
    expect((await pods()).every((p: any) => p.status.containerStatuses[0].ready)).toBe(true);

    const scale = (await call("GET", `${DEPLOYMENTS}/m/scale`)).body;
    expect(scale).toMatchObject({ kind: "Scale", spec: { replicas: 2 }, status: { selector: "app=m" } });
    const scaled = await call("PUT", `${DEPLOYMENTS}/m/scale`, { ...scale, spec: { replicas: 3 } });
    expect(scaled.body.spec.replicas).toBe(3);
    expect((await call("PUT", `${DEPLOYMENTS}/m/scale`, { ...scale, spec: { replicas: 4 } })).code).toBe(409); // stale
    dep = (await call("GET", `${DEPLOYMENTS}/m`)).body;
    expect(dep.spec.replicas).toBe(3);
    expect(dep.metadata.generation).toBe(2);
    expect(dep.status.observedGeneration).toBe(1); // not yet observed
    expect(await pods()).toHaveLength(3);

    api.setPodProblem("m", { reason: "ImagePullBackOff", message: "pull access denied" }, "t");
    expect((await pods())[0].status.containerStatuses[0].state.waiting.reason).toBe("ImagePullBackOff");
    api.markReady("m", "t");
    expect((await call("GET", `${DEPLOYMENTS}/m`)).body.status).toMatchObject({ readyReplicas: 3, observedGeneration: 2 });
  });

  it("proxies to a Service's backend without the caller's Authorization; 404 without the Service, 503 without a backend", async () => {
    const seen: string[] = [];
    const backend = createServer((req, res) => { seen.push(String(req.headers.authorization)); res.end(`${req.method} ${req.url}`); });
    await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
    try {
      await call("POST", "/api/v1/namespaces/t/services", { metadata: { name: "web" }, spec: { ports: [{ name: "http", port: 80 }] } });
      const proxied = (name: string, path = "/a/b?c=1") => fetch(`${api.url}/api/v1/namespaces/t/services/${encodeURIComponent(name)}/proxy${path}`,
        { method: "POST", headers: { authorization: "Bearer kube" }, body: "x" });
      expect((await proxied("http:nope:http")).status).toBe(404);
      expect((await proxied("http:web:http")).status).toBe(503);
      api.setServiceBackend("web", `http://127.0.0.1:${(backend.address() as AddressInfo).port}`, "t");
      const ok = await proxied("http:web:http");
      expect(await ok.text()).toBe("POST /a/b?c=1");
      expect(seen).toEqual(["undefined"]);
      expect((await proxied("http:web:nosuchport")).status).toBe(503);
    } finally {
      await new Promise((r) => backend.close(r));
    }
  });

  it("reports a problem pod's warning events (field-selected) and serves pod logs with tailLines", async () => {
    api.setPodProblem("m", { reason: "ImagePullBackOff", message: "pull access denied" }, "t");
    const pod = (await call("GET", "/api/v1/namespaces/t/pods?labelSelector=app%3Dm")).body.items[0].metadata.name as string;
    const events = await call("GET", `/api/v1/namespaces/t/events?fieldSelector=${encodeURIComponent(`involvedObject.kind=Pod,involvedObject.name=${pod}`)}`);
    expect(events.body.items).toHaveLength(1);
    expect(events.body.items[0]).toMatchObject({ type: "Warning", reason: "Failed", message: "pull access denied", involvedObject: { name: pod } });
    expect((await call("GET", "/api/v1/namespaces/t/events?fieldSelector=involvedObject.name%3Dother")).body.items).toEqual([]);
    api.markReady("m", "t");
    expect((await call("GET", "/api/v1/namespaces/t/events")).body.items).toEqual([]);

    api.setPodLogs((p) => (p.metadata.name === pod ? "one\ntwo\nthree\n" : undefined));
    expect(await (await fetch(`${api.url}/api/v1/namespaces/t/pods/${pod}/log?tailLines=2`)).text()).toBe("two\nthree\n");
    expect((await fetch(`${api.url}/api/v1/namespaces/t/pods/nope/log`)).status).toBe(404);
  });
});
