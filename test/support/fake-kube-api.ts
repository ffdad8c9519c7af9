/**
 * An in-process stand-in for the few Kubernetes API paths the manager calls, with the API server's
 * real semantics where they matter to a client: 404 NotFound and 409 AlreadyExists / Conflict as
 * `Status` bodies, resourceVersion on every write (a stale one is refused), generation on spec
 * changes, equality label selectors on lists and collection deletes, the Deployment scale
 * subresource, and Deployment status that only becomes ready when the test says so (`markReady`),
 * as a controller would report it. Pods are synthesized from Deployments (one per desired replica),
 * with Warning events for pods the test gives a problem (as the kubelet would emit) and logs from a
 * source the test supplies. The service proxy subresource forwards to a backend URL the test names
 * for the Service (the API server would forward to one of its endpoints), dropping the caller's
 * Authorization header as the API server does. Tests may watch Deployment changes to run "pods".
 *
 * No API server can run on these machines (see /work/shared/design/test-environment.md), so this is
 * how the Kubernetes manager is tested; docs/kubernetes.md says so.
 */
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

type Obj = Record<string, any>;

interface Resource {
  group: string; // "" for the core group
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

const RESOURCES: Resource[] = [
  { group: "", version: "v1", kind: "Namespace", plural: "namespaces", namespaced: false },
  { group: "", version: "v1", kind: "Service", plural: "services", namespaced: true },
  { group: "", version: "v1", kind: "Secret", plural: "secrets", namespaced: true },
  { group: "", version: "v1", kind: "PersistentVolumeClaim", plural: "persistentvolumeclaims", namespaced: true },
  { group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", namespaced: true },
  { group: "apps", version: "v1", kind: "Deployment", plural: "deployments", namespaced: true },
  { group: "networking.k8s.io", version: "v1", kind: "NetworkPolicy", plural: "networkpolicies", namespaced: true },
  { group: "", version: "v1", kind: "ServiceAccount", plural: "serviceaccounts", namespaced: true },
  { group: "rbac.authorization.k8s.io", version: "v1", kind: "Role", plural: "roles", namespaced: true },
  { group: "rbac.authorization.k8s.io", version: "v1", kind: "RoleBinding", plural: "rolebindings", namespaced: true },
];

class ApiError extends Error {
  constructor(readonly code: number, readonly reason: string, message: string, readonly details?: Obj) {
    super(message);
  }
}

/** Why a synthesized pod is not ready, as the kubelet would report it in containerStatuses. */
export interface PodProblem {
  reason: string; // e.g. ImagePullBackOff, CrashLoopBackOff
  message?: string;
}

export type DeploymentEvent = "ADDED" | "MODIFIED" | "DELETED";

export interface FakeKubeApi {
  readonly url: string;
  /** Every request, and whether it carried credentials (an Authorization header). */
  readonly requests: { method: string; path: string; authorization: boolean }[];
  /** Requests to a service proxy path arrive at this URL (e.g. a server the test runs on loopback). */
  setServiceBackend(service: string, url: string, namespace: string): void;
  /**
   * Where pod logs come from (undefined: the pod has written nothing). A follow request is sent
   * what the source adds later (read every 50 ms) until the pod goes; `sinceTime` keeps the lines
   * that start with a time at or after it, and those with none.
   */
  setPodLogs(source: (pod: Obj) => string | undefined): void;
  /** Called after every Deployment create, change and delete (a test's stand-in for the kubelet). */
  /** Serves metrics.k8s.io pod usage from this source (until set, the API server has no metrics API: 404). */
  setPodMetrics(source: (pod: Obj) => { cpu: string; memory: string } | undefined): void;
  /** Requests on these resources (plurals) are refused 403 Forbidden, as RBAC refuses a user without the verb. */
  forbid(plurals: string[]): void;
  onDeployment(listener: (event: DeploymentEvent, deployment: Obj) => void): void;
  /** Reports the Deployment as a controller would once its pods are ready (all namespaces, or one). */
  markReady(name: string, namespace?: string): void;
  /** Every Deployment becomes ready as soon as it is created or changed. */
  setAutoReady(on: boolean): void;
  /** The Deployment's pods are waiting for the given reason (and not ready) until markReady. */
  setPodProblem(name: string, problem: PodProblem, namespace?: string): void;
  /** The stored object, as the API server holds it (undefined when absent). */
  get(plural: string, name: string, namespace?: string): Obj | undefined;
  list(plural: string, namespace?: string): Obj[];
  close(): Promise<void>;
}

/** A kubeconfig whose only context points at the fake (with a bearer token, as a real user would have). */
export function writeKubeconfig(path: string, url: string, namespace: string): string {
  writeFileSync(path, [
    "apiVersion: v1", "kind: Config", "current-context: fake",
    "clusters:", "- name: fake", "  cluster:", `    server: ${url}`, "    insecure-skip-tls-verify: true",
    "users:", "- name: fake", "  user:", "    token: test-token",
    "contexts:", "- name: fake", "  context:", "    cluster: fake", "    user: fake", `    namespace: ${namespace}`,
  ].join("\n"));
  return path;
}

export async function startFakeKubeApi(): Promise<FakeKubeApi> {
  const store = new Map<string, Obj>(); // key: plural/namespace/name
  const problems = new Map<string, PodProblem>(); // key: namespace/name of a Deployment
  const requests: { method: string; path: string; authorization: boolean }[] = [];
  const backends = new Map<string, string>(); // key: namespace/service
  const forbidden = new Set<string>();
  const deploymentListeners: ((event: DeploymentEvent, deployment: Obj) => void)[] = [];
  let podLogs: (pod: Obj) => string | undefined = () => undefined;
  let podMetrics: ((pod: Obj) => { cpu: string; memory: string } | undefined) | undefined;
  const notify = (event: DeploymentEvent, dep: Obj) => {
    for (const l of deploymentListeners) l(event, structuredClone(dep));
  };
  let revision = 1000;
  let autoReady = false;
  const nextRv = () => String(++revision);
  const key = (plural: string, ns: string | undefined, name: string) => `${plural}/${ns ?? ""}/${name}`;

  function notFound(r: Resource, name: string): ApiError {
    const what = r.group ? `${r.plural}.${r.group}` : r.plural;
    return new ApiError(404, "NotFound", `${what} "${name}" not found`, { name, group: r.group || undefined, kind: r.plural });
  }

  function ready(dep: Obj): void {
    const replicas = dep.spec?.replicas ?? 1;
    dep.status = {
      observedGeneration: dep.metadata.generation,
      replicas,
      updatedReplicas: replicas,
      readyReplicas: replicas,
      availableReplicas: replicas,
      conditions: [{ type: "Available", status: "True", reason: "MinimumReplicasAvailable" }],
    };
    if (replicas === 0) {
      // The API server omits zero counts.
      delete dep.status.readyReplicas;
      delete dep.status.availableReplicas;
    }
  }

  function deploymentChanged(dep: Obj): void {
    const ns = dep.metadata.namespace as string;
    // Scaled to 0 it has no pods, so nothing (an image that cannot be pulled) keeps it from rolling out.
    if (dep.spec?.replicas === 0) problems.delete(`${ns}/${dep.metadata.name}`);
    if ((autoReady || dep.spec?.replicas === 0) && !problems.has(`${ns}/${dep.metadata.name}`)) ready(dep);
    else {
      // The controller has not observed it yet: ready counts are stale, observedGeneration behind.
      dep.status = { ...(dep.status ?? {}), observedGeneration: dep.status?.observedGeneration ?? 0 };
    }
  }

  function podsOf(dep: Obj): Obj[] {
    const ns = dep.metadata.namespace as string;
    const name = dep.metadata.name as string;
    const problem = problems.get(`${ns}/${name}`);
    const isReady = !problem && (dep.status?.readyReplicas ?? 0) >= (dep.spec?.replicas ?? 1)
      && dep.status?.observedGeneration === dep.metadata.generation;
    const count = dep.spec?.replicas ?? 1;
    const containers: Obj[] = dep.spec?.template?.spec?.containers ?? [];
    const hash = (dep.metadata.uid as string).replace(/-/g, "").slice(0, 10);
    return Array.from({ length: count }, (_, i) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: `${name}-${hash}-${i}`,
        namespace: ns,
        uid: `${dep.metadata.uid}-${i}`,
        resourceVersion: dep.metadata.resourceVersion,
        labels: { ...(dep.spec?.template?.metadata?.labels ?? {}) },
        ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: `${name}-${hash}`, uid: dep.metadata.uid }],
      },
      spec: dep.spec?.template?.spec ?? {},
      status: {
        phase: isReady ? "Running" : "Pending",
        conditions: [{ type: "Ready", status: isReady ? "True" : "False" }],
        containerStatuses: containers.map((c) => ({
          name: c.name,
          image: c.image,
          ready: isReady,
          restartCount: 0,
          started: isReady,
          state: isReady
            ? { running: { startedAt: dep.metadata.creationTimestamp } }
            : { waiting: { reason: problem?.reason ?? "ContainerCreating", ...(problem?.message ? { message: problem.message } : {}) } },
        })),
      },
    }));
  }

  /** The kubelet's Warning event for each pod that has a problem. */
  function eventsOf(pods: Obj[], ns: string | undefined): Obj[] {
    return pods.flatMap((pod) => {
      const owner = pod.metadata.ownerReferences?.[0]?.name?.replace(/-[0-9a-f]{10}$/, "");
      const problem = problems.get(`${pod.metadata.namespace}/${owner}`);
      if (!problem || (ns !== undefined && pod.metadata.namespace !== ns)) return [];
      return [{
        metadata: { name: `${pod.metadata.name}.${revision.toString(16)}`, namespace: pod.metadata.namespace },
        involvedObject: { kind: "Pod", name: pod.metadata.name, namespace: pod.metadata.namespace },
        type: "Warning", reason: problem.reason === "ImagePullBackOff" ? "Failed" : "BackOff",
        message: problem.message ?? problem.reason, count: 3, lastTimestamp: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      }];
    });
  }

  /** Equality field selectors (the API server's `a.b=c,d.e=f`), on any dotted path of the object. */
  function fieldMatches(o: Obj, selector: string | null): boolean {
    if (!selector) return true;
    return selector.split(",").every((part) => {
      const m = part.match(/^([^!=]+)(==?|!=)(.*)$/);
      if (!m) throw new ApiError(400, "BadRequest", `invalid field selector: ${part}`);
      const value = m[1]!.trim().split(".").reduce<any>((v, k) => (v === undefined ? undefined : v[k]), o);
      return m[2] === "!=" ? String(value ?? "") !== m[3] : String(value ?? "") === m[3];
    });
  }

  // ---- label selectors ----------------------------------------------------------------------

  type Requirement = (labels: Record<string, string>) => boolean;
  function parseSelector(selector: string | null): Requirement[] {
    if (!selector) return [];
    const parts: string[] = [];
    // Split on commas outside parentheses (set-based "in (a,b)").
    let depth = 0, current = "";
    for (const ch of selector) {
      if (ch === "(") depth++;
      if (ch === ")") depth--;
      if (ch === "," && depth === 0) { parts.push(current); current = ""; } else current += ch;
    }
    parts.push(current);
    return parts.map((raw) => {
      const p = raw.trim();
      let m: RegExpMatchArray | null;
      if ((m = p.match(/^([^!=\s]+)\s*!=\s*(.*)$/))) { const [, k, v] = m; return (l) => l[k!] !== v!.trim(); }
      if ((m = p.match(/^([^!=\s]+)\s*==?\s*(.*)$/))) { const [, k, v] = m; return (l) => l[k!] === v!.trim(); }
      if ((m = p.match(/^(\S+)\s+(in|notin)\s*\((.*)\)$/))) {
        const [, k, op, vs] = m; const set = new Set(vs!.split(",").map((s) => s.trim()));
        return op === "in" ? (l) => l[k!] !== undefined && set.has(l[k!]!) : (l) => l[k!] === undefined || !set.has(l[k!]!);
      }
      if ((m = p.match(/^!(\S+)$/))) { const k = m[1]!; return (l) => !(k in l); }
      if (/^\S+$/.test(p)) return (l) => p in l;
      throw new ApiError(400, "BadRequest", `unable to parse requirement: ${p}`);
    });
  }
  const matches = (o: Obj, reqs: Requirement[]) => reqs.every((r) => r(o.metadata?.labels ?? {}));

  // ---- patches --------------------------------------------------------------------------------

  function mergePatch(target: any, patch: any): any {
    if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
    const out: Obj = target !== null && typeof target === "object" && !Array.isArray(target) ? { ...target } : {};
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete out[k];
      else out[k] = mergePatch(out[k], v);
    }
    return out;
  }

  function jsonPatch(target: Obj, ops: Obj[]): Obj {
    const doc = structuredClone(target);
    for (const op of ops) {
      const path = String(op.path).split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
      const last = path.pop()!;
      let parent: any = doc;
      for (const seg of path) {
        if (parent[seg] === undefined) throw new ApiError(422, "Invalid", `jsonpatch: missing path ${op.path}`);
        parent = parent[seg];
      }
      switch (op.op) {
        case "add":
        case "replace":
          if (Array.isArray(parent)) {
            if (last === "-") parent.push(op.value);
            else if (op.op === "add") parent.splice(Number(last), 0, op.value);
            else parent[Number(last)] = op.value;
          } else {
            if (op.op === "replace" && !(last in parent)) throw new ApiError(422, "Invalid", `jsonpatch replace: missing ${op.path}`);
            parent[last] = op.value;
          }
          break;
        case "remove":
          if (Array.isArray(parent)) parent.splice(Number(last), 1); else delete parent[last];
          break;
        case "test":
          if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) throw new ApiError(422, "Invalid", `jsonpatch test failed at ${op.path}`);
          break;
        default:
          throw new ApiError(400, "BadRequest", `unsupported json patch op ${op.op}`);
      }
    }
    return doc;
  }

  // ---- storage ------------------------------------------------------------------------------

  function namespaceExists(ns: string): boolean {
    return store.has(key("namespaces", undefined, ns));
  }

  function create(r: Resource, ns: string | undefined, body: Obj): Obj {
    if (!body || typeof body !== "object") throw new ApiError(400, "BadRequest", "the body of the request was in an unknown format");
    const name = body.metadata?.name;
    if (!name) throw new ApiError(422, "Invalid", `${r.kind} "" is invalid: metadata.name: Required value: name or generateName is required`);
    if (body.kind && body.kind !== r.kind) throw new ApiError(400, "BadRequest", `the kind ${body.kind} does not match ${r.kind}`);
    if (r.namespaced) {
      if (body.metadata.namespace && body.metadata.namespace !== ns) {
        throw new ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request");
      }
      if (!namespaceExists(ns!)) throw new ApiError(404, "NotFound", `namespaces "${ns}" not found`, { name: ns, kind: "namespaces" });
    }
    const k = key(r.plural, ns, name);
    if (store.has(k)) {
      const what = r.group ? `${r.plural}.${r.group}` : r.plural;
      throw new ApiError(409, "AlreadyExists", `${what} "${name}" already exists`, { name, group: r.group || undefined, kind: r.plural });
    }
    const obj: Obj = structuredClone(body);
    obj.apiVersion = r.group ? `${r.group}/${r.version}` : r.version;
    obj.kind = r.kind;
    obj.metadata = {
      ...obj.metadata,
      ...(r.namespaced ? { namespace: ns } : {}),
      uid: randomUUID(),
      resourceVersion: nextRv(),
      creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    };
    delete obj.metadata.deletionTimestamp;
    if (r.kind === "Deployment") {
      obj.metadata.generation = 1;
      obj.spec = { replicas: 1, ...obj.spec };
      obj.status = {};
      deploymentChanged(obj);
    }
    if (r.kind === "Namespace") obj.status = { phase: "Active" };
    if (r.kind === "Secret") foldStringData(obj);
    if (r.kind === "PersistentVolumeClaim") obj.status = { phase: "Bound" };
    store.set(k, obj);
    if (r.kind === "Deployment") notify("ADDED", obj);
    return obj;
  }

  function read(r: Resource, ns: string | undefined, name: string): Obj {
    const o = store.get(key(r.plural, ns, name));
    if (!o) throw notFound(r, name);
    return o;
  }

  /** Replaces the stored object with `next` (already merged), checking resourceVersion. */
  function update(r: Resource, ns: string | undefined, name: string, next: Obj, opts: { status?: boolean } = {}): Obj {
    const current = read(r, ns, name);
    if (next.metadata?.name !== undefined && next.metadata.name !== name) {
      throw new ApiError(400, "BadRequest", "the name of the object does not match the name on the URL");
    }
    const rv = next.metadata?.resourceVersion;
    if (rv !== undefined && rv !== "" && rv !== current.metadata.resourceVersion) {
      const what = r.group ? `${r.plural}.${r.group}` : r.plural;
      throw new ApiError(409, "Conflict",
        `Operation cannot be fulfilled on ${what} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        { name, group: r.group || undefined, kind: r.plural });
    }
    const obj: Obj = structuredClone(next);
    obj.apiVersion = current.apiVersion;
    obj.kind = current.kind;
    // Fields the server owns.
    obj.metadata = {
      ...obj.metadata,
      name,
      ...(r.namespaced ? { namespace: ns } : {}),
      uid: current.metadata.uid,
      creationTimestamp: current.metadata.creationTimestamp,
      resourceVersion: nextRv(),
    };
    if (r.kind === "Deployment") {
      if (opts.status) {
        obj.spec = current.spec;
        obj.metadata.generation = current.metadata.generation;
      } else {
        obj.spec = { replicas: 1, ...obj.spec };
        obj.status = current.status; // status is written through /status only
        const specChanged = JSON.stringify(obj.spec) !== JSON.stringify(current.spec);
        obj.metadata.generation = current.metadata.generation + (specChanged ? 1 : 0);
        if (specChanged) deploymentChanged(obj);
      }
    } else if (current.status !== undefined && !opts.status) {
      obj.status = current.status;
    }
    if (r.kind === "Secret") foldStringData(obj);
    store.set(key(r.plural, ns, name), obj);
    if (r.kind === "Deployment" && !opts.status) notify("MODIFIED", obj);
    return obj;
  }

  /** The API server writes stringData into data (base64) on every create and update; it never stores it. */
  function foldStringData(obj: Obj): void {
    if (!obj.stringData) return;
    obj.data = { ...(obj.data ?? {}) };
    for (const [k, v] of Object.entries(obj.stringData as Record<string, string>)) obj.data[k] = Buffer.from(v).toString("base64");
    delete obj.stringData;
  }

  function remove(r: Resource, ns: string | undefined, name: string): Obj {
    const o = read(r, ns, name);
    store.delete(key(r.plural, ns, name));
    if (r.kind === "Namespace") {
      // Simplification: a namespace's contents go at once (a real one passes through Terminating).
      for (const k of [...store.keys()]) if (k.split("/")[1] === name) store.delete(k);
    }
    if (r.kind === "Deployment") {
      problems.delete(`${ns}/${name}`);
      notify("DELETED", o);
    }
    return o;
  }

  function listOf(r: Resource, ns: string | undefined, selector: string | null): Obj[] {
    const reqs = parseSelector(selector);
    const out: Obj[] = [];
    for (const [k, o] of store) {
      const [plural, objNs] = k.split("/");
      if (plural !== r.plural) continue;
      if (r.namespaced && ns !== undefined && objNs !== ns) continue;
      if (matches(o, reqs)) out.push(o);
    }
    return out.sort((a, b) => String(a.metadata.name).localeCompare(String(b.metadata.name)));
  }

  function listBody(kind: string, apiVersion: string, items: Obj[]): Obj {
    // Items of a list carry no kind/apiVersion, as the real API server sends them.
    return {
      apiVersion, kind: `${kind}List`, metadata: { resourceVersion: String(revision) },
      items: items.map((o) => { const { kind: _k, apiVersion: _a, ...rest } = o; return rest; }),
    };
  }

  function scaleOf(dep: Obj): Obj {
    const labels = dep.spec?.selector?.matchLabels ?? {};
    return {
      apiVersion: "autoscaling/v1",
      kind: "Scale",
      metadata: {
        name: dep.metadata.name, namespace: dep.metadata.namespace, uid: dep.metadata.uid,
        resourceVersion: dep.metadata.resourceVersion, creationTimestamp: dep.metadata.creationTimestamp,
      },
      spec: { replicas: dep.spec?.replicas ?? 1 },
      status: {
        replicas: dep.status?.replicas ?? 0,
        selector: Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(","),
      },
    };
  }

  // ---- HTTP -----------------------------------------------------------------------------------

  async function readBody(req: IncomingMessage): Promise<any> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (!chunks.length) return undefined;
    const text = Buffer.concat(chunks).toString("utf8");
    if (!text.trim()) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError(400, "BadRequest", "the body of the request was in an unknown format - accepted media types include: application/json");
    }
  }

  function send(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  function status(code: number, reason: string, message: string, details?: Obj): Obj {
    const clean = details ? Object.fromEntries(Object.entries(details).filter(([, v]) => v !== undefined)) : undefined;
    return {
      kind: "Status", apiVersion: "v1", metadata: {},
      status: code < 400 ? "Success" : "Failure", message, reason, ...(clean ? { details: clean } : {}), code,
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const method = (req.method ?? "GET").toUpperCase();
    requests.push({ method, path: url.pathname + url.search, authorization: Boolean(req.headers.authorization) });
    const segs = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    const selector = url.searchParams.get("labelSelector");

    // /api/v1/... or /apis/{group}/{version}/...
    let group: string, version: string, rest: string[];
    if (segs[0] === "api") { group = ""; version = segs[1] ?? ""; rest = segs.slice(2); }
    else if (segs[0] === "apis") { group = segs[1] ?? ""; version = segs[2] ?? ""; rest = segs.slice(3); }
    else if (segs[0] === "version" && method === "GET") { send(res, 200, { major: "1", minor: "30", gitVersion: "v1.30.0-fake" }); return; }
    else throw new ApiError(404, "NotFound", "the server could not find the requested resource");

    let ns: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3) { ns = rest[1]; rest = rest.slice(2); }
    const [plural, name, sub] = rest;
    if (plural !== undefined && forbidden.has(plural)) {
      throw new ApiError(403, "Forbidden", `${plural} is forbidden: User "test" cannot ${method.toLowerCase()} resource "${plural}" in namespace "${ns ?? ""}"`);
    }

    // The service proxy: /api/v1/namespaces/NS/services/[scheme:]NAME[:PORT]/proxy/PATH
    if (group === "" && version === "v1" && plural === "services" && sub === "proxy" && name !== undefined && ns !== undefined) {
      const [scheme, service, port] = name.includes(":") ? (name.split(":").length === 3 ? name.split(":") : ["http", ...name.split(":")]) : ["http", name, ""];
      const svc = store.get(key("services", ns, service!));
      if (!svc) throw new ApiError(404, "NotFound", `services "${service}" not found`, { name: service, kind: "services" });
      if (port && !(svc.spec?.ports ?? []).some((p: Obj) => p.name === port || String(p.port) === port)) {
        throw new ApiError(503, "ServiceUnavailable", `no endpoints available for service "${name}"`);
      }
      const backend = backends.get(`${ns}/${service}`);
      if (!backend || scheme !== "http") throw new ApiError(503, "ServiceUnavailable", `no endpoints available for service "${name}"`);
      // Whatever follows NAME/proxy is the backend's path, kept as sent (still percent-encoded).
      // ["", "api", "v1", "namespaces", NS, "services", NAME, "proxy", ...the path]
      const rest = `/${url.pathname.split("/").slice(8).join("/")}`;
      await proxyTo(backend, `${rest}${url.search}`, req, res);
      return;
    }

    // The metrics API, only once a test gives it pod usage (as a cluster with metrics-server).
    if (group === "metrics.k8s.io" && podMetrics && method === "GET" && plural === "pods" && name === undefined) {
      const deployments = listOf(RESOURCES.find((r) => r.plural === "deployments")!, ns, null);
      const reqs = parseSelector(selector);
      const items = deployments.flatMap(podsOf).filter((p) => matches(p, reqs)).flatMap((p) => {
        const usage = podMetrics!(p);
        return usage ? [{ metadata: { name: p.metadata.name, namespace: p.metadata.namespace }, window: "15s", containers: [{ name: "main", usage }] }] : [];
      });
      send(res, 200, { kind: "PodMetricsList", apiVersion: "metrics.k8s.io/v1beta1", metadata: {}, items });
      return;
    }

    // Pods, their logs, and events: read-only, synthesized.
    if (group === "" && version === "v1" && (plural === "pods" || plural === "events")) {
      if (method !== "GET" || (name !== undefined && !(plural === "pods" && sub === "log"))) {
        throw new ApiError(405, "MethodNotAllowed", "the fake serves only pod and event lists and pod logs");
      }
      const reqs = parseSelector(selector);
      const deployments = listOf(RESOURCES.find((r) => r.plural === "deployments")!, ns, null);
      const pods = deployments.flatMap(podsOf);
      if (plural === "events") {
        send(res, 200, listBody("Event", "v1", eventsOf(pods, ns).filter((e) => fieldMatches(e, url.searchParams.get("fieldSelector")))));
        return;
      }
      if (sub === "log") {
        const pod = pods.find((p) => p.metadata.name === name);
        if (!pod) throw new ApiError(404, "NotFound", `pods "${name}" not found`, { name, kind: "pods" });
        const linesOf = (p: Obj) => {
          const lines = (podLogs(p) ?? "").split("\n");
          if (lines.at(-1) === "") lines.pop();
          return lines;
        };
        // sinceTime: the kubelet knows when each line was written; here, lines that start with a time say it.
        const since = url.searchParams.get("sinceTime");
        const recent = (line: string) => since === null || !/^\d{4}-\d\d-\d\dT\S+/.test(line) || Date.parse(line.split(" ")[0]!) >= Date.parse(since);
        const lines = linesOf(pod);
        const chosen = lines.filter(recent);
        const tail = Number(url.searchParams.get("tailLines") ?? chosen.length);
        const text = chosen.slice(Math.max(0, chosen.length - tail)).map((l) => `${l}\n`).join("");
        if (url.searchParams.get("follow") !== "true") {
          res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(text) });
          res.end(text);
          return;
        }
        // Following: what the pod writes next, until it is gone or the client hangs up.
        res.writeHead(200, { "content-type": "text/plain" });
        res.write(text);
        let sent = lines.length;
        const timer = setInterval(() => {
          const now = listOf(RESOURCES.find((r) => r.plural === "deployments")!, ns, null).flatMap(podsOf).find((p) => p.metadata.name === name);
          if (!now) {
            clearInterval(timer);
            res.end();
            return;
          }
          const all = linesOf(now);
          if (all.length > sent) res.write(all.slice(sent).map((l) => `${l}\n`).join(""));
          sent = all.length;
        }, 50);
        res.on("close", () => clearInterval(timer));
        return;
      }
      send(res, 200, listBody("Pod", "v1", pods.filter((p) => matches(p, reqs))));
      return;
    }

    // GET /api/v1/namespaces/{name}: rest = ["namespaces", name] and ns was not split off.
    const r = RESOURCES.find((x) => x.group === group && x.version === version && x.plural === plural);
    if (!r) throw new ApiError(404, "NotFound", "the server could not find the requested resource");
    if (r.namespaced && ns === undefined && !(method === "GET" && name === undefined)) {
      throw new ApiError(404, "NotFound", "the server could not find the requested resource");
    }
    const apiVersion = r.group ? `${r.group}/${r.version}` : r.version;

    if (name === undefined) {
      switch (method) {
        case "GET": send(res, 200, listBody(r.kind, apiVersion, listOf(r, ns, selector))); return;
        case "POST": send(res, 201, create(r, ns, await readBody(req))); return;
        case "DELETE": {
          if (r.kind === "Namespace") throw new ApiError(405, "MethodNotAllowed", "namespaces cannot be deleted as a collection");
          const gone = listOf(r, ns, selector).map((o) => remove(r, ns, o.metadata.name));
          send(res, 200, listBody(r.kind, apiVersion, gone));
          return;
        }
        default: throw new ApiError(405, "MethodNotAllowed", `${method} is not supported on ${plural}`);
      }
    }

    if (sub === "scale") {
      if (r.kind !== "Deployment") throw new ApiError(404, "NotFound", "the server could not find the requested resource");
      const dep = read(r, ns, name);
      if (method === "GET") { send(res, 200, scaleOf(dep)); return; }
      let replicas: number;
      let rv: string | undefined;
      if (method === "PUT") {
        const body = await readBody(req);
        replicas = body?.spec?.replicas;
        rv = body?.metadata?.resourceVersion;
        if (body?.metadata?.name !== undefined && body.metadata.name !== name) throw new ApiError(400, "BadRequest", "the name of the object does not match the name on the URL");
      } else if (method === "PATCH") {
        const body = await readBody(req);
        const patched = String(req.headers["content-type"]).includes("json-patch") ? jsonPatch(scaleOf(dep), body) : mergePatch(scaleOf(dep), body);
        replicas = patched.spec?.replicas;
        rv = body?.metadata?.resourceVersion;
      } else throw new ApiError(405, "MethodNotAllowed", `${method} is not supported on deployments/scale`);
      if (!Number.isInteger(replicas) || replicas < 0) {
        throw new ApiError(422, "Invalid", `Scale.autoscaling "${name}" is invalid: spec.replicas: Invalid value: ${replicas}: must be greater than or equal to 0`);
      }
      const updated = update(r, ns, name, { ...dep, metadata: { ...dep.metadata, resourceVersion: rv }, spec: { ...dep.spec, replicas } });
      send(res, 200, scaleOf(updated));
      return;
    }
    if (sub === "status" && method === "GET") { send(res, 200, read(r, ns, name)); return; }
    if (sub === "status" && method === "PUT") { send(res, 200, update(r, ns, name, await readBody(req), { status: true })); return; }
    if (sub !== undefined) throw new ApiError(404, "NotFound", "the server could not find the requested resource");

    switch (method) {
      case "GET": send(res, 200, read(r, ns, name)); return;
      case "PUT": send(res, 200, update(r, ns, name, await readBody(req))); return;
      case "PATCH": {
        const current = read(r, ns, name);
        const body = await readBody(req);
        const type = String(req.headers["content-type"] ?? "");
        let next: Obj;
        if (type.includes("json-patch")) next = jsonPatch(current, body);
        else if (type.includes("merge-patch") || type.includes("strategic-merge-patch")) {
          next = mergePatch(current, body);
          // The patch's own resourceVersion (if any) is the precondition; otherwise none.
          next.metadata = { ...next.metadata, resourceVersion: body?.metadata?.resourceVersion };
        } else throw new ApiError(415, "UnsupportedMediaType", `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`);
        if (type.includes("json-patch")) {
          // A json patch may test or set resourceVersion; if it did not change it, no precondition.
          if (next.metadata?.resourceVersion === current.metadata.resourceVersion) next.metadata = { ...next.metadata, resourceVersion: undefined };
        }
        send(res, 200, update(r, ns, name, next));
        return;
      }
      case "DELETE": {
        remove(r, ns, name);
        send(res, 200, status(200, "", "", { name, group: r.group || undefined, kind: r.plural, uid: undefined }));
        return;
      }
      default: throw new ApiError(405, "MethodNotAllowed", `${method} is not supported`);
    }
  }

  /**
   * Forwards to a backend as the API server's proxy would: without the caller's credentials, and
   * with the caller's Host (Go's reverse proxy keeps it), so backends see the API server's name.
   */
  function proxyTo(backend: string, path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = new URL(path, backend);
    const { authorization: _a, connection: _c, ...headers } = req.headers;
    return new Promise<void>((resolve) => {
      const out = httpRequest(target, { method: req.method, headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on("end", resolve);
      });
      out.on("error", (err) => {
        send(res, 503, status(503, "ServiceUnavailable", `error trying to reach service: ${err.message}`));
        resolve();
      });
      req.pipe(out);
    });
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof ApiError) send(res, err.code, status(err.code, err.reason, err.message, err.details));
      else send(res, 500, status(500, "InternalError", String((err as Error)?.stack ?? err)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;

  function forDeployments(name: string, namespace: string | undefined, fn: (dep: Obj) => void): void {
    let found = false;
    for (const [k, o] of store) {
      const [plural, ns, n] = k.split("/");
      if (plural === "deployments" && n === name && (namespace === undefined || ns === namespace)) { fn(o); found = true; }
    }
    if (!found) throw new Error(`fake kube api: no deployment ${namespace ? `${namespace}/` : ""}${name}`);
  }

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setServiceBackend(service, url, namespace) {
      backends.set(`${namespace}/${service}`, url);
    },
    setPodLogs(source) {
      podLogs = source;
    },
    setPodMetrics(source) {
      podMetrics = source;
    },
    forbid(plurals) {
      forbidden.clear();
      for (const p of plurals) forbidden.add(p);
    },
    onDeployment(listener) {
      deploymentListeners.push(listener);
    },
    markReady(name, namespace) {
      forDeployments(name, namespace, (dep) => {
        problems.delete(`${dep.metadata.namespace}/${name}`);
        ready(dep);
        dep.metadata.resourceVersion = nextRv();
      });
    },
    setAutoReady(on) {
      autoReady = on;
      if (on) {
        for (const [k, o] of store) {
          if (k.startsWith("deployments/") && !problems.has(`${o.metadata.namespace}/${o.metadata.name}`)) ready(o);
        }
      }
    },
    setPodProblem(name, problem, namespace) {
      forDeployments(name, namespace, (dep) => {
        problems.set(`${dep.metadata.namespace}/${name}`, problem);
        dep.status = { ...dep.status, readyReplicas: undefined, availableReplicas: undefined };
      });
    },
    get(plural, name, namespace) {
      const o = store.get(key(plural, namespace, name));
      return o ? structuredClone(o) : undefined;
    },
    list(plural, namespace) {
      return [...store.entries()]
        .filter(([k]) => k.split("/")[0] === plural && (namespace === undefined || k.split("/")[1] === namespace))
        .map(([, o]) => structuredClone(o));
    },
    close: () => new Promise<void>((resolve, reject) => {
      server.closeAllConnections();
      server.close((e) => (e ? reject(e) : resolve()));
    }),
  };
}
