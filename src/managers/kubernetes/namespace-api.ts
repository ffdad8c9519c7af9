/**
 * The Kubernetes API as the manager uses it, in one namespace for one cluster: every call's error
 * mapped onto a ManagerError (common/api-errors.ts), label-selected lists, create-or-replace of
 * whole objects (refusing objects the cluster did not create), read-modify-write with a retry on
 * a stale resourceVersion, and rollouts waited for on an injected clock with a failure that names
 * the pods that are not ready and why.
 */
import type { AppsV1Api, CoreV1Api, CoreV1Event, NetworkingV1Api, RbacAuthorizationV1Api, V1Deployment, V1Pod, V1Secret } from "@kubernetes/client-node";
import { ClipperError } from "../../errors.js";
import { clusterLabels, LABEL } from "../cluster-spec.js";
import { apiCallError, isReason, unlessGone, waitUntil, type Clock } from "../common/index.js";
import { ManagerError } from "../errors.js";
import type { KubernetesObject } from "./manifests.js";
import { objectOps, type KubernetesApis } from "./object-ops.js";
import { describePod, labelSelector, podReady, rolledOut } from "./pods.js";
import { plainObjects } from "./render.js";

type Obj = Record<string, any>;

export interface NamespaceApiOptions {
  cluster: string;
  namespace: string;
  clock: Clock;
  pollMs: number;
  /** How long a rollout is waited for when the caller names no time. */
  rolloutTimeoutMs: number;
  onProgress?: (message: string) => void;
}

export class NamespaceApi implements KubernetesApis {
  readonly namespace: string;
  private readonly cluster: string;
  private readonly clock: Clock;
  private readonly pollMs: number;

  constructor(
    readonly core: CoreV1Api, readonly apps: AppsV1Api, readonly networking: NetworkingV1Api, readonly rbac: RbacAuthorizationV1Api,
    private readonly options: NamespaceApiOptions,
  ) {
    this.namespace = options.namespace;
    this.cluster = options.cluster;
    this.clock = options.clock;
    this.pollMs = options.pollMs;
  }

  /** One key of a Secret, decoded; undefined when the Secret (or the key) is absent. */
  async readSecretKey(name: string, key: string, what: string): Promise<string | undefined> {
    const secret = await unlessGone(() => this.call(`reading ${what} ${name}`, () => this.core.readNamespacedSecret({ name, namespace: this.namespace })));
    const data = secret?.data?.[key];
    return data ? Buffer.from(data, "base64").toString("utf8") : undefined;
  }

  /** Creates each object, or replaces it (at the resourceVersion just read) when it exists. */
  async apply(objects: readonly KubernetesObject[]): Promise<void> {
    for (const body of plainObjects(objects)) {
      const kind = body.kind as string;
      const name = (body.metadata as Obj).name as string;
      const namespace = this.namespace;
      const ops = objectOps(this, kind);
      this.options.onProgress?.(`applying ${kind} ${name}`);
      try {
        await this.call(`creating ${kind} ${name}`, () => ops.create(namespace, body));
        continue;
      } catch (err) {
        if (!isReason(err, "CONFLICT")) throw err;
      }
      if (kind === "Namespace") continue;
      await retryOnConflict(async () => {
        const current = await this.call(`reading ${kind} ${name}`, () => ops.read(namespace, name));
        this.checkOwned(kind, current);
        // A claim's spec is immutable once bound: keep what exists.
        if (kind === "PersistentVolumeClaim") return;
        const next: Obj = { ...body, metadata: { ...(body.metadata as Obj), resourceVersion: current.metadata.resourceVersion } };
        // A Service keeps its cluster IP.
        if (kind === "Service" && current.spec?.clusterIP) {
          next.spec = { ...(next.spec as Obj), clusterIP: current.spec.clusterIP, ...(current.spec.clusterIPs ? { clusterIPs: current.spec.clusterIPs } : {}) };
        }
        await this.call(`replacing ${kind} ${name}`, () => ops.replace(namespace, name, next));
      });
    }
  }

  /** Refuses to change an object this cluster did not create. */
  checkOwned(kind: string, current: Obj): void {
    if (current.metadata?.labels?.[LABEL.cluster] !== this.cluster) {
      throw new ManagerError(`a ${kind} named ${current.metadata?.name} exists in namespace ${this.namespace} and was not created for this cluster ` +
        `(it lacks the ${LABEL.cluster}=${this.cluster} label); remove it or choose another cluster name`, "CONFLICT");
    }
  }

  /** Reads a Deployment, changes it and writes it back at the resourceVersion read (read again on a conflict). */
  async modifyDeployment(name: string, change: (d: V1Deployment) => V1Deployment): Promise<V1Deployment> {
    const namespace = this.namespace;
    return retryOnConflict(async () => {
      const current = await this.call(`reading deployment ${name}`, () => this.apps.readNamespacedDeployment({ name, namespace }));
      this.checkOwned("Deployment", current);
      return this.call(`replacing deployment ${name}`, () => this.apps.replaceNamespacedDeployment({ name, namespace, body: change(current) }));
    });
  }

  /** Polls until every named Deployment has observed its spec and has all replicas ready. */
  async waitForRollout(names: string[], timeoutMs = this.options.rolloutTimeoutMs): Promise<void> {
    let reported = "";
    let pending: V1Deployment[] = [];
    await waitUntil({
      deadline: this.clock.now() + timeoutMs, clock: this.clock, intervalMs: this.pollMs,
      attempt: async () => {
        const current = await Promise.all(names.map((name) =>
          this.call(`reading deployment ${name}`, () => this.apps.readNamespacedDeployment({ name, namespace: this.namespace }))));
        pending = current.filter((d) => !rolledOut(d));
        if (!pending.length) return true;
        const progress = pending.map((d) => `${d.metadata?.name}: ${d.status?.readyReplicas ?? 0}/${d.spec?.replicas ?? 1} ready`).join(", ");
        if (progress !== reported) this.options.onProgress?.((reported = progress));
        return undefined;
      },
      onTimeout: () => this.rolloutFailure(pending, timeoutMs),
    });
  }

  /** Why a rollout did not finish: each pending Deployment's ready count, its pods that are not ready and their warnings. */
  private async rolloutFailure(pending: V1Deployment[], timeoutMs: number): Promise<ClipperError> {
    const reasons = await Promise.all(pending.map(async (d) => {
      const pods = await this.pods(d.spec?.selector?.matchLabels ?? {});
      const notReady = await Promise.all(pods.filter((p) => !podReady(p)).map(async (p) => {
        const events = await this.warnings(p.metadata?.name ?? "");
        return describePod(p) + (events.length ? `; events: ${events.join(" | ")}` : "");
      }));
      return `${d.metadata?.name} has ${d.status?.readyReplicas ?? 0} of ${d.spec?.replicas ?? 1} replicas ready`
        + (notReady.length ? ` (${notReady.join("; ")})` : "");
    }));
    return new ClipperError("DEPLOY_FAILED", `not ready after ${Math.round(timeoutMs / 1000)} s: ${reasons.join("; ")}`,
      `inspect with kubectl -n ${this.namespace} describe pod`);
  }

  /** The latest warning events of a pod (image pull errors, failed scheduling, probe failures), newest last. */
  private async warnings(pod: string): Promise<string[]> {
    let events: CoreV1Event[];
    try {
      events = (await this.call(`listing events of ${pod}`, () => this.core.listNamespacedEvent({
        namespace: this.namespace, fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${pod}`,
      }))).items;
    } catch {
      return []; // events explain a failure; not being able to read them must not hide it
    }
    const time = (e: CoreV1Event) => new Date(e.lastTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp ?? 0).getTime();
    return events.filter((e) => e.type === "Warning").sort((a, b) => time(a) - time(b)).slice(-3)
      .map((e) => `${e.reason ?? "Warning"}: ${(e.message ?? "").trim()}${(e.count ?? 1) > 1 ? ` (×${e.count})` : ""}`);
  }

  async deployments(labels: Record<string, string>): Promise<V1Deployment[]> {
    const list = await this.call("listing deployments", () => this.apps.listNamespacedDeployment({ namespace: this.namespace, labelSelector: labelSelector(labels) }));
    return list.items;
  }

  async secrets(labels: Record<string, string>): Promise<V1Secret[]> {
    const list = await this.call("listing secrets", () => this.core.listNamespacedSecret({ namespace: this.namespace, labelSelector: labelSelector(labels) }));
    return list.items;
  }

  /** Makes sure the namespace exists: created (with the cluster's label) only when `create` says so. */
  async ensureNamespace(create: boolean): Promise<void> {
    const ns = this.namespace;
    if (await unlessGone(() => this.call(`reading namespace ${ns}`, () => this.core.readNamespace({ name: ns })))) return;
    if (!create) {
      throw new ManagerError(`the namespace ${ns} does not exist (pass --create-namespace, or create it with kubectl create namespace ${ns})`, "NOT_FOUND");
    }
    await this.call(`creating namespace ${ns}`, () => this.core.createNamespace({ body: { metadata: { name: ns, labels: clusterLabels(this.cluster) } } }))
      .catch((err: unknown) => { if (!isReason(err, "CONFLICT")) throw err; });
  }

  async pods(labels: Record<string, string>): Promise<V1Pod[]> {
    const list = await this.call("listing pods", () => this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: labelSelector(labels) }));
    return list.items;
  }

  /** Runs a delete; a 404 (already gone) is success. */
  async gone(fn: () => Promise<unknown>): Promise<void> {
    await unlessGone(() => this.call("deleting", fn));
  }

  /** Maps API errors onto manager errors (common/api-errors.ts), with the API server's own message. */
  async call<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ClipperError) throw err;
      const code = (err as { code?: unknown }).code;
      throw apiCallError(doing, "Kubernetes API server", typeof code === "number" ? code : undefined, apiMessage(err));
    }
  }
}

function apiMessage(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  if (typeof body === "string") {
    try {
      const parsed = JSON.parse(body) as { message?: string };
      if (parsed.message) return parsed.message;
    } catch { /* not JSON */ }
  } else if (body && typeof body === "object" && "message" in body) return String((body as { message: unknown }).message);
  return (err as Error)?.message ?? String(err);
}

/** Runs a read-modify-write again when the API server refuses it as stale (409), a few times. */
export async function retryOnConflict<T>(write: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (!isReason(err, "CONFLICT") || attempt >= attempts) throw err;
    }
  }
}
