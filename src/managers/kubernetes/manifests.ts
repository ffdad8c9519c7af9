/**
 * The Kubernetes objects of a Clipper cluster and of a model version, as pure functions of their
 * inputs (no API server, no kubeconfig, no registry): `clipper start|deploy-model --manager
 * kubernetes --dry-run` prints them, and the live manager will create the same objects. Every
 * object is a kubernetes-models class instance, so `validate()` checks it against the Kubernetes
 * OpenAPI schemas offline. docs/kubernetes.md explains what each object is for and why.
 *
 * Design in one paragraph: the management daemon is a Deployment of exactly one replica with the
 * Recreate strategy, its state on a ReadWriteOnce PersistentVolumeClaim (one writer, the store it
 * already has, no API credentials in the pod). The query frontends are a Deployment of N replicas
 * behind a Service for queries, plus a headless Service over the same pods for model RPC, which
 * lists every frontend pod (ready or not) in DNS. Model replicas connect to that name, so no model
 * Deployment is tied to one frontend, and a frontend that comes back under a new pod IP is found
 * again by name. Model RPC is authenticated (docs/security.md): the cluster's RPC key is a Secret
 * mounted into the frontends only, each model version's credential is a Secret of its own that its
 * pods read as CLIPPER_RPC_SECRET, and a NetworkPolicy admits only this cluster's model pods to
 * the frontends' RPC port (the query port stays open).
 */
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import type { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IEnvVar } from "kubernetes-models/v1/EnvVar";
import type { ILocalObjectReference } from "kubernetes-models/v1/LocalObjectReference";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import type { IProbe } from "kubernetes-models/v1/Probe";
import type { IResourceRequirements } from "kubernetes-models/v1/ResourceRequirements";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import type { IToleration } from "kubernetes-models/v1/Toleration";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import type { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import type { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { RPC_SECRET_ENV } from "../../../runtime/shared/rpc-auth.js";
import { LIVE_PATH } from "../../../runtime/shared/state.js";
import { ClipperError } from "../../errors.js";
import {
  clusterLabels,
  frontendCommand,
  INTERNAL_PORTS,
  internalRpcPorts,
  LABEL,
  managementCommand,
  allowedHostsOf,
  modelContainerLabel,
  modelRuntimeEnv,
  READY_FILE,
  RPC_KEY_DIR,
  RPC_KEY_FILE,
  rpcAuthOf,
  STATE_DIR,
  TOKEN_DIR,
  TOKEN_FILE,
} from "../cluster-spec.js";
import type { ClusterOptions, GpuRequest, ModelFramework } from "../container-manager.js";
import { checkReplicas, STOP_GRACE_SECONDS } from "../common/index.js";
import { autoscalerManifests } from "./autoscaler-manifests.js";
import { checkName, k8sNames } from "./names.js";

export type ServiceType = "ClusterIP" | "NodePort" | "LoadBalancer";
export const SERVICE_TYPES: readonly ServiceType[] = ["ClusterIP", "NodePort", "LoadBalancer"];

/** Requests and limits of one container, in Kubernetes quantities ("500m", "1Gi"). */
export interface ResourceSpec {
  requests?: { cpu?: string; memory?: string };
  limits?: { cpu?: string; memory?: string };
}

/** A toleration in our own shape (the pod spec's fields, nothing more). */
export interface Toleration {
  key?: string;
  operator?: "Exists" | "Equal";
  value?: string;
  effect?: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

/** The management token: generated and printed as a Secret, or an existing Secret's name. */
export type TokenSource = { value: string } | { existingSecret: string };

export interface KubernetesClusterSpec {
  cluster: string;
  namespace: string;
  /** Emit the Namespace object too. */
  createNamespace?: boolean;
  /** maxBodyBytes, replicaTimeoutMs, cache and batching flags; host and ports do not apply here. */
  options: ClusterOptions;
  /** The image the management daemon and the frontends run from. */
  runtimeImage: string;
  frontendReplicas?: number;
  serviceTypes?: { query?: ServiceType; management?: ServiceType };
  imagePullSecrets?: string[];
  /** Absent: no token (only for clusters whose network policy keeps everyone else out). */
  token?: TokenSource;
  /** The cluster's RPC key, required when `options.rpcAuth` is plain (the default); a Secret mounted into the frontends. */
  rpcKey?: string;
  stateStorage?: { size?: string; storageClass?: string };
  resources?: { management?: ResourceSpec; frontend?: ResourceSpec };
  /**
   * The API server's hostname as the kubeconfig names it: its service proxy forwards that as the
   * Host of every request the CLI sends through it (service-proxy.ts). Absent: an IP address, or unknown.
   */
  apiServerHost?: string;
  /** Extra labels on every object (e.g. app.kubernetes.io/part-of). */
  labels?: Record<string, string>;
  /** The registry model images are pushed to by default; kept as an annotation for later deploys. */
  registry?: string;
}

export interface KubernetesModelSpec {
  cluster: string;
  namespace: string;
  name: string;
  version: string;
  inputType: string;
  framework?: ModelFramework;
  image: string;
  replicas: number;
  /** GPUs per replica; Kubernetes schedules a number of `nvidia.com/gpu`, not "all" or device ids. */
  gpu?: GpuRequest;
  nodeSelector?: Record<string, string>;
  /** Default for GPU models: tolerate the `nvidia.com/gpu` taint GPU node pools carry. */
  tolerations?: Toleration[];
  env?: Record<string, string>;
  /**
   * The version's RPC credential, for a cluster with RPC auth: its pods read CLIPPER_RPC_SECRET from
   * the version's Secret, which is emitted when `secret` is given (a dry run, knowing no cluster
   * key, only references it). Absent: the cluster admits any peer.
   */
  rpcCredential?: { secret?: string };
  /**
   * The cluster's frontend workers per pod (`--frontend-workers`, recorded on the frontend
   * Deployment): each replica connects to every worker of every frontend pod (CLIPPER_PORT lists
   * their RPC ports). Default 1.
   */
  frontendWorkers?: number;
  imagePullSecrets?: string[];
  resources?: ResourceSpec;
  /** How long a replica may take to load its model and register before it is restarted (default 300 s). */
  startupSeconds?: number;
  /** Seconds a terminating replica gets after SIGTERM to drain before SIGKILL (default STOP_GRACE_SECONDS). */
  stopGraceSeconds?: number;
  labels?: Record<string, string>;
}

/** What we render; a HorizontalPodAutoscaler is only ever printed (commented out, hpa.ts), never applied. */
export type KubernetesObject = Namespace | Secret | PersistentVolumeClaim | Deployment | Service | NetworkPolicy | HorizontalPodAutoscaler
  | ServiceAccount | Role | RoleBinding;

export const DEFAULT_RESOURCES = {
  management: { requests: { cpu: "100m", memory: "128Mi" }, limits: { cpu: "1", memory: "512Mi" } },
  frontend: { requests: { cpu: "500m", memory: "256Mi" }, limits: { cpu: "2", memory: "1Gi" } },
  model: { requests: { cpu: "500m", memory: "512Mi" }, limits: { cpu: "2", memory: "2Gi" } },
} as const satisfies Record<string, ResourceSpec>;

export const GPU_RESOURCE = "nvidia.com/gpu";
export const DEFAULT_GPU_TOLERATIONS: readonly Toleration[] = [{ key: GPU_RESOURCE, operator: "Exists", effect: "NoSchedule" }];
/** Tells the runtimes (once they read it; see docs/kubernetes.md) to connect to every address CLIPPER_IP resolves to. */
export const FRONTEND_DISCOVERY_ENV = "CLIPPER_FRONTEND_DISCOVERY";

// ---- the cluster -------------------------------------------------------------------------------

/** Every object `clipper start --manager kubernetes` creates, in the order to apply them. */
/** The names a Service is reached by inside the cluster (the Host header its clients send). */
function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

export function clusterManifests(spec: KubernetesClusterSpec): KubernetesObject[] {
  const { cluster, namespace } = spec;
  checkName("label value", cluster, "cluster name");
  checkName("namespace", namespace, "namespace");
  for (const name of [k8sNames.management(cluster), k8sNames.frontend(cluster), k8sNames.frontendRpc(cluster)]) {
    checkName("service", name, "service name");
  }
  checkName("object", k8sNames.autoscaler(cluster), "autoscaler name");
  const replicas = spec.frontendReplicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1) throw new ClipperError("USAGE", `frontend replicas must be a whole number of at least 1, got ${replicas}`);
  const extra = spec.labels ?? {};
  for (const value of Object.values(extra)) checkName("label value", value, "label value");
  const token = spec.token;
  const tokenSecret = token === undefined ? undefined : "existingSecret" in token ? token.existingSecret : k8sNames.token(cluster);
  const allowedHosts = allowedHostsOf(spec.options, [...serviceDnsNames(k8sNames.management(cluster), namespace), ...serviceDnsNames(k8sNames.frontend(cluster), namespace),
    ...(spec.apiServerHost === undefined ? [] : [spec.apiServerHost])]);
  if (tokenSecret !== undefined) checkName("object", tokenSecret, "token secret name");
  const rpcAuth = rpcAuthOf(spec.options);
  if (rpcAuth === "plain" && !spec.rpcKey) throw new ClipperError("USAGE", "RPC auth plain needs the cluster's RPC key");
  const rpcKeySecret = rpcAuth === "plain" ? k8sNames.rpcKey(cluster) : undefined;
  const pullSecrets = pullSecretRefs(spec.imagePullSecrets);

  const meta = (name: string, role?: "management" | "query_frontend") => ({
    name, namespace, labels: { ...extra, ...clusterLabels(cluster, role) },
  });
  const objects: KubernetesObject[] = [];

  if (spec.createNamespace) {
    objects.push(new Namespace({ metadata: { name: namespace, labels: { ...extra, ...clusterLabels(cluster) } } }));
  }
  if (token && "value" in token) {
    objects.push(new Secret({
      metadata: meta(k8sNames.token(cluster)),
      type: "Opaque",
      stringData: { token: token.value },
    }));
  }
  if (rpcKeySecret) {
    objects.push(new Secret({ metadata: meta(rpcKeySecret), type: "Opaque", stringData: { key: spec.rpcKey! } }));
  }

  // Management: one writer, its state on a volume that outlives the pod.
  const managementSelector = clusterLabels(cluster, "management");
  objects.push(new PersistentVolumeClaim({
    metadata: meta(k8sNames.state(cluster), "management"),
    spec: {
      accessModes: ["ReadWriteOnce"],
      resources: { requests: { storage: spec.stateStorage?.size ?? "1Gi" } },
      ...(spec.stateStorage?.storageClass ? { storageClassName: spec.stateStorage.storageClass } : {}),
    },
  }));
  objects.push(new Deployment({
    metadata: {
      ...meta(k8sNames.management(cluster), "management"),
      ...(spec.registry ? { annotations: { [LABEL.registry]: spec.registry } } : {}),
    },
    spec: {
      replicas: 1,
      // Never two daemons on one state volume (a ReadWriteOnce claim could not attach twice anyway).
      strategy: { type: "Recreate" },
      selector: { matchLabels: managementSelector },
      template: {
        metadata: { labels: { ...extra, ...managementSelector } },
        spec: {
          ...(pullSecrets ? { imagePullSecrets: pullSecrets } : {}),
          containers: [{
            name: "management",
            image: spec.runtimeImage,
            command: managementCommand({ token: tokenSecret !== undefined, maxBodyBytes: spec.options.maxBodyBytes, maxConnections: spec.options.maxConnections, allowedHosts }),
            env: [{ name: "CLIPPER_CLUSTER", value: cluster }],
            ports: [{ name: "management", containerPort: INTERNAL_PORTS.management, protocol: "TCP" }],
            // Ready and alive while it serves HTTP. Not /admin/ping: a daemon refusing writes after an
            // unknown-outcome failure still serves reads, the watch stream and query-log reports, and a
            // not-ready pod would drop out of its Service, cutting the frontends and hiding ping's reason
            // from `clipper status` (docs/operations.md).
            readinessProbe: httpProbe(LIVE_PATH, "management", { period: 5, failures: 3 }),
            livenessProbe: httpProbe(LIVE_PATH, "management", { period: 10, failures: 6, initialDelay: 10 }),
            resources: resources(spec.resources?.management ?? DEFAULT_RESOURCES.management),
            volumeMounts: [
              { name: "state", mountPath: STATE_DIR },
              ...(tokenSecret ? [{ name: "token", mountPath: TOKEN_DIR, readOnly: true }] : []),
            ],
          }],
          volumes: [
            { name: "state", persistentVolumeClaim: { claimName: k8sNames.state(cluster) } },
            ...tokenVolume(tokenSecret),
          ],
        },
      },
    },
  }));
  objects.push(service(meta(k8sNames.management(cluster), "management"), managementSelector, spec.serviceTypes?.management ?? "ClusterIP",
    [{ name: "management", port: INTERNAL_PORTS.management, targetPort: "management", protocol: "TCP" }]));

  // Query frontends: N replicas, queries through one Service, model RPC to every pod.
  const frontendSelector = clusterLabels(cluster, "query_frontend");
  const managementUrl = `http://${k8sNames.management(cluster)}.${namespace}.svc:${INTERNAL_PORTS.management}`;
  const frontendMounts = [
    ...(tokenSecret ? [{ name: "token", mountPath: TOKEN_DIR, readOnly: true }] : []),
    ...(rpcKeySecret ? [{ name: "rpc-key", mountPath: RPC_KEY_DIR, readOnly: true }] : []),
  ];
  const frontendVolumes = [...tokenVolume(tokenSecret), ...rpcKeyVolume(rpcKeySecret)];
  // Each frontend worker's RPC port (worker i on 7000 + i), declared on the container and the headless Service.
  const rpcPorts = internalRpcPorts(spec.options.frontendWorkers).map((port, i) => ({ name: rpcPortName(i), port }));
  objects.push(new Deployment({
    metadata: {
      ...meta(k8sNames.frontend(cluster), "query_frontend"),
      annotations: { [LABEL.rpcAuth]: rpcAuth, [LABEL.frontendWorkers]: String(rpcPorts.length) },
    },
    spec: {
      replicas,
      strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      selector: { matchLabels: frontendSelector },
      template: {
        metadata: {
          labels: { ...extra, ...frontendSelector },
          annotations: { "prometheus.io/scrape": "true", "prometheus.io/port": String(INTERNAL_PORTS.query), "prometheus.io/path": "/metrics" },
        },
        spec: {
          ...(pullSecrets ? { imagePullSecrets: pullSecrets } : {}),
          containers: [{
            name: "query-frontend",
            image: spec.runtimeImage,
            command: frontendCommand({ managementUrl, token: tokenSecret !== undefined, options: spec.options, allowedHosts }),
            env: [{ name: "CLIPPER_CLUSTER", value: cluster }],
            ports: [
              { name: "query", containerPort: INTERNAL_PORTS.query, protocol: "TCP" },
              ...rpcPorts.map(({ name, port }) => ({ name, containerPort: port, protocol: "TCP" as const })),
            ],
            readinessProbe: httpProbe("/health", "query", { period: 5, failures: 3 }),
            livenessProbe: httpProbe("/health", "query", { period: 10, failures: 6, initialDelay: 10 }),
            resources: resources(spec.resources?.frontend ?? frontendResources(rpcPorts.length)),
            ...(frontendMounts.length ? { volumeMounts: frontendMounts } : {}),
          }],
          ...(frontendVolumes.length ? { volumes: frontendVolumes } : {}),
        },
      },
    },
  }));
  objects.push(service(meta(k8sNames.frontend(cluster), "query_frontend"), frontendSelector, spec.serviceTypes?.query ?? "ClusterIP",
    [{ name: "query", port: INTERNAL_PORTS.query, targetPort: "query", protocol: "TCP" }]));
  objects.push(new Service({
    metadata: meta(k8sNames.frontendRpc(cluster), "query_frontend"),
    spec: {
      clusterIP: "None",
      // A frontend is listed as soon as it has an address: replicas connect and register while it warms up.
      publishNotReadyAddresses: true,
      selector: frontendSelector,
      ports: rpcPorts.map(({ name, port }) => ({ name, port, targetPort: name, protocol: "TCP" as const })),
    },
  }));
  // Only this cluster's model pods reach the RPC port; queries come from anywhere the Service allows.
  objects.push(new NetworkPolicy({
    metadata: meta(k8sNames.rpcPolicy(cluster), "query_frontend"),
    spec: {
      podSelector: { matchLabels: frontendSelector },
      policyTypes: ["Ingress"],
      ingress: [
        { from: [{ podSelector: { matchLabels: clusterLabels(cluster, "model") } }], ports: rpcPorts.map(({ port }) => ({ port, protocol: "TCP" as const })) },
        { ports: [{ port: INTERNAL_PORTS.query, protocol: "TCP" }] },
      ],
    },
  }));
  // The autoscaler (autoscaler-manifests.ts); `--no-autoscaler` leaves it and its scale permission out.
  if (spec.options.autoscaler !== false) {
    objects.push(...autoscalerManifests({
      cluster, namespace, runtimeImage: spec.runtimeImage, labels: extra,
      ...(tokenSecret ? { tokenSecret } : {}), ...(pullSecrets ? { imagePullSecrets: pullSecrets } : {}),
    }));
  }
  return objects;
}

// ---- a model version ---------------------------------------------------------------------------

/** What `deploy-model --manager kubernetes` creates for one version: its RPC credential's Secret, and one Deployment. */
export function modelManifests(spec: KubernetesModelSpec): KubernetesObject[] {
  const { cluster, namespace, name, version } = spec;
  checkName("label value", cluster, "cluster name");
  checkName("namespace", namespace, "namespace");
  checkName("label value", name, "model name");
  checkName("label value", version, "model version");
  const deploymentName = checkName("object", k8sNames.model(cluster, name, version), "deployment name");
  const containerLabel = checkName("label value", modelContainerLabel(name, version), `label ${LABEL.modelContainer}`);
  checkReplicas(spec.replicas);
  const extra = spec.labels ?? {};
  for (const value of Object.values(extra)) checkName("label value", value, "label value");
  const gpus = gpuCount(spec.gpu);
  const pullSecrets = pullSecretRefs(spec.imagePullSecrets);

  const selector = { ...clusterLabels(cluster, "model"), [LABEL.modelContainer]: containerLabel };
  const podLabels = { ...extra, ...selector, [LABEL.modelName]: name, [LABEL.modelVersion]: version };
  const frontendHost = `${k8sNames.frontendRpc(cluster)}.${namespace}.svc`;
  const secretName = checkName("object", k8sNames.modelRpcSecret(cluster, name, version), "RPC secret name");
  const env: IEnvVar[] = [
    ...Object.entries({
      ...modelRuntimeEnv({ cluster, name, version, inputType: spec.inputType, env: spec.env, frontendHost, rpcPorts: internalRpcPorts(spec.frontendWorkers) }),
      [FRONTEND_DISCOVERY_ENV]: "dns",
    }).filter(([k]) => !(spec.rpcCredential && k === RPC_SECRET_ENV)).map(([k, v]) => ({ name: k, value: v })),
    ...(spec.rpcCredential ? [{ name: RPC_SECRET_ENV, valueFrom: { secretKeyRef: { name: secretName, key: "secret" } } }] : []),
  ];
  const base = resources(spec.resources ?? DEFAULT_RESOURCES.model);
  const withGpu: IResourceRequirements = gpus === undefined ? base : {
    ...base,
    limits: { ...base.limits, [GPU_RESOURCE]: String(gpus) },
  };
  const tolerations = spec.tolerations ?? (gpus ? DEFAULT_GPU_TOLERATIONS : []);
  const readyCheck = { exec: { command: ["cat", READY_FILE] } };
  const period = 5;
  const container: IContainer = {
    name: "model",
    image: spec.image,
    // The image's own entrypoint runs the model runtime.
    env,
    resources: withGpu,
    // The runtime writes the file once it has registered with a frontend, and removes it on stop.
    startupProbe: { ...readyCheck, periodSeconds: period, failureThreshold: Math.max(1, Math.ceil((spec.startupSeconds ?? 300) / period)) },
    readinessProbe: { ...readyCheck, periodSeconds: period, failureThreshold: 2 },
    livenessProbe: { ...readyCheck, periodSeconds: 10, failureThreshold: 3 },
  };
  const secret = spec.rpcCredential?.secret === undefined ? [] : [modelRpcSecret({
    cluster, namespace, name, version, labels: { ...extra, ...selector, [LABEL.modelName]: name, [LABEL.modelVersion]: version },
  }, spec.rpcCredential.secret)];
  return [...secret, new Deployment({
    metadata: {
      name: deploymentName, namespace, labels: { ...extra, ...selector, [LABEL.modelName]: name, [LABEL.modelVersion]: version },
      annotations: {
        [LABEL.deployment]: JSON.stringify({
          name, version, inputType: spec.inputType, ...(spec.framework ? { framework: spec.framework } : {}), image: spec.image,
          ...(spec.env && Object.keys(spec.env).length ? { env: spec.env } : {}), ...(spec.gpu ? { gpu: spec.gpu } : {}),
        }),
      },
    },
    spec: {
      replicas: spec.replicas,
      strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: podLabels },
        spec: {
          ...(pullSecrets ? { imagePullSecrets: pullSecrets } : {}),
          // SIGTERM makes the runtime drain (no preStop hook needed): however the pod goes (a scale
          // down, a rolling update, a deleted pod), it finishes its batch within this grace.
          terminationGracePeriodSeconds: spec.stopGraceSeconds ?? STOP_GRACE_SECONDS,
          containers: [container],
          ...(spec.nodeSelector && Object.keys(spec.nodeSelector).length ? { nodeSelector: { ...spec.nodeSelector } } : {}),
          ...(tolerations.length ? { tolerations: tolerations.map((t): IToleration => ({ ...t })) } : {}),
        },
      },
    },
  })];
}

/** The Secret holding one version's RPC credential (key `secret`), labelled as its Deployment is. */
export function modelRpcSecret(
  version: { cluster: string; namespace: string; name: string; version: string; labels: Record<string, string> }, credential: string,
): Secret {
  return new Secret({
    metadata: { name: k8sNames.modelRpcSecret(version.cluster, version.name, version.version), namespace: version.namespace, labels: version.labels },
    type: "Opaque",
    stringData: { secret: credential },
  });
}

/** Kubernetes schedules whole GPUs by count: "all" and device ids have no meaning there. */
export function gpuCount(gpu: GpuRequest | undefined): number | undefined {
  if (!gpu) return undefined;
  if ("deviceIds" in gpu) {
    throw new ClipperError("USAGE", "Kubernetes schedules GPUs by count, not by device id", "use --gpu N instead of --gpu-ids");
  }
  if (gpu.count === "all") {
    throw new ClipperError("USAGE", "Kubernetes needs a number of GPUs per replica, not all of a node's", "use --gpu N, e.g. --gpu 1");
  }
  if (!Number.isInteger(gpu.count) || gpu.count < 1) throw new ClipperError("USAGE", `the GPU count must be a whole number of at least 1, got ${gpu.count}`);
  return gpu.count;
}

// ---- pieces -------------------------------------------------------------------------------------

/**
 * The frontend pod's default resources for N workers: what one frontend requests, per worker (each
 * worker is a whole event loop), and a CPU limit of at least one core per worker; memory as for one,
 * times N (each worker holds its own cache).
 */
export function frontendResources(workers: number): ResourceSpec {
  const one = DEFAULT_RESOURCES.frontend;
  if (workers === 1) return one;
  return {
    requests: { cpu: `${workers * 500}m`, memory: `${workers * 256}Mi` },
    limits: { cpu: String(Math.max(2, workers)), memory: `${workers}Gi` },
  };
}

/** Worker 0's RPC port keeps Clipper's name `rpc`; worker i's is `rpc-i` (port names: 15 characters at most). */
function rpcPortName(worker: number): string {
  return worker === 0 ? "rpc" : `rpc-${worker}`;
}

function httpProbe(path: string, port: string, t: { period: number; failures: number; initialDelay?: number }): IProbe {
  return {
    httpGet: { path, port },
    periodSeconds: t.period,
    failureThreshold: t.failures,
    timeoutSeconds: 2,
    ...(t.initialDelay ? { initialDelaySeconds: t.initialDelay } : {}),
  };
}

function resources(r: ResourceSpec): IResourceRequirements {
  return {
    ...(r.requests ? { requests: { ...r.requests } } : {}),
    ...(r.limits ? { limits: { ...r.limits } } : {}),
  };
}

function pullSecretRefs(names: string[] | undefined): ILocalObjectReference[] | undefined {
  if (!names?.length) return undefined;
  return names.map((name) => ({ name: checkName("object", name, "image pull secret") }));
}

/**
 * A volume holding one key of a Secret as `file` in the directory `dir`, or nothing without a Secret.
 * Readable by whichever user the runtime image runs as; only the containers that need it mount it.
 */
function secretFileVolume(volume: string, key: string, dir: string, file: string, secretName: string | undefined) {
  if (!secretName) return [];
  return [{ name: volume, secret: { secretName, items: [{ key, path: file.slice(dir.length + 1) }], defaultMode: 0o444 } }];
}

function tokenVolume(secretName: string | undefined) {
  return secretFileVolume("token", "token", TOKEN_DIR, TOKEN_FILE, secretName);
}

function rpcKeyVolume(secretName: string | undefined) {
  return secretFileVolume("rpc-key", "key", RPC_KEY_DIR, RPC_KEY_FILE, secretName);
}

function service(
  metadata: { name: string; namespace: string; labels: Record<string, string> },
  selector: Record<string, string>,
  type: ServiceType,
  ports: { name: string; port: number; targetPort: string; protocol: "TCP" }[],
): Service {
  return new Service({ metadata, spec: { type, selector, ports } });
}
