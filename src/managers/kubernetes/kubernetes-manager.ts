/**
 * The live Kubernetes manager: applies the objects of manifests.ts through the API server (create,
 * or replace on 409 AlreadyExists), scales model Deployments through the scale subresource, and
 * waits for rollouts with a timeout that names the pods that are not ready and why. Everything it
 * creates carries the cluster label, and stop deletes by that label.
 *
 * The lifecycle (issue 11 §3, the rules in ../common): a model version is its Deployment and its
 * credential Secret. Stopping a version scales its Deployment to 0 and keeps both, so
 * `setNumReplicas` brings it back; deleting it deletes both. `stop --keep-state` keeps the model
 * Deployments (at 0, their counts recorded) and every Secret, and `start` scales them back
 * (kept-replicas.ts says how).
 *
 * Tested against an in-process fake of the API paths it calls (test/support/fake-kube-api.ts);
 * no API server can run on the machines this is built on.
 */
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import type { KubeConfig, V1Deployment, V1Pod, V1Service } from "@kubernetes/client-node";
import { AdminClient } from "../../admin-client.js";
import type { BuildProgress } from "../../images/types.js";
import { clusterLabels, INTERNAL_PORTS, internalRpcPorts, LABEL, recordedFrontendWorkers, rpcAuthOf, TOKEN_DIR } from "../cluster-spec.js";
import { INPUT_TYPES, type InputType } from "../../../runtime/shared/input-types.js";
import { generateRpcKey, versionSecret } from "../../../runtime/shared/rpc-auth.js";
import type {
  ClusterAddresses,
  ClusterOptions,
  ClusterStatus,
  ContainerManager,
  KubernetesLocation,
  LogLine,
  LogSource,
  LogStreamOptions,
  StatusOptions,
  LogTail,
  ModelDeployment,
} from "../container-manager.js";
import { checkReplicas, chosenVersion, isReason, noDeployment, sameDeployment, selectLogs, stopInOrder, streamEach, systemClock, unlessGone, waitUntil, type Clock } from "../common/index.js";
import { checkFrontendWorkers, ManagerError } from "../errors.js";
import { clusterManifests, modelManifests, modelRpcSecret, type KubernetesObject, type ServiceType } from "./manifests.js";
import { isKept, kept, keptReplicas, restored, withRpcPorts } from "./kept-replicas.js";
import type { KubeSdk } from "./kube-client.js";
import { k8sNames } from "./names.js";
import { NamespaceApi, retryOnConflict } from "./namespace-api.js";
import { streamPodLog } from "./pod-logs.js";
import { podMetrics, podUptimeSeconds } from "./pod-usage.js";
import { labelSelector, logCandidates, podStatuses, stopRoleOf } from "./pods.js";
import { plainObjects } from "./render.js";
import { loadKubeConfig } from "./kubeconfig.js";
import { apiServerHostOf, openServiceProxy, type ServiceProxy } from "./service-proxy.js";

type Obj = Record<string, any>;

export interface KubernetesManagerOptions {
  cluster: string;
  /** A kubeconfig file; absent: $KUBECONFIG or ~/.kube/config (or in-cluster). */
  kubeconfig?: string;
  /**
   * Use the in-cluster configuration (a pod's ServiceAccount: the autoscaler host's); kubeconfig and
   * context are then not read. An option, not a KubeConfig object, so the library's types do not
   * include the SDK's.
   */
  inCluster?: boolean;
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
  /** What rollouts and start wait on (tests script it). */
  clock?: Clock;
  onProgress?: (message: string) => void;
  /** Progress of the runtime image build and push (start with a registry). */
  onBuildProgress?: BuildProgress;
}

export class KubernetesContainerManager implements ContainerManager {
  readonly kind = "kubernetes" as const;
  readonly capabilities = { runsImages: true, pullsFromRegistry: true, defaultReadyTimeoutMs: 300_000, reportsPods: true };
  readonly cluster: string;
  readonly namespace: string;
  private readonly api: NamespaceApi;
  private readonly kc: KubeConfig;
  /** Loopback proxies to the cluster's services, opened by connect() and reused. */
  private proxies?: Promise<{ management: ServiceProxy; query: ServiceProxy }>;
  /** The addresses start or connect found, for status (polled during deploys) to reuse. */
  private known?: ClusterAddresses;
  private readonly clock: Clock;
  private readonly pollMs: number;

  /**
   * A manager for the cluster `options` name. The Kubernetes SDK is loaded here, not when the
   * library is imported; a kubeconfig that cannot be read, or names no such context, fails here.
   */
  static async create(options: KubernetesManagerOptions): Promise<KubernetesContainerManager> {
    return new KubernetesContainerManager(options, await import("./kube-client.js"));
  }

  private constructor(private readonly options: KubernetesManagerOptions, private readonly sdk: KubeSdk) {
    this.cluster = options.cluster;
    this.clock = options.clock ?? systemClock;
    this.pollMs = options.pollMs ?? 1000;
    // Inside a pod (the autoscaler host): its service account; else the kubeconfig, checked up front.
    let kc: KubeConfig;
    if (options.inCluster) {
      kc = new sdk.KubeConfig();
      try {
        kc.loadFromCluster();
      } catch (err) {
        throw new ManagerError(`cannot load the pod's service account configuration: ${(err as Error).message}`, "INVALID_ARGUMENT");
      }
    } else {
      kc = loadKubeConfig(sdk, options);
    }
    this.kc = kc;
    this.namespace = options.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? "default";
    this.api = new NamespaceApi(kc.makeApiClient(sdk.CoreV1Api), kc.makeApiClient(sdk.AppsV1Api), kc.makeApiClient(sdk.NetworkingV1Api), kc.makeApiClient(sdk.RbacAuthorizationV1Api), {
      cluster: this.cluster, namespace: this.namespace, clock: this.clock, pollMs: this.pollMs,
      rolloutTimeoutMs: options.rolloutTimeoutMs ?? 300_000, ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
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
    checkFrontendWorkers(options);
    const { registry, tokenSecret } = this.options;
    await this.api.ensureNamespace(this.options.createNamespace ?? false);
    // The token the daemon will mount: the user's Secret's, or ours (kept from an earlier start, else new).
    const token = tokenSecret
      ? await this.readToken(tokenSecret)
      : (await this.readToken(k8sNames.token(this.cluster))) ?? randomBytes(24).toString("base64url");
    // The RPC key: kept from an earlier start (its model Secrets stay valid), else new.
    const rpcKey = rpcAuthOf(options) === "plain" ? (await this.readRpcKey()) ?? generateRpcKey() : undefined;
    if (token === undefined) throw new ManagerError(`the Secret ${tokenSecret} in namespace ${this.namespace} does not exist or has no key \`token\``, "NOT_FOUND");
    // Versions a `stop --keep-state` kept: their counts are checked before anything is applied.
    const keptModels = (await this.api.deployments(clusterLabels(this.cluster, "model"))).filter(isKept);
    keptModels.forEach(keptReplicas);
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
    await this.api.apply(objects(runtimeImage)).catch((err: unknown) => {
      throw options.autoscaler !== false && isReason(err, "CONTROL_API") && / 403: .*\b(roles|rolebindings|serviceaccounts)\b/.test((err as Error).message)
        ? new ManagerError(`${(err as Error).message}; the autoscaler needs its own ServiceAccount, Role and RoleBinding: ` +
          "ask for create and update on roles, rolebindings and serviceaccounts in the namespace, or start with --no-autoscaler", "CONTROL_API")
        : err;
    });
    const deadline = this.clock.now() + options.startupTimeoutMs;
    await this.api.waitForRollout([k8sNames.management(this.cluster), k8sNames.frontend(this.cluster)], options.startupTimeoutMs);
    // What connect() would read back (the Deployments, the token Secret) is what was just applied.
    const addresses = await this.addresses(token, registry);
    await this.waitForManagement(addresses, deadline);
    await this.restoreKeptModels(keptModels, rpcKey, internalRpcPorts(options.frontendWorkers));
    return addresses;
  }

  /** Scales the Deployments a `stop --keep-state` kept back to their recorded counts, once the frontends are up. */
  private async restoreKeptModels(keptModels: V1Deployment[], rpcKey: string | undefined, rpcPorts: readonly number[]): Promise<void> {
    // The key is new when its Secret went missing since the stop: each version's credential is derived again from it.
    if (rpcKey) await this.api.apply(keptModels.flatMap((d) => this.credentialSecret(d, rpcKey)));
    // This start's frontend workers may differ from the last: the replicas are told this start's RPC ports.
    const changed = await Promise.all(keptModels.map((d) => this.api.modifyDeployment(d.metadata!.name!, (k) => withRpcPorts(restored(k), rpcPorts))));
    const running = changed.filter((d) => (d.spec?.replicas ?? 0) > 0).map((d) => d.metadata!.name!);
    if (running.length) this.options.onProgress?.(`bringing back the kept model versions: ${running.join(", ")}`);
    await this.api.waitForRollout(running);
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
    await waitUntil({
      deadline, clock: this.clock, intervalMs: this.pollMs,
      attempt: async () => (await admin.ping()) || undefined,
      onTimeout: () => new ManagerError(`the management daemon's pods are ready but it does not answer through the Kubernetes API server's service proxy ` +
        `(${k8sNames.management(this.cluster)} in namespace ${this.namespace}); check that you may use services/proxy (kubectl auth can-i get services/proxy)`, "STARTUP_FAILED"),
    });
  }

  async connect(): Promise<ClusterAddresses> {
    const deployments = await this.api.deployments(clusterLabels(this.cluster));
    const roles = new Set(deployments.map((d) => d.metadata?.labels?.[LABEL.role]));
    if (!roles.has("management") || !roles.has("query_frontend")) {
      // Model Deployments alone are what `stop --keep-state` kept: the cluster is stopped.
      if (!roles.has("management") && !roles.has("query_frontend")) throw this.notRunning();
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
    const service: V1Service | undefined = await unlessGone(() => this.api.call(`reading service ${name}`, () => this.api.core.readNamespacedService({ name, namespace: this.namespace })));
    if (!service) return urls;
    const port = service.spec?.ports?.find((p) => p.name === "query");
    for (const ingress of service.status?.loadBalancer?.ingress ?? []) {
      const host = ingress.hostname ?? ingress.ip;
      if (host) urls.push(`http://${host.includes(":") ? `[${host}]` : host}:${port?.port ?? INTERNAL_PORTS.query}`);
    }
    if (service.spec?.type === "NodePort" && port?.nodePort) urls.push(`http://<any node's address>:${port.nodePort}`);
    return urls;
  }

  /**
   * Deletes what carries this cluster's label in the namespace. keepState (the default) keeps the
   * state claim, the Secrets and the model Deployments, scaled to 0 with their counts recorded
   * (kept-replicas.ts); without it everything goes.
   */
  async stopAll(options?: { keepState?: boolean }): Promise<void> {
    this.known = undefined;
    const keepState = options?.keepState ?? true;
    const selector = labelSelector(clusterLabels(this.cluster));
    const ns = this.namespace;
    const [deployments, services, secrets, claims, policies, accounts, roles, bindings] = await Promise.all([
      this.api.deployments(clusterLabels(this.cluster)),
      this.api.call("listing services", () => this.api.core.listNamespacedService({ namespace: ns, labelSelector: selector })),
      this.api.secrets(clusterLabels(this.cluster)).then((items) => ({ items })),
      keepState ? Promise.resolve({ items: [] as Obj[] }) : this.api.call("listing claims", () => this.api.core.listNamespacedPersistentVolumeClaim({ namespace: ns, labelSelector: selector })),
      this.api.call("listing network policies", () => this.api.networking.listNamespacedNetworkPolicy({ namespace: ns, labelSelector: selector })),
      // A user who may not list them cannot have created them (a cluster started with --no-autoscaler).
      this.unlessForbidden("listing service accounts", () => this.api.core.listNamespacedServiceAccount({ namespace: ns, labelSelector: selector })),
      this.unlessForbidden("listing roles", () => this.api.rbac.listNamespacedRole({ namespace: ns, labelSelector: selector })),
      this.unlessForbidden("listing role bindings", () => this.api.rbac.listNamespacedRoleBinding({ namespace: ns, labelSelector: selector })),
    ]);
    const names = (list: { items: Obj[] }) => list.items.map((o) => o.metadata?.name as string);
    const models = deployments.filter((d) => stopRoleOf(d) === "model");
    const permissions = accounts.items.length + roles.items.length + bindings.items.length;
    const running = deployments.length > models.length || services.items.length > 0 || policies.items.length > 0 || permissions > 0
      || models.some((d) => !isKept(d) && (d.spec?.replicas ?? 1) > 0);
    if (keepState ? !running : !deployments.length && !services.items.length && !secrets.items.length && !claims.items.length && !permissions) throw this.notRunning();
    await stopInOrder(deployments, stopRoleOf, async (d) => {
      const name = d.metadata!.name!;
      if (keepState && stopRoleOf(d) === "model") await unlessGone(() => this.api.modifyDeployment(name, kept));
      else await this.api.gone(() => this.api.apps.deleteNamespacedDeployment({ name, namespace: ns }));
    });
    await Promise.all([
      ...names(services).map((name) => this.api.gone(() => this.api.core.deleteNamespacedService({ name, namespace: ns }))),
      ...(keepState ? [] : names(secrets)).map((name) => this.api.gone(() => this.api.core.deleteNamespacedSecret({ name, namespace: ns }))),
      ...names(claims).map((name) => this.api.gone(() => this.api.core.deleteNamespacedPersistentVolumeClaim({ name, namespace: ns }))),
      ...names(policies).map((name) => this.api.gone(() => this.api.networking.deleteNamespacedNetworkPolicy({ name, namespace: ns }))),
      // The autoscaler's scale permission goes with it (its Deployment went first, in STOP_ORDER).
      ...names(bindings).map((name) => this.api.gone(() => this.api.rbac.deleteNamespacedRoleBinding({ name, namespace: ns }))),
      ...names(roles).map((name) => this.api.gone(() => this.api.rbac.deleteNamespacedRole({ name, namespace: ns }))),
      ...names(accounts).map((name) => this.api.gone(() => this.api.core.deleteNamespacedServiceAccount({ name, namespace: ns }))),
    ]);
  }

  /** A list that RBAC refuses (403) is an empty one; any other failure is the call's error. */
  private async unlessForbidden(doing: string, list: () => Promise<{ items: Obj[] }>): Promise<{ items: Obj[] }> {
    try {
      return await list();
    } catch (err) {
      if ((err as { code?: unknown }).code === 403) return { items: [] };
      return this.api.call(doing, () => Promise.reject(err));
    }
  }

  // ---- models -----------------------------------------------------------------------------------

  /**
   * Applies the version's Secret and Deployment and waits for the rollout. The same deployment of a
   * version that exists (sameDeployment on the recorded one) only scales: its Deployment is not
   * rewritten, so nothing rolls. A new version whose rollout fails is deleted again.
   */
  async deployModel(deployment: ModelDeployment, replicas: number): Promise<void> {
    checkReplicas(replicas);
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
      ...await this.frontendLink(deployment),
      imagePullSecrets: this.options.imagePullSecrets ?? await this.clusterPullSecrets(),
    });
    const name = k8sNames.model(this.cluster, deployment.name, deployment.version);
    const wanted = plainObjects(objects).find((o) => o.kind === "Deployment") as Obj;
    const existing = await unlessGone(() => this.api.call(`reading deployment ${name}`, () => this.api.apps.readNamespacedDeployment({ name, namespace: this.namespace })));
    if (existing?.metadata?.labels?.[LABEL.cluster] === this.cluster && sameRecord(existing, wanted)) {
      await this.api.apply(objects.filter((o) => o.kind === "Secret"));
      await this.scale(deployment.name, deployment.version, replicas);
    } else {
      await this.api.apply(objects);
    }
    try {
      await this.api.waitForRollout([name], deployment.readyTimeoutMs);
    } catch (err) {
      // A version this deploy created and that never came up is deleted again: nothing half-deployed stays.
      if (!existing) await this.deleteModels({ [deployment.name]: [deployment.version] }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * What the version's replicas need from the cluster's frontends, as their Deployment records it:
   * the version's RPC credential when they authenticate replicas, and their worker count per pod.
   */
  private async frontendLink(d: ModelDeployment): Promise<{ rpcCredential?: { secret: string }; frontendWorkers: number }> {
    const frontend = (await this.api.deployments(clusterLabels(this.cluster, "query_frontend")))[0];
    if (!frontend) throw this.notRunning();
    const annotations = frontend.metadata?.annotations ?? {};
    const frontendWorkers = recordedFrontendWorkers(annotations[LABEL.frontendWorkers], `the Deployment ${frontend.metadata?.name}`);
    if (annotations[LABEL.rpcAuth] !== "plain") return { frontendWorkers };
    const key = await this.readRpcKey();
    if (!key) {
      throw new ManagerError(`the Kubernetes cluster ${this.cluster} authenticates replicas but its Secret ${k8sNames.rpcKey(this.cluster)} ` +
        `in namespace ${this.namespace} is missing or has no key \`key\`; stop the cluster and start it again`, "NOT_FOUND");
    }
    return { rpcCredential: { secret: versionSecret(key, { name: d.name, version: d.version, inputType: d.inputType }) }, frontendWorkers };
  }

  /** The credential Secret of a model Deployment's version under this key (none when its record names no input type). */
  private credentialSecret(d: V1Deployment, rpcKey: string): KubernetesObject[] {
    const labels = d.metadata?.labels ?? {};
    const name = labels[LABEL.modelName];
    const version = labels[LABEL.modelVersion];
    const inputType = deploymentRecord(d.metadata?.annotations)?.inputType;
    if (!name || !version || !INPUT_TYPES.some((t) => t === inputType)) return [];
    const credential = versionSecret(rpcKey, { name, version, inputType: inputType as InputType });
    return [modelRpcSecret({ cluster: this.cluster, namespace: this.namespace, name, version, labels }, credential)];
  }

  /** The pull secrets the cluster's own pods use: model images usually come from the same registry. */
  private async clusterPullSecrets(): Promise<string[]> {
    const management = (await this.api.deployments(clusterLabels(this.cluster, "management")))[0];
    if (!management) throw this.notRunning();
    return (management.spec?.template?.spec?.imagePullSecrets ?? []).map((s) => s.name!).filter(Boolean);
  }

  async setNumReplicas(name: string, version: string, replicas: number): Promise<void> {
    await this.requestReplicas(name, version, replicas);
    await this.api.waitForRollout([k8sNames.model(this.cluster, name, version)]);
  }

  /**
   * Sets the version's scale subresource, as setNumReplicas does, without waiting for the rollout:
   * the autoscaler's controller waits for the replicas to connect itself (src/autoscaler/host.ts).
   */
  async requestReplicas(name: string, version: string, replicas: number): Promise<void> {
    checkReplicas(replicas);
    await this.scale(name, version, replicas);
  }

  /** Sets the version's scale subresource (at the resourceVersion read with it: a concurrent change is read again). */
  private async scale(name: string, version: string, replicas: number): Promise<void> {
    const deploymentName = k8sNames.model(this.cluster, name, version);
    const ns = this.namespace;
    await retryOnConflict(async () => {
      const scale = await unlessGone(() => this.api.call(`reading the scale of ${deploymentName}`, () => this.api.apps.readNamespacedDeploymentScale({ name: deploymentName, namespace: ns })));
      if (!scale) throw noDeployment(name, version, `the Kubernetes cluster ${this.cluster} (namespace ${ns})`);
      await this.api.call(`scaling ${deploymentName}`, () => this.api.apps.replaceNamespacedDeploymentScale({
        name: deploymentName, namespace: ns, body: { ...scale, spec: { replicas } },
      }));
    });
  }

  async getNumReplicas(name: string, version: string): Promise<number> {
    const deploymentName = k8sNames.model(this.cluster, name, version);
    const scale = await unlessGone(() => this.api.call(`reading the scale of ${deploymentName}`, () => this.api.apps.readNamespacedDeploymentScale({ name: deploymentName, namespace: this.namespace })));
    return scale?.spec?.replicas ?? 0;
  }

  /** Scales the chosen versions to 0; their Deployments and Secrets stay, so setNumReplicas brings them back. */
  async stopModels(models: Record<string, string[]>): Promise<void> {
    await this.scaleToZero((await this.modelObjects(models)).deployments);
  }

  async stopAllModelContainers(): Promise<void> {
    await this.scaleToZero(await this.api.deployments(clusterLabels(this.cluster, "model")));
  }

  private async scaleToZero(deployments: V1Deployment[]): Promise<void> {
    const labels = deployments.map((d) => d.metadata?.labels ?? {});
    await Promise.all(labels.map((l) => this.scale(l[LABEL.modelName] ?? "", l[LABEL.modelVersion] ?? "", 0)));
    await this.api.waitForRollout(deployments.map((d) => d.metadata!.name!));
  }

  /** Deletes the chosen versions' Deployments and credential Secrets (also a Secret whose Deployment was never created). */
  async deleteModels(models: Record<string, string[]>): Promise<void> {
    const ns = this.namespace;
    const { deployments, secrets } = await this.modelObjects(models);
    await Promise.all([
      ...deployments.map((d) => this.api.gone(() => this.api.apps.deleteNamespacedDeployment({ name: d.metadata!.name!, namespace: ns }))),
      ...secrets.map((s) => this.api.gone(() => this.api.core.deleteNamespacedSecret({ name: s.metadata!.name!, namespace: ns }))),
    ]);
  }

  /** This cluster's model Deployments and Secrets of the chosen versions ([] = every version of a model). */
  private async modelObjects(models: Record<string, string[]>): Promise<{ deployments: V1Deployment[]; secrets: Obj[] }> {
    const labels = clusterLabels(this.cluster, "model");
    const [deployments, secrets] = await Promise.all([this.api.deployments(labels), this.api.secrets(labels)]);
    const chosen = (o: Obj) => chosenVersion(models, o.metadata?.labels?.[LABEL.modelName] ?? "", o.metadata?.labels?.[LABEL.modelVersion] ?? "");
    return { deployments: deployments.filter(chosen), secrets: secrets.filter(chosen) };
  }

  // ---- inspection -------------------------------------------------------------------------------

  async status(options: StatusOptions = {}): Promise<ClusterStatus> {
    // What connect found in this process still holds (its proxies, token and registry do not change).
    const addresses = this.known ?? await this.connect();
    const pods = await this.api.pods(clusterLabels(this.cluster));
    if (!options.usage) return { addresses, ...podStatuses(pods) };
    const metrics = await podMetrics(this.kc.makeApiClient(this.sdk.CustomObjectsApi), this.namespace, labelSelector(clusterLabels(this.cluster)));
    const usageOf = (pod: V1Pod) => {
      const uptimeSeconds = podUptimeSeconds(pod);
      return { ...(uptimeSeconds === undefined ? {} : { uptimeSeconds }), ...("usage" in metrics ? metrics.usage.get(pod.metadata!.name!) : {}) };
    };
    return { addresses, ...podStatuses(pods, usageOf), ...("unavailable" in metrics ? { usageNote: metrics.unavailable } : {}) };
  }

  async logs(component?: string): Promise<LogSource[]> {
    return (await this.logPods(component)).map((p) => ({ component: p.metadata!.name! }));
  }

  async readLogs(component: string | undefined, tail: number): Promise<LogTail[]> {
    const pods = await this.logPods(component);
    return Promise.all(pods.map(async (p) => {
      const text = await this.api.call(`reading the log of ${p.metadata!.name}`, () =>
        this.api.core.readNamespacedPodLog({ name: p.metadata!.name!, namespace: this.namespace, tailLines: tail }));
      return { component: p.metadata!.name!, lines: String(text).split("\n").filter((l, i, all) => l !== "" || i < all.length - 1) };
    }));
  }

  async streamLogs(component: string | undefined, options: LogStreamOptions, onLine: (line: LogLine) => void): Promise<void> {
    const keyed = async () => (await this.logPods(component)).map((pod) => ({ key: pod.metadata!.name!, component: pod.metadata!.name!, pod }));
    await streamEach(await keyed(), keyed, options, ({ component: c, pod }, start) =>
      this.api.call(`reading the log of ${c}`, () => streamPodLog(new this.sdk.Log(this.kc), this.namespace, pod, start, (line) => onLine({ component: c, line }))));
  }

  // ---- pieces -----------------------------------------------------------------------------------

  /** Pods whose logs `clipper logs COMPONENT` means, by the one grammar (common/log-components.ts); a component is a pod name. */
  private async logPods(component: string | undefined): Promise<V1Pod[]> {
    return selectLogs(logCandidates(await this.api.pods(clusterLabels(this.cluster))), component).map((c) => c.pod);
  }

  /** The `token` key of a Secret, or undefined when the Secret (or the key) is absent. */
  private readToken(name: string): Promise<string | undefined> {
    return this.api.readSecretKey(name, "token", "the token Secret");
  }

  /** The cluster's RPC key, or undefined when its Secret (or the key) is absent. */
  private readRpcKey(): Promise<string | undefined> {
    return this.api.readSecretKey(k8sNames.rpcKey(this.cluster), "key", "the RPC key Secret");
  }

  private notRunning(): ManagerError {
    return new ManagerError(`no Kubernetes cluster named ${this.cluster} in namespace ${this.namespace} (start one with \`clipper start --manager kubernetes\`)`, "CLUSTER_NOT_RUNNING");
  }
}

/** The deployment a model Deployment records (its LABEL.deployment annotation), when that is a JSON object. */
function deploymentRecord(annotations: Record<string, string> | undefined): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(annotations?.[LABEL.deployment] ?? "");
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? parsed as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a Deployment records the same deployment as the one wanted (and is no version a stop kept). */
function sameRecord(existing: V1Deployment, wanted: Obj): boolean {
  const a = deploymentRecord(existing.metadata?.annotations);
  const b = deploymentRecord((wanted.metadata as Obj | undefined)?.annotations);
  return a !== undefined && b !== undefined && sameDeployment(a, b) && !isKept(existing);
}
