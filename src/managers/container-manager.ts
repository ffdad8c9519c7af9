/**
 * The seam between ClipperConnection and where things run. The embedded default runs local
 * processes; Docker and Kubernetes implement the same interface. Types here are ours, never an SDK's.
 */
import type { InputType } from "../../runtime/shared/input-types.js";
import type { QueryAuthMode } from "../../runtime/shared/api-keys.js";
import type { RpcAuthMode } from "../../runtime/shared/rpc-auth.js";
import type { PythonInterpreter } from "../python/interpreter.js";

export type ManagerKind = "local" | "docker" | "kubernetes";

/** Where a running cluster answers. */
export interface ClusterAddresses {
  cluster: string;
  manager: ManagerKind;
  /** e.g. http://127.0.0.1:1337 */
  queryUrl: string;
  managementUrl: string;
  /**
   * Where model replicas reach the frontends' RPC port, e.g. tcp://127.0.0.1:7000 (local). Docker:
   * the frontend container's name on the cluster's network (the port is not published to the host);
   * Kubernetes: the in-cluster headless Service.
   */
  rpcAddress: string;
  metricsUrl: string;
  /** Required by the management API when it listens beyond loopback. */
  token?: string;
  /**
   * Where applications send queries, when that differs from `queryUrl` (which is where this
   * process reaches the frontend): on Kubernetes the Service's in-cluster name and, for NodePort
   * or LoadBalancer Services, its outside address.
   */
  applicationQueryUrls?: string[];
  /** Kubernetes: where the cluster lives, so that later commands find it again. */
  kubernetes?: KubernetesLocation;
  /** The registry model images are pushed to when a deployment names none (Kubernetes). */
  registry?: string;
}

/** A Kubernetes cluster's place: kubeconfig file and context (absent: the defaults), namespace. */
export interface KubernetesLocation {
  kubeconfig?: string;
  context?: string;
  namespace: string;
}

export interface ClusterOptions {
  cluster: string;
  host: string;
  queryPort: number;
  managementPort: number;
  rpcPort: number;
  /**
   * Query frontend processes on the query port (default 1; Docker: in the frontend container,
   * Kubernetes: in each frontend pod): worker i takes RPC port `rpcPort + i` (7000 + i inside a
   * container), and every replica connects to each (docs/architecture.md, "Frontend workers").
   */
  frontendWorkers?: number;
  /** Largest accepted request body, in bytes, on both HTTP APIs. */
  maxBodyBytes: number;
  /**
   * Open HTTP connections at most, per process, on the query frontend and the management daemon
   * (at the cap the idlest connection is closed, or the new one is answered 503); absent: each
   * process's default, below its file-descriptor limit (docs/operations.md).
   */
  maxConnections?: number;
  /** How long start waits for the frontends to answer. */
  startupTimeoutMs: number;
  /** A replica silent for this long is dropped by the frontend. */
  replicaTimeoutMs: number;
  /** Byte bound of each frontend's prediction cache; 0 disables it; absent: the frontend's default (64 MiB). */
  cacheBytes?: number;
  /** Largest batch the frontend forms for a model without a fixed batch size (default 64). */
  maxBatch?: number;
  /** Batches the frontend keeps in flight to one replica (1 to 16; default 2; 1: none queued behind another). */
  maxInFlight?: number;
  /** Batch latency budget for a model no application links yet, in ms (default 50). */
  batchBudgetMs?: number;
  /** Deadline-aware admission: shed queries that cannot meet their SLO (default on). */
  admission?: boolean;
  /** Deadline of an Open Inference Protocol request for a model no application links (default 1000 ms). */
  oipTimeoutMs?: number;
  /**
   * Host names both HTTP APIs admit besides loopback names, IP addresses and the names the manager
   * itself uses (container and Service names); `*` admits every name. Default: none.
   */
  allowedHosts?: string[];
  /** API keys on the query API; absent: `none` when `host` is loopback, `keys` otherwise. */
  queryAuth?: QueryAuthMode;
  /**
   * Who may register as a replica on the RPC port (docs/security.md): `plain` (the default) admits
   * only replicas holding their version's credential, which the manager hands them; `none` admits
   * any peer (Clipper's own container images).
   */
  rpcAuth?: RpcAuthMode;
  /** Largest RPC frame the frontends accept from a replica; absent: the frontend's default. */
  maxRpcFrameBytes?: number;
  /**
   * Run the autoscaler (docs/autoscaling.md); default on. Off (`--no-autoscaler`): no process scales
   * autoscaled versions, and on Docker and Kubernetes no autoscaler container, Deployment or
   * credential to scale is created.
   */
  autoscaler?: boolean;
}

/** Runtimes a predict function runs on. `python` and `node` run anywhere; the framework flavours
 * (pytorch, sklearn, ...) choose a base image and artifact loaders when building an image. */
export const MODEL_FRAMEWORKS = ["python", "node", "pytorch", "sklearn", "xgboost", "onnx", "tensorflow"] as const;
export type ModelFramework = (typeof MODEL_FRAMEWORKS)[number];

export const PYTHON_FRAMEWORKS: readonly ModelFramework[] = MODEL_FRAMEWORKS.filter((f) => f !== "node");

/** A deployment whose runtime is named: what running a predict file itself (the local manager) needs. */
export type RuntimeDeployment = ModelDeployment & { framework: ModelFramework };

/** GPUs for a model's replicas: all of them, a number of them, or specific device ids. */
export type GpuRequest = { count: number | "all" } | { deviceIds: string[] };

/** A name a deployment may give an environment variable of its replicas (`deploy-model --env`). */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Everything a manager needs to run replicas of one model version. */
export interface ModelDeployment {
  name: string;
  version: string;
  inputType: InputType;
  /** The runtime the replicas run the predict file on; absent for a prebuilt image (`--image`), which brings its own. */
  framework?: ModelFramework;
  /** Absolute path of the predict file (predict.py, model.mjs, model.ts, ...). */
  predictFile: string;
  /** Exported function to call; defaults to `predict`. */
  predictFunction: string;
  /** Directory exposed to the model as CLIPPER_MODEL_PATH. */
  modelPath: string;
  /**
   * Python interpreter for python models (local manager): a path or a name on PATH. Unset, the
   * manager chooses one by the rule in src/python/interpreter.ts and records its absolute path.
   */
  python?: string;
  /** Variables the replicas get on top of what the manager sets (names match ENV_NAME_PATTERN). */
  env?: Record<string, string>;
  /** The image its replicas run (Docker, Kubernetes): built from this deployment, or prebuilt (`--image`). */
  image?: string;
  /** GPUs for each replica (never for the frontends). */
  gpu?: GpuRequest;
  /** How long the manager may wait for the replicas to come up (Kubernetes: the rollout). */
  readyTimeoutMs?: number;
}

/** What a process, container or pod uses; a field is absent when the manager cannot tell. */
export interface ResourceUsage {
  /** Seconds since it (last) started. */
  uptimeSeconds?: number;
  /** Percent of one CPU core, over a short recent interval. */
  cpuPercent?: number;
  /** Resident memory (Docker: without the page cache; Kubernetes: the working set). */
  memoryBytes?: number;
}

export interface StatusOptions {
  /** Also measure uptime, CPU and memory (takes a moment: CPU is sampled over an interval). */
  usage?: boolean;
}

export interface ReplicaStatus {
  name: string;
  version: string;
  replica: number;
  /** running, restarting (waiting to be started again), or exited. */
  state: "running" | "restarting" | "exited";
  pid?: number;
  restarts: number;
  /** Kubernetes: the pod, and whether it passes its readiness probe. */
  pod?: string;
  ready?: boolean;
  /** With `status({ usage: true })`. */
  usage?: ResourceUsage;
}

export interface ComponentStatus {
  component: string;
  state: "running" | "restarting" | "exited";
  pid?: number;
  restarts: number;
  /** Kubernetes: whether the pod passes its readiness probe. */
  ready?: boolean;
  /** With `status({ usage: true })`. */
  usage?: ResourceUsage;
}

export interface ClusterStatus {
  addresses: ClusterAddresses;
  components: ComponentStatus[];
  replicas: ReplicaStatus[];
  /** With `status({ usage: true })`, when some usage could not be measured: why. */
  usageNote?: string;
}

export interface LogSource {
  component: string;
  /** A file holding the log, where the manager keeps one (local processes). */
  path?: string;
}

/** The end of one component's log. */
export interface LogTail extends LogSource {
  lines: string[];
}

/** What `clipper logs --follow / --since` asks of a manager. */
export interface LogStreamOptions {
  /** At most this many lines of each log from before the call (the last ones; with `since`, the last ones since then). */
  tail: number;
  /** Only lines written at or after this time. */
  since?: Date;
  /** Keep streaming new lines (from replicas started later too) until `signal` aborts. */
  follow: boolean;
  signal?: AbortSignal;
}

/** One line of one component's log. */
export interface LogLine {
  component: string;
  line: string;
}

/**
 * What a manager can do, asked instead of its kind: code outside src/managers never branches on
 * `kind` (issue 11 §4), so a fourth manager needs no change there.
 */
export interface ManagerCapabilities {
  /** Replicas run from an image (built from the deployment, or given with --image); otherwise from files on this machine. */
  runsImages: boolean;
  /** The cluster pulls model images from a registry (its default registry applies when a deployment names none). */
  pullsFromRegistry: boolean;
  /** How long a deployment waits for its replicas when it names no timeout. */
  defaultReadyTimeoutMs: number;
  /** `status` reports pods (with readiness) rather than processes or containers. */
  reportsPods: boolean;
}

/** What a manager tells about replicas it started. */
export interface DeployedReplicas {
  /** Local Python models: the interpreter the replicas run (src/python/interpreter.ts chose it). */
  interpreter?: PythonInterpreter;
}

export interface ContainerManager {
  readonly kind: ManagerKind;
  readonly cluster: string;
  readonly capabilities: ManagerCapabilities;
  /** Starts the management daemon and query frontend; resolves once both answer. */
  startClipper(options: ClusterOptions): Promise<ClusterAddresses>;
  /** Finds an already running cluster. */
  connect(): Promise<ClusterAddresses>;
  /**
   * Starts `replicas` replicas of a model version (recorded so the manager can restart them). The
   * local manager answers which Python interpreter a Python version's replicas run.
   */
  deployModel(deployment: ModelDeployment, replicas: number): Promise<DeployedReplicas | void>;
  setNumReplicas(name: string, version: string, replicas: number): Promise<void>;
  getNumReplicas(name: string, version: string): Promise<number>;
  /**
   * Stops the replicas of the given versions of each named model (all versions when the list is
   * empty). The deployment records stay: `setNumReplicas` brings a stopped version back.
   */
  stopModels(models: Record<string, string[]>): Promise<void>;
  /** Stops the replicas of the given versions and forgets their deployments (`clipper delete-model`). */
  deleteModels(models: Record<string, string[]>): Promise<void>;
  stopAllModelContainers(): Promise<void>;
  status(options?: StatusOptions): Promise<ClusterStatus>;
  logs(component?: string): Promise<LogSource[]>;
  /** The last `tail` lines of each matching component's log. */
  readLogs(component: string | undefined, tail: number): Promise<LogTail[]>;
  /**
   * Hands each matching component's log lines to `onLine`, in order per component. Resolves once
   * the existing lines are out (without `follow`) or when `signal` aborts; NOT_FOUND for a
   * component that matches nothing at the start.
   */
  streamLogs(component: string | undefined, options: LogStreamOptions, onLine: (line: LogLine) => void): Promise<void>;
  /** Stops everything this manager started for the cluster. */
  stopAll(options?: { keepState?: boolean }): Promise<void>;
  /** Releases what this process holds open for the cluster (Kubernetes: its loopback proxies); the cluster runs on. */
  close?(): Promise<void>;
}
