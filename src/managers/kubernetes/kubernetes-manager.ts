/**
 * The live Kubernetes manager: applies the objects of manifests.ts through the API server (create,
 * or replace on 409 AlreadyExists), scales model Deployments through the scale subresource, and
 * waits for rollouts with a timeout that names the pods that are not ready and why. Everything it
 * creates carries the cluster label, and stop deletes by that label.
 *
 * Tested against an in-process fake of the API paths it calls (test/support/fake-kube-api.ts);
 * no API server can run on the machines this is built on.
 */
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { AppsV1Api, CoreV1Api, KubeConfig, NetworkingV1Api, type CoreV1Event, type V1Deployment, type V1Pod, type V1Service } from "@kubernetes/client-node";
import { AdminClient } from "../../admin-client.js";
import { ClipperError } from "../../errors.js";
import type { BuildProgress } from "../../images/types.js";
import { clusterLabels, INTERNAL_PORTS, LABEL, rpcAuthOf, TOKEN_DIR, type Role } from "../cluster-spec.js";
import { generateRpcKey, versionSecret } from "../../../runtime/shared/rpc-auth.js";
import type {
  ClusterAddresses,
  ClusterOptions,
  ClusterStatus,
  ComponentStatus,
  ContainerManager,
  KubernetesLocation,
  LogSource,
  LogTail,
  ModelDeployment,
  ReplicaStatus,
} from "../container-manager.js";
import { ManagerError } from "../errors.js";
import { clusterManifests, modelManifests, type KubernetesObject, type ServiceType } from "./manifests.js";
import { k8sNames } from "./names.js";
import { plainObjects } from "./render.js";
import { apiServerHostOf, openServiceProxy, type ServiceProxy } from "./service-proxy.js";

type Obj = Record<string, any>;

export interface KubernetesManagerOptions {
  cluster: string;
  /** A kubeconfig file; absent: $KUBECONFIG or ~/.kube/config (or in-cluster). */
  kubeconfig?: string;
  context?: string;
  /** Absent: the context's namespace, else "default". */
  namespace?: string;
  /** Create the namespace when it does not exist. */
  createNamespace?: boolean;
  /** The image the management daemon and the frontends run from (start only). */
  runtimeImage?: string;
  /**
   * Start: where to push the runtime image built from this package when no runtimeImage is given
   * (needs a Docker daemon); kept on the cluster as the default registry of model images.
   */
  registry?: string;
  /** Start: base of the runtime image built for the registry (it must hold Node 20). */
  runtimeBaseImage?: string;
  frontendReplicas?: number;
  serviceTypes?: { query?: ServiceType; management?: ServiceType };
  /** Absent on deploy: the ones the cluster's management Deployment pulls with. */
  imagePullSecrets?: string[];
  /** Start: an existing Secret (key `token`) to use as the management token instead of creating one. */
  tokenSecret?: string;
  /** Start: storage class of the management state volume (absent: the cluster's default). */
  storageClass?: string;
  /** How long start, deploy and scale wait for ready replicas (default 300 s). */
  rolloutTimeoutMs?: number;
  /** How often a rollout is polled (default 1 s). */
  pollMs?: number;
  onProgress?: (message: string) => void;
  /** Progress of the runtime image build and push (start with a registry). */
  onBuildProgress?: BuildProgress;
}

export class KubernetesContainerManager implements ContainerManager {
  readonly kind = "kubernetes" as const;
  readonly capabilities = { runsImages: true, pullsFromRegistry: true, defaultReadyTimeoutMs: 300_000, reportsPods: true };
  readonly cluster: string;
  readonly namespace: string;
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly networking: NetworkingV1Api;
  private readonly kc: KubeConfig;
  /** Loopback proxies to the cluster's services, opened by connect() and reused. */
  private proxies?: Promise<{ management: ServiceProxy; query: ServiceProxy }>;
  /** The addresses start or connect found, for status (polled during deploys) to reuse. */
  private known?: ClusterAddresses;

  constructor(private readonly options: KubernetesManagerOptions) {
    this.cluster = options.cluster;
    const kc = new KubeConfig();
    this.kc = kc;
    try {
      if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
      else kc.loadFromDefault();
      if (options.context) kc.setCurrentContext(options.context);
    } catch (err) {
      throw new ManagerError(`cannot load the kubeconfig${options.kubeconfig ? ` ${options.kubeconfig}` : ""}: ${(err as Error).message}`, "INVALID_ARGUMENT");
    }
    if (options.context && !kc.getContextObject(options.context)) {
      throw new ManagerError(`the kubeconfig has no context named ${options.context}`, "INVALID_ARGUMENT");
    }
    if (!kc.getCurrentCluster()) throw new ManagerError("the kubeconfig names no cluster for its current context", "INVALID_ARGUMENT");
    this.namespace = options.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? "default";
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.networking = kc.makeApiClient(NetworkingV1Api);
  }

  /** Where this cluster lives, as the CLI's context records it. */
  get location(): KubernetesLocation {
    return {
      ...(this.options.kubeconfig ? { kubeconfig: resolve(this.options.kubeconfig) } : {}),
      ...(this.options.context ? { context: this.options.context } : {}),
      namespace: this.namespace,
    };
  }

  // ---- the cluster ------------------------------------------------------------------------------

  async startClipper(options: ClusterOptions): Promise<ClusterAddresses> {
    const { registry, tokenSecret } = this.options;
    await this.ensureNamespace();
    // The token the daemon will mount: the user's Secret's, or ours (kept from an earlier start, else new).
    const token = tokenSecret
      ? await this.readToken(tokenSecret)
      : (await this.readToken(k8sNames.token(this.cluster))) ?? randomBytes(24).toString("base64url");
    // The RPC key: kept from an earlier start (its model Secrets stay valid), else new.
    const rpcKey = rpcAuthOf(options) === "plain" ? (await this.readRpcKey()) ?? generateRpcKey() : undefined;
    if (token === undefined) throw new ManagerError(`the Secret ${tokenSecret} in namespace ${this.namespace} does not exist or has no key \`token\``, "NOT_FOUND");
    // Every object is built (and validated) before the image is pushed or anything is applied.
    const objects = (runtimeImage: string) => clusterManifests({
      cluster: this.cluster,
      namespace: this.namespace,
      options,
      runtimeImage,
      ...apiServerHostOf(this.kc),
      ...(this.options.frontendReplicas ? { frontendReplicas: this.options.frontendReplicas } : {}),
      ...(this.options.serviceTypes ? { serviceTypes: this.options.serviceTypes } : {}),
      ...(this.options.imagePullSecrets ? { imagePullSecrets: this.options.imagePullSecrets } : {}),
      ...(this.options.storageClass ? { stateStorage: { storageClass: this.options.storageClass } } : {}),
      ...(registry ? { registry } : {}),
      token: tokenSecret ? { existingSecret: tokenSecret } : { value: token },
      ...(rpcKey ? { rpcKey } : {}),
    });
    plainObjects(objects(this.options.runtimeImage ?? "clipper-runtime:check"));
    const runtimeImage = this.options.runtimeImage ?? await this.buildRuntimeImage(registry);
    await this.apply(objects(runtimeImage));
    const deadline = Date.now() + options.startupTimeoutMs;
    await this.waitForRollout([k8sNames.management(this.cluster), k8sNames.frontend(this.cluster)], options.startupTimeoutMs);
    // What connect() would read back (the Deployments, the token Secret) is what was just applied.
    const addresses = await this.addresses(token, registry);
    await this.waitForManagement(addresses, deadline);
    return addresses;
  }

  /**
   * Builds the runtime image from this package with the local Docker daemon, and pushes it to the
   * registry when there is one; without, the cluster must run on that daemon's images (minikube
   * after `eval $(minikube docker-env)`).
   */
  private async buildRuntimeImage(registry: string | undefined): Promise<string> {
    const [{ buildRuntimeImage }, { dockerClient }] = await Promise.all([
      import("../../images/build-runtime-image.js"), import("../../docker/client.js"),
    ]);
    this.options.onProgress?.(registry ? `building the runtime image for ${registry}` : "building the runtime image with the local Docker daemon");
    return buildRuntimeImage(dockerClient(), {
      ...(registry ? { registry } : {}),
      ...(this.options.runtimeBaseImage ? { baseImage: this.options.runtimeBaseImage } : {}),
    }, this.options.onBuildProgress);
  }

  /** The pods are ready; the daemon must also answer through the API server's proxy. */
  private async waitForManagement(addresses: ClusterAddresses, deadline: number): Promise<void> {
    const admin = new AdminClient({ managementUrl: addresses.managementUrl, timeoutMs: 5000 });
    for (;;) {
      if (await admin.ping()) return;
      if (Date.now() > deadline) {
        throw new ManagerError(`the management daemon's pods are ready but it does not answer through the Kubernetes API server's service proxy ` +
          `(${k8sNames.management(this.cluster)} in namespace ${this.namespace}); check that you may use services/proxy (kubectl auth can-i get services/proxy)`, "STARTUP_FAILED");
      }
      await new Promise((r) => setTimeout(r, this.options.pollMs ?? 1000));
    }
  }

  async connect(): Promise<ClusterAddresses> {
    const deployments = await this.deployments(clusterLabels(this.cluster));
    const roles = new Set(deployments.map((d) => d.metadata?.labels?.[LABEL.role]));
    if (!roles.has("management") || !roles.has("query_frontend")) {
      if (deployments.length === 0) throw this.notRunning();
      const missing = [!roles.has("management") && "the management daemon", !roles.has("query_frontend") && "the query frontend"].filter(Boolean).join(" and ");
      throw new ManagerError(`the Kubernetes cluster ${this.cluster} in namespace ${this.namespace} has no Deployment for ${missing}; stop it and start it again`, "CLUSTER_NOT_RUNNING");
    }
    const management = deployments.find((d) => d.metadata?.labels?.[LABEL.role] === "management")!;
    // The token is whichever Secret the daemon mounts (ours, or the user's --token-secret).
    const tokenVolume = management.spec?.template?.spec?.volumes?.find((v) =>
      management.spec?.template?.spec?.containers?.some((c) => c.volumeMounts?.some((m) => m.name === v.name && m.mountPath === TOKEN_DIR)));
    const token = tokenVolume?.secret?.secretName ? await this.readToken(tokenVolume.secret.secretName) : undefined;
    return this.addresses(token, management.metadata?.annotations?.[LABEL.registry]);
  }

  /** The cluster's addresses through this process's service proxies, with its token and default registry. */
  private async addresses(token: string | undefined, registry: string | undefined): Promise<ClusterAddresses> {
    const proxies = await this.openProxies();
    const host = (service: string) => `${service}.${this.namespace}.svc`;
    return this.known = {
      cluster: this.cluster,
      manager: "kubernetes",
      queryUrl: proxies.query.url,
      managementUrl: proxies.management.url,
      rpcAddress: `tcp://${host(k8sNames.frontendRpc(this.cluster))}:${INTERNAL_PORTS.rpc}`,
      metricsUrl: `${proxies.query.url}/metrics`,
      applicationQueryUrls: await this.applicationQueryUrls(),
      kubernetes: this.location,
      ...(token ? { token } : {}),
      ...(registry ? { registry } : {}),
    };
  }

  /** Closes the loopback proxies (a CLI command need not: they never hold the process). */
  async close(): Promise<void> {
    const proxies = this.proxies;
    this.proxies = undefined;
    this.known = undefined;
    if (proxies) await proxies.then((p) => Promise.all([p.management.close(), p.query.close()]), () => undefined);
  }

  private openProxies(): Promise<{ management: ServiceProxy; query: ServiceProxy }> {
    this.proxies ??= (async () => {
      const namespace = this.namespace;
      const [management, query] = await Promise.all([
        openServiceProxy(this.kc, { namespace, service: k8sNames.management(this.cluster), port: "management" }),
        openServiceProxy(this.kc, { namespace, service: k8sNames.frontend(this.cluster), port: "query" }),
      ]);
      return { management, query };
    })();
    return this.proxies;
  }

  /** The query Service's addresses for applications: its in-cluster name, and any outside address. */
  private async applicationQueryUrls(): Promise<string[]> {
    const name = k8sNames.frontend(this.cluster);
    const urls = [`http://${name}.${this.namespace}.svc:${INTERNAL_PORTS.query}`];
    let service: V1Service;
    try {
      service = await this.call(`reading service ${name}`, () => this.core.readNamespacedService({ name, namespace: this.namespace }));
    } catch (err) {
      if (err instanceof ManagerError && err.reason === "NOT_FOUND") return urls;
      throw err;
    }
    const port = service.spec?.ports?.find((p) => p.name === "query");
    for (const ingress of service.status?.loadBalancer?.ingress ?? []) {
      const host = ingress.hostname ?? ingress.ip;
      if (host) urls.push(`http://${host.includes(":") ? `[${host}]` : host}:${port?.port ?? INTERNAL_PORTS.query}`);
    }
    if (service.spec?.type === "NodePort" && port?.nodePort) urls.push(`http://<any node's address>:${port.nodePort}`);
    return urls;
  }

  /** Deletes what carries this cluster's label in the namespace (the state claim too unless keepState). */
  async stopAll(options?: { keepState?: boolean }): Promise<void> {
    this.known = undefined;
    const keepState = options?.keepState ?? true;
    const selector = labelSelector(clusterLabels(this.cluster));
    const ns = this.namespace;
    const [deployments, services, secrets, claims, policies] = await Promise.all([
      this.call("listing deployments", () => this.apps.listNamespacedDeployment({ namespace: ns, labelSelector: selector })),
      this.call("listing services", () => this.core.listNamespacedService({ namespace: ns, labelSelector: selector })),
      this.call("listing secrets", () => this.core.listNamespacedSecret({ namespace: ns, labelSelector: selector })),
      keepState ? Promise.resolve({ items: [] as Obj[] }) : this.call("listing claims", () => this.core.listNamespacedPersistentVolumeClaim({ namespace: ns, labelSelector: selector })),
      this.call("listing network policies", () => this.networking.listNamespacedNetworkPolicy({ namespace: ns, labelSelector: selector })),
    ]);
    const names = (list: { items: Obj[] }) => list.items.map((o) => o.metadata?.name as string);
    if (!deployments.items.length && !services.items.length && !secrets.items.length && !claims.items.length) throw this.notRunning();
    // Models first, then the frontends, then the management daemon.
    const rank = (d: Obj) => ({ model: 0, query_frontend: 1, management: 2 } as Record<string, number>)[d.metadata?.labels?.[LABEL.role]] ?? 0;
    for (const r of [0, 1, 2]) {
      await Promise.all(deployments.items.filter((d) => rank(d) === r)
        .map((d) => this.gone(() => this.apps.deleteNamespacedDeployment({ name: d.metadata!.name!, namespace: ns }))));
    }
    await Promise.all([
      ...names(services).map((name) => this.gone(() => this.core.deleteNamespacedService({ name, namespace: ns }))),
      ...names(secrets).map((name) => this.gone(() => this.core.deleteNamespacedSecret({ name, namespace: ns }))),
      ...names(claims).map((name) => this.gone(() => this.core.deleteNamespacedPersistentVolumeClaim({ name, namespace: ns }))),
      ...names(policies).map((name) => this.gone(() => this.networking.deleteNamespacedNetworkPolicy({ name, namespace: ns }))),
    ]);
  }

  // ---- models -----------------------------------------------------------------------------------

  async deployModel(deployment: ModelDeployment, replicas: number): Promise<void> {
    if (!deployment.image) {
      throw new ManagerError(`the Kubernetes manager runs model ${deployment.name}:${deployment.version} from an image, and the deployment names none (build and push one with --registry, or pass --image)`, "INVALID_ARGUMENT");
    }
    const objects = modelManifests({
      cluster: this.cluster,
      namespace: this.namespace,
      name: deployment.name,
      version: deployment.version,
      inputType: deployment.inputType,
      framework: deployment.framework,
      image: deployment.image,
      replicas,
      ...(deployment.gpu ? { gpu: deployment.gpu } : {}),
      ...(deployment.env ? { env: deployment.env } : {}),
      ...await this.rpcCredential(deployment),
      imagePullSecrets: this.options.imagePullSecrets ?? await this.clusterPullSecrets(),
    });
    await this.apply(objects);
    await this.waitForRollout([k8sNames.model(this.cluster, deployment.name, deployment.version)], deployment.readyTimeoutMs);
  }

  /** The version's RPC credential when the cluster's frontends authenticate replicas (their Deployment says so). */
  private async rpcCredential(d: ModelDeployment): Promise<{ rpcCredential?: { secret: string } }> {
    const frontend = (await this.deployments(clusterLabels(this.cluster, "query_frontend")))[0];
    if (!frontend) throw this.notRunning();
    if (frontend.metadata?.annotations?.[LABEL.rpcAuth] !== "plain") return {};
    const key = await this.readRpcKey();
    if (!key) {
      throw new ManagerError(`the Kubernetes cluster ${this.cluster} authenticates replicas but its Secret ${k8sNames.rpcKey(this.cluster)} ` +
        `in namespace ${this.namespace} is missing or has no key \`key\`; stop the cluster and start it again`, "NOT_FOUND");
    }
    return { rpcCredential: { secret: versionSecret(key, { name: d.name, version: d.version, inputType: d.inputType }) } };
  }

  /** The pull secrets the cluster's own pods use: model images usually come from the same registry. */
  private async clusterPullSecrets(): Promise<string[]> {
    const management = (await this.deployments(clusterLabels(this.cluster, "management")))[0];
    if (!management) throw this.notRunning();
    return (management.spec?.template?.spec?.imagePullSecrets ?? []).map((s) => s.name!).filter(Boolean);
  }

  async setNumReplicas(name: string, version: string, replicas: number): Promise<void> {
    if (!Number.isInteger(replicas) || replicas < 0) throw new ManagerError(`replicas must be a whole number of at least 0, got ${replicas}`, "INVALID_ARGUMENT");
    const deploymentName = k8sNames.model(this.cluster, name, version);
    const ns = this.namespace;
    for (let attempt = 0; ; attempt++) {
      const scale = await this.call(`reading the scale of ${deploymentName}`, () => this.apps.readNamespacedDeploymentScale({ name: deploymentName, namespace: ns }))
        .catch((err: unknown) => {
          if (err instanceof ManagerError && err.reason === "NOT_FOUND") {
            throw new ManagerError(`no deployment of model ${name} version ${version} in the Kubernetes cluster ${this.cluster}; deploy it first`, "NOT_FOUND");
          }
          throw err;
        });
      try {
        // The resourceVersion read with it: a concurrent change is refused (409) and read again.
        await this.call(`scaling ${deploymentName}`, () => this.apps.replaceNamespacedDeploymentScale({
          name: deploymentName, namespace: ns, body: { ...scale, spec: { replicas } },
        }));
        break;
      } catch (err) {
        if (!(err instanceof ManagerError && err.reason === "CONFLICT") || attempt >= 4) throw err;
      }
    }
    await this.waitForRollout([deploymentName]);
  }

  async getNumReplicas(name: string, version: string): Promise<number> {
    const deploymentName = k8sNames.model(this.cluster, name, version);
    try {
      const scale = await this.call(`reading the scale of ${deploymentName}`, () => this.apps.readNamespacedDeploymentScale({ name: deploymentName, namespace: this.namespace }));
      return scale.spec?.replicas ?? 0;
    } catch (err) {
      if (err instanceof ManagerError && err.reason === "NOT_FOUND") return 0;
      throw err;
    }
  }

  async stopModels(models: Record<string, string[]>): Promise<void> {
    for (const [name, versions] of Object.entries(models)) {
      await this.deleteModelObjects({ [LABEL.modelName]: name }, (version) => versions.length === 0 || versions.includes(version));
    }
  }

  async deleteModels(models: Record<string, string[]>): Promise<void> {
    return this.stopModels(models);
  }

  async stopAllModelContainers(): Promise<void> {
    await this.deleteModelObjects({}, () => true);
  }

  /**
   * Deletes the model Deployments matching `labels` and the chosen versions, and with them their
   * versions' RPC credential Secrets (also one whose Deployment was never created).
   */
  private async deleteModelObjects(labels: Record<string, string>, chosen: (version: string) => boolean): Promise<void> {
    const ns = this.namespace;
    const selector = labelSelector({ ...clusterLabels(this.cluster, "model"), ...labels });
    const [deployments, secrets] = await Promise.all([
      this.call("listing deployments", () => this.apps.listNamespacedDeployment({ namespace: ns, labelSelector: selector })),
      this.call("listing secrets", () => this.core.listNamespacedSecret({ namespace: ns, labelSelector: selector })),
    ]);
    const names = (list: { items: Obj[] }) => list.items
      .filter((o) => chosen(o.metadata?.labels?.[LABEL.modelVersion] ?? "")).map((o) => o.metadata!.name as string);
    await Promise.all([
      ...names(deployments).map((name) => this.gone(() => this.apps.deleteNamespacedDeployment({ name, namespace: ns }))),
      ...names(secrets).map((name) => this.gone(() => this.core.deleteNamespacedSecret({ name, namespace: ns }))),
    ]);
  }

  // ---- inspection -------------------------------------------------------------------------------

  async status(): Promise<ClusterStatus> {
    // What connect found in this process still holds (its proxies, token and registry do not change).
    const addresses = this.known ?? await this.connect();
    const pods = await this.pods(clusterLabels(this.cluster));
    const components: ComponentStatus[] = [];
    const replicas: ReplicaStatus[] = [];
    for (const { pod, replica } of numberReplicas(pods)) {
      const labels = pod.metadata?.labels ?? {};
      const role = labels[LABEL.role] as Role | undefined;
      const state = podState(pod);
      const ready = podReady(pod);
      const restarts = (pod.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0);
      if (role === "model") {
        replicas.push({ name: labels[LABEL.modelName] ?? "", version: labels[LABEL.modelVersion] ?? "", replica, state, restarts, pod: pod.metadata?.name ?? "", ready });
      } else if (role) {
        components.push({ component: `${role}/${pod.metadata?.name}`, state, restarts, ready });
      }
    }
    return { addresses, components, replicas };
  }

  async logs(component?: string): Promise<LogSource[]> {
    return (await this.logPods(component)).map((p) => ({ component: p.metadata!.name! }));
  }

  async readLogs(component: string | undefined, tail: number): Promise<LogTail[]> {
    const pods = await this.logPods(component);
    return Promise.all(pods.map(async (p) => {
      const text = await this.call(`reading the log of ${p.metadata!.name}`, () =>
        this.core.readNamespacedPodLog({ name: p.metadata!.name!, namespace: this.namespace, tailLines: tail }));
      return { component: p.metadata!.name!, lines: String(text).split("\n").filter((l, i, all) => l !== "" || i < all.length - 1) };
    }));
  }

  // ---- pieces -----------------------------------------------------------------------------------

  /**
   * Pods whose logs `clipper logs COMPONENT` means: a pod name (or part of one), a role
   * (management, query_frontend, frontend), a model name, or `<model>-<version>-<replica>` as on
   * the other managers (replicas numbered as `status` numbers them).
   */
  private async logPods(component: string | undefined): Promise<V1Pod[]> {
    const pods = await this.pods(clusterLabels(this.cluster));
    if (!component) return pods;
    const role = component === "frontend" ? "query_frontend" : component;
    return numberReplicas(pods).filter(({ pod, replica }) => {
      const labels = pod.metadata?.labels ?? {};
      return pod.metadata?.name?.includes(component) || labels[LABEL.role] === role || labels[LABEL.modelName] === component
        || (labels[LABEL.role] === "model" && `${labels[LABEL.modelName]}-${labels[LABEL.modelVersion]}-${replica}` === component);
    }).map(({ pod }) => pod);
  }

  private async ensureNamespace(): Promise<void> {
    const ns = this.namespace;
    try {
      await this.call(`reading namespace ${ns}`, () => this.core.readNamespace({ name: ns }));
      return;
    } catch (err) {
      if (!(err instanceof ManagerError && err.reason === "NOT_FOUND")) throw err;
    }
    if (!this.options.createNamespace) {
      throw new ManagerError(`the namespace ${ns} does not exist (pass --create-namespace, or create it with kubectl create namespace ${ns})`, "NOT_FOUND");
    }
    await this.call(`creating namespace ${ns}`, () => this.core.createNamespace({ body: { metadata: { name: ns, labels: clusterLabels(this.cluster) } } }))
      .catch((err: unknown) => { if (!(err instanceof ManagerError && err.reason === "CONFLICT")) throw err; });
  }

  /** The `token` key of a Secret, or undefined when the Secret (or the key) is absent. */
  private readToken(name: string): Promise<string | undefined> {
    return this.readSecretKey(name, "token", "the token Secret");
  }

  /** The cluster's RPC key, or undefined when its Secret (or the key) is absent. */
  private readRpcKey(): Promise<string | undefined> {
    return this.readSecretKey(k8sNames.rpcKey(this.cluster), "key", "the RPC key Secret");
  }

  private async readSecretKey(name: string, key: string, what: string): Promise<string | undefined> {
    try {
      const secret = await this.call(`reading ${what} ${name}`, () => this.core.readNamespacedSecret({ name, namespace: this.namespace }));
      const data = secret.data?.[key];
      return data ? Buffer.from(data, "base64").toString("utf8") : undefined;
    } catch (err) {
      if (err instanceof ManagerError && err.reason === "NOT_FOUND") return undefined;
      throw err;
    }
  }

  /** Creates each object, or replaces it (at the resourceVersion just read) when it exists. */
  async apply(objects: readonly KubernetesObject[]): Promise<void> {
    for (const body of plainObjects(objects)) {
      const kind = body.kind as string;
      const name = (body.metadata as Obj).name as string;
      const namespace = this.namespace;
      const ops = this.opsFor(kind);
      this.options.onProgress?.(`applying ${kind} ${name}`);
      try {
        await this.call(`creating ${kind} ${name}`, () => ops.create(namespace, body));
        continue;
      } catch (err) {
        if (!(err instanceof ManagerError && err.reason === "CONFLICT")) throw err;
      }
      if (kind === "Namespace") continue;
      for (let attempt = 0; ; attempt++) {
        const current = await this.call(`reading ${kind} ${name}`, () => ops.read(namespace, name));
        if (!current.metadata?.labels || current.metadata.labels[LABEL.cluster] !== this.cluster) {
          throw new ManagerError(`a ${kind} named ${name} exists in namespace ${namespace} and was not created for this cluster (it lacks the ${LABEL.cluster}=${this.cluster} label); remove it or choose another cluster name`, "CONFLICT");
        }
        // A claim's spec is immutable once bound: keep what exists. A Service keeps its cluster IP.
        if (kind === "PersistentVolumeClaim") break;
        const next: Obj = { ...body, metadata: { ...(body.metadata as Obj), resourceVersion: current.metadata.resourceVersion } };
        if (kind === "Service" && current.spec?.clusterIP) {
          next.spec = { ...(next.spec as Obj), clusterIP: current.spec.clusterIP, ...(current.spec.clusterIPs ? { clusterIPs: current.spec.clusterIPs } : {}) };
        }
        try {
          await this.call(`replacing ${kind} ${name}`, () => ops.replace(namespace, name, next));
          break;
        } catch (err) {
          if (!(err instanceof ManagerError && err.reason === "CONFLICT") || attempt >= 4) throw err;
        }
      }
    }
  }

  private opsFor(kind: string): {
    create: (ns: string, body: Obj) => Promise<unknown>;
    read: (ns: string, name: string) => Promise<Obj>;
    replace: (ns: string, name: string, body: Obj) => Promise<unknown>;
  } {
    const { core, apps } = this;
    switch (kind) {
      case "Namespace": return {
        create: (_ns, body) => core.createNamespace({ body }),
        read: (_ns, name) => core.readNamespace({ name }),
        replace: (_ns, name, body) => core.replaceNamespace({ name, body }),
      };
      case "Secret": return {
        create: (namespace, body) => core.createNamespacedSecret({ namespace, body }),
        read: (namespace, name) => core.readNamespacedSecret({ namespace, name }),
        replace: (namespace, name, body) => core.replaceNamespacedSecret({ namespace, name, body }),
      };
      case "PersistentVolumeClaim": return {
        create: (namespace, body) => core.createNamespacedPersistentVolumeClaim({ namespace, body }),
        read: (namespace, name) => core.readNamespacedPersistentVolumeClaim({ namespace, name }),
        replace: (namespace, name, body) => core.replaceNamespacedPersistentVolumeClaim({ namespace, name, body }),
      };
      case "Service": return {
        create: (namespace, body) => core.createNamespacedService({ namespace, body }),
        read: (namespace, name) => core.readNamespacedService({ namespace, name }),
        replace: (namespace, name, body) => core.replaceNamespacedService({ namespace, name, body }),
      };
      case "Deployment": return {
        create: (namespace, body) => apps.createNamespacedDeployment({ namespace, body }),
        read: (namespace, name) => apps.readNamespacedDeployment({ namespace, name }),
        replace: (namespace, name, body) => apps.replaceNamespacedDeployment({ namespace, name, body }),
      };
      case "NetworkPolicy": return {
        create: (namespace, body) => this.networking.createNamespacedNetworkPolicy({ namespace, body }),
        read: (namespace, name) => this.networking.readNamespacedNetworkPolicy({ namespace, name }),
        replace: (namespace, name, body) => this.networking.replaceNamespacedNetworkPolicy({ namespace, name, body }),
      };
      default: throw new ManagerError(`the Kubernetes manager cannot apply a ${kind}`, "INVALID_ARGUMENT");
    }
  }

  /** Polls until every named Deployment has observed its spec and has all replicas ready. */
  async waitForRollout(names: string[], timeoutMs = this.options.rolloutTimeoutMs ?? 300_000): Promise<void> {
    const pollMs = this.options.pollMs ?? 1000;
    const deadline = Date.now() + timeoutMs;
    let reported = "";
    for (;;) {
      const pending: V1Deployment[] = [];
      for (const name of names) {
        const d = await this.call(`reading deployment ${name}`, () => this.apps.readNamespacedDeployment({ name, namespace: this.namespace }));
        if (!rolledOut(d)) pending.push(d);
      }
      if (!pending.length) return;
      const progress = pending.map((d) => `${d.metadata?.name}: ${d.status?.readyReplicas ?? 0}/${d.spec?.replicas ?? 1} ready`).join(", ");
      if (progress !== reported) this.options.onProgress?.((reported = progress));
      if (Date.now() >= deadline) {
        const reasons: string[] = [];
        for (const d of pending) {
          const pods = await this.pods(d.spec?.selector?.matchLabels ?? {});
          const notReady = await Promise.all(pods.filter((p) => !podReady(p)).map(async (p) => {
            const events = await this.warnings(p.metadata?.name ?? "");
            return describePod(p) + (events.length ? `; events: ${events.join(" | ")}` : "");
          }));
          reasons.push(`${d.metadata?.name} has ${d.status?.readyReplicas ?? 0} of ${d.spec?.replicas ?? 1} replicas ready`
            + (notReady.length ? ` (${notReady.join("; ")})` : ""));
        }
        throw new ClipperError("DEPLOY_FAILED", `not ready after ${Math.round(timeoutMs / 1000)} s: ${reasons.join("; ")}`,
          `inspect with kubectl -n ${this.namespace} describe pod`);
      }
      await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(0, deadline - Date.now()))));
    }
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

  private async deployments(labels: Record<string, string>): Promise<V1Deployment[]> {
    const list = await this.call("listing deployments", () => this.apps.listNamespacedDeployment({ namespace: this.namespace, labelSelector: labelSelector(labels) }));
    return list.items;
  }

  private async pods(labels: Record<string, string>): Promise<V1Pod[]> {
    const list = await this.call("listing pods", () => this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: labelSelector(labels) }));
    return list.items;
  }

  /** Runs a delete; a 404 (already gone) is success. */
  private async gone(fn: () => Promise<unknown>): Promise<void> {
    try {
      await this.call("deleting", fn);
    } catch (err) {
      if (!(err instanceof ManagerError && err.reason === "NOT_FOUND")) throw err;
    }
  }

  private notRunning(): ManagerError {
    return new ManagerError(`no Kubernetes cluster named ${this.cluster} in namespace ${this.namespace} (start one with \`clipper start --manager kubernetes\`)`, "CLUSTER_NOT_RUNNING");
  }

  /** Maps API errors onto manager errors: 404 NOT_FOUND, 409 CONFLICT, the rest CONTROL_API with the server's message. */
  private async call<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ClipperError) throw err;
      const code = (err as { code?: unknown }).code;
      const message = apiMessage(err);
      if (code === 404) throw new ManagerError(`${doing}: ${message}`, "NOT_FOUND");
      if (code === 409) throw new ManagerError(`${doing}: ${message}`, "CONFLICT");
      if (typeof code === "number") throw new ManagerError(`${doing}: the Kubernetes API answered ${code}: ${message}`, "CONTROL_API");
      throw new ManagerError(`${doing}: cannot reach the Kubernetes API server: ${message}`, "CONTROL_API");
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

export function labelSelector(labels: Record<string, string>): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(",");
}

/** Pods with their replica number: model pods numbered per version in name order, others 0. */
function numberReplicas(pods: V1Pod[]): { pod: V1Pod; replica: number }[] {
  const counters = new Map<string, number>();
  return [...pods].sort((a, b) => String(a.metadata?.name).localeCompare(String(b.metadata?.name))).map((pod) => {
    const labels = pod.metadata?.labels ?? {};
    if (labels[LABEL.role] !== "model") return { pod, replica: 0 };
    const k = `${labels[LABEL.modelName]}:${labels[LABEL.modelVersion]}`;
    const replica = counters.get(k) ?? 0;
    counters.set(k, replica + 1);
    return { pod, replica };
  });
}

function rolledOut(d: V1Deployment): boolean {
  const want = d.spec?.replicas ?? 1;
  const s = d.status ?? {};
  return (s.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0)
    && (s.updatedReplicas ?? 0) >= want && (s.readyReplicas ?? 0) >= want && (s.availableReplicas ?? 0) >= want;
}

function podReady(p: V1Pod): boolean {
  return p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

function podState(p: V1Pod): "running" | "restarting" | "exited" {
  if (podReady(p) || p.status?.phase === "Running") return "running";
  if (p.status?.phase === "Succeeded" || p.status?.phase === "Failed") return "exited";
  return "restarting";
}

function describePod(p: V1Pod): string {
  const why = (p.status?.containerStatuses ?? []).map((c) => {
    const waiting = c.state?.waiting;
    const terminated = c.state?.terminated;
    if (waiting) return `${c.name} waiting: ${waiting.reason ?? "unknown"}${waiting.message ? ` (${waiting.message})` : ""}`;
    if (terminated) return `${c.name} terminated: ${terminated.reason ?? `exit ${terminated.exitCode}`}`;
    return `${c.name} not ready`;
  });
  return `pod ${p.metadata?.name} ${p.status?.phase ?? "Pending"}${why.length ? `: ${why.join(", ")}` : ""}`;
}
