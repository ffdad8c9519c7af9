/**
 * The containers the Docker manager creates, as plain create options (pure functions, so the exact
 * flags, labels, ports and device requests can be tested without a daemon).
 */
import { isIP } from "node:net";
import type { ClusterOptions, GpuRequest } from "../container-manager.js";
import {
  allowedHostsOf,
  AUTOSCALER_COMMAND,
  autoscalerEnv,
  clusterLabels,
  frontendCommand,
  INTERNAL_PORTS,
  internalRpcPorts,
  LABEL,
  managementCommand,
  modelContainerLabel,
  modelRuntimeEnv,
  rpcAuthOf,
  rpcSecretEnv,
  STATE_DIR,
  TOKEN_FILE,
} from "../cluster-spec.js";
import type { ContainerSpec, DeviceRequest, PortBinding } from "./engine.js";
import { names, RECORD_LABEL, type StoredDeployment } from "./labels.js";

export type { DeviceRequest } from "./engine.js";

/** `{count: n}` → n GPUs, `{count: "all"}` → every GPU (Count -1), `{deviceIds}` → those devices. */
export function deviceRequests(gpu: GpuRequest | undefined): DeviceRequest[] | undefined {
  if (!gpu) return undefined;
  if ("deviceIds" in gpu) return [{ Driver: "nvidia", DeviceIDs: [...gpu.deviceIds], Capabilities: [["gpu"]] }];
  return [{ Driver: "nvidia", Count: gpu.count === "all" ? -1 : gpu.count, Capabilities: [["gpu"]] }];
}

/** The address Docker publishes on for a cluster host ("localhost" is not an address to Docker). */
export function publishAddress(host: string): string {
  if (host === "localhost") return "127.0.0.1";
  if (host === "[::]") return "::";
  return host.replace(/^\[(.*)\]$/, "$1");
}

/** Port 0 asks Docker to choose (an empty HostPort). */
function binding(host: string, port: number): PortBinding[] {
  return [{ HostIp: publishAddress(host), HostPort: port === 0 ? "" : String(port) }];
}

/**
 * The remote Docker daemon's hostname (DOCKER_HOST=tcp://gpu-box:2375 → "gpu-box"), or undefined
 * when the daemon is local (a socket) or named by an IP address (always admitted by the Host check).
 */
export function daemonHostName(modemHost: string | undefined): string | undefined {
  const name = modemHost?.trim().replace(/^\[|\]$/g, "").toLowerCase();
  return name === undefined || name === "" || isIP(name) !== 0 ? undefined : name;
}

/**
 * Containers on the cluster's network reach the daemon and the frontends by their container names;
 * this client reaches them through a remote Docker daemon's host, which sends that name in `Host`.
 */
function dockerAllowedHosts({ cluster, options, daemonHost }: FrontendSpecInput): string[] {
  return allowedHostsOf(options, [names.management(cluster), names.frontend(cluster), ...(daemonHost === undefined ? [] : [daemonHost])]);
}

function portLabels(options: ClusterOptions): Record<string, string> {
  return {
    [LABEL.queryPort]: String(options.queryPort),
    [LABEL.managementPort]: String(options.managementPort),
    [LABEL.host]: options.host,
  };
}

export interface FrontendSpecInput {
  cluster: string;
  options: ClusterOptions;
  image: string;
  /** Whether a token file is copied into the container before it starts. */
  token: boolean;
  /** The remote Docker daemon's hostname (daemonHostName), which this client reaches the published ports by. */
  daemonHost?: string;
}

export function managementSpec(input: FrontendSpecInput): ContainerSpec {
  const { cluster, options, image, token } = input;
  const port = `${INTERNAL_PORTS.management}/tcp`;
  return {
    name: names.management(cluster),
    Image: image,
    Cmd: managementCommand({ token, maxBodyBytes: options.maxBodyBytes, maxConnections: options.maxConnections, allowedHosts: dockerAllowedHosts(input) }),
    Env: [`CLIPPER_CLUSTER=${cluster}`],
    Labels: {
      ...clusterLabels(cluster, "management"),
      ...portLabels(options),
      ...(token ? { [LABEL.tokenFile]: TOKEN_FILE } : {}),
    },
    ExposedPorts: { [port]: {} },
    HostConfig: {
      NetworkMode: names.network(cluster),
      PortBindings: { [port]: binding(options.host, options.managementPort) },
      RestartPolicy: { Name: "unless-stopped" },
      Mounts: [{ Type: "volume", Source: names.volume(cluster), Target: STATE_DIR }],
    },
  };
}

/**
 * The query frontend. Only its query port is published: replicas reach the RPC port over the
 * cluster's network, and other machines cannot reach it. Processes on the Docker host still can,
 * through the container's bridge address (Linux routes to it), so the credential is what protects
 * the port: under `--rpc-auth none` it is open to every process on the host.
 */
export function frontendSpec(input: FrontendSpecInput): ContainerSpec {
  const { cluster, options, image, token } = input;
  const query = `${INTERNAL_PORTS.query}/tcp`;
  const o = options;
  // Exposed (not published): worker i's RPC port is 7000 + i, reached on the cluster's network.
  const rpcPorts = internalRpcPorts(o.frontendWorkers).map((p) => `${p}/tcp`);
  return {
    name: names.frontend(cluster),
    Image: image,
    Cmd: frontendCommand({
      managementUrl: `http://${names.management(cluster)}:${INTERNAL_PORTS.management}`, token, options, allowedHosts: dockerAllowedHosts(input),
    }),
    Env: [`CLIPPER_CLUSTER=${cluster}`],
    Labels: {
      ...clusterLabels(cluster, "query_frontend"),
      ...portLabels(options),
      ...(token ? { [LABEL.tokenFile]: TOKEN_FILE } : {}),
      [LABEL.rpcAuth]: rpcAuthOf(o),
      [LABEL.frontendWorkers]: String(o.frontendWorkers ?? 1),
    },
    ExposedPorts: Object.fromEntries([query, ...rpcPorts].map((p) => [p, {}])),
    HostConfig: {
      NetworkMode: names.network(cluster),
      PortBindings: { [query]: binding(o.host, o.queryPort) },
      RestartPolicy: { Name: "unless-stopped" },
    },
  };
}

/** Where the Docker engine's socket is, on the engine's host and inside the autoscaler container. */
export const DOCKER_SOCKET = "/var/run/docker.sock";

/**
 * The autoscaler host (src/autoscaler/host-main.ts): it reads the cluster through the daemon's
 * container name on the cluster's network and scales through the Docker engine, whose socket is
 * bind-mounted. Read-write: the engine API is served over the socket, and connecting to a socket
 * needs write permission; whatever holds it can do anything the engine can (docs/security.md).
 * Nothing is published.
 */
export function autoscalerSpec(input: FrontendSpecInput): ContainerSpec {
  const { cluster, image, token } = input;
  const env = autoscalerEnv({
    cluster, token, manager: { kind: "docker" }, managementUrl: `http://${names.management(cluster)}:${INTERNAL_PORTS.management}`,
  });
  return {
    name: names.autoscaler(cluster),
    Image: image,
    Cmd: [...AUTOSCALER_COMMAND],
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: { ...clusterLabels(cluster, "autoscaler"), ...(token ? { [LABEL.tokenFile]: TOKEN_FILE } : {}) },
    HostConfig: {
      NetworkMode: names.network(cluster),
      RestartPolicy: { Name: "unless-stopped" },
      Mounts: [{ Type: "bind", Source: DOCKER_SOCKET, Target: DOCKER_SOCKET }],
    },
  };
}

function modelLabels(cluster: string, d: StoredDeployment): Record<string, string> {
  return {
    [LABEL.modelName]: d.name,
    [LABEL.modelVersion]: d.version,
    [LABEL.deployment]: JSON.stringify(d),
    [LABEL.cluster]: cluster,
  };
}

function modelHostConfig(cluster: string, d: StoredDeployment): ContainerSpec["HostConfig"] {
  const devices = deviceRequests(d.gpu);
  return {
    NetworkMode: names.network(cluster),
    RestartPolicy: { Name: "unless-stopped" },
    ...(devices ? { DeviceRequests: devices } : {}),
  };
}

/** What a replica is told about the running query frontend (docker-manager.ts reads it back from there). */
export interface FrontendLink {
  /** The cluster's RPC key, when the frontend authenticates replicas. */
  rpcKey?: string;
  /** Every frontend worker's RPC port (CLIPPER_PORT). */
  rpcPorts: readonly number[];
}

/**
 * The environment of a replica: the deployment's own, then what the runtime must get right (with
 * every frontend worker's RPC port), then its version's RPC credential (derived from the cluster's
 * key; none when the cluster has no key). Nothing else: a container starts from an empty
 * environment, whatever the CLI's holds.
 */
function modelEnv(cluster: string, d: StoredDeployment, replica: number | undefined, link: FrontendLink | undefined): string[] {
  const env = {
    ...modelRuntimeEnv({
      cluster, name: d.name, version: d.version, inputType: d.inputType, env: d.env,
      frontendHost: names.frontend(cluster), ...(replica === undefined ? {} : { replica }),
      ...(link ? { rpcPorts: link.rpcPorts } : {}),
    }),
    ...rpcSecretEnv(link?.rpcKey, d),
  };
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/**
 * One replica; the image's own entrypoint and command run the model runtime. `stopGraceSeconds` is
 * its StopTimeout, so that a `docker stop` by hand gives it the time to drain as the manager does.
 */
export function replicaSpec(cluster: string, d: StoredDeployment, replica: number, link: FrontendLink, stopGraceSeconds: number): ContainerSpec {
  return {
    name: names.replica(cluster, d.name, d.version, replica),
    Image: d.image,
    StopTimeout: stopGraceSeconds,
    Env: modelEnv(cluster, d, replica, link),
    Labels: {
      ...modelLabels(cluster, d),
      [LABEL.role]: "model",
      [LABEL.modelContainer]: modelContainerLabel(d.name, d.version),
      [LABEL.replica]: String(replica),
    },
    HostConfig: modelHostConfig(cluster, d),
  };
}

/** What a deployment record says besides the deployment: the desired count, and which record is newest. */
export interface RecordState {
  replicas: number;
  generation: number;
}

/**
 * The deployment record: a container that is created and never started, holding the deployment in
 * its labels (Docker has no other object with labels that outlives its replicas), so that a model
 * scaled to zero can be scaled up again from another process. It is configured as its replicas
 * are, which also lets `docker inspect` show what a replica will get (device requests included),
 * except the RPC credential, which only the replicas themselves hold, and the frontend workers' RPC
 * ports, which each replica reads from the frontend running when it is created (the record says 7000).
 * Holding the image reference keeps `docker image prune` from removing the model's image.
 * It also carries the version's desired replica count and a generation (see docker-manager.ts).
 */
export function deploymentRecordSpec(cluster: string, d: StoredDeployment, record: RecordState, name = names.deployment(cluster, d.name, d.version)): ContainerSpec {
  return {
    name,
    Image: d.image,
    Env: modelEnv(cluster, d, undefined, undefined),
    Labels: {
      ...modelLabels(cluster, d),
      [LABEL.role]: "model_deployment",
      [RECORD_LABEL.replicas]: String(record.replicas),
      [RECORD_LABEL.generation]: String(record.generation),
    },
    HostConfig: { ...modelHostConfig(cluster, d), RestartPolicy: { Name: "no" } },
  };
}
