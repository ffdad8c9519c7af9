/**
 * ClipperConnection: the library behind the CLI, in the shape of Clipper's clipper_admin. It talks
 * to the management daemon over the admin API and to a ContainerManager for processes.
 */
import { open, type FileHandle } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { AdminClient, parseJsonAnswer } from "./admin-client.js";
import { DEFAULT_APPLY_TIMEOUT_MS, waitUntilApplied } from "./revision-wait.js";
import { clipperHome, findCluster, forgetCluster, saveCluster } from "./context.js";
import { ClipperError } from "./errors.js";
import { fetchText, type FetchedText } from "./http-fetch.js";
import { lastLogMessage } from "./log-lines.js";
import { fetchModelVersionLoads, type ModelVersionLoad } from "./frontend-metrics.js";
import type { BuildProgress } from "./images/types.js";
import type { ImageRemoval } from "./images/remove-images.js";
import { createManager, type ManagerOptions } from "./managers/index.js";
import { systemClock, waitUntil } from "./managers/common/index.js";
import type {
  ClusterAddresses,
  ClusterOptions,
  ClusterStatus,
  ContainerManager,
  DeployedReplicas,
  LogSource,
  GpuRequest,
  LogLine,
  LogStreamOptions,
  LogTail,
  ManagerKind,
  ModelFramework,
} from "./managers/container-manager.js";
import { canonicalInputType, type InputType } from "../runtime/shared/input-types.js";
import { nameProblem } from "../runtime/shared/names.js";
import {
  ADD_API_KEY_PATH, type ApiKeyInfo, type CreatedApiKey, GET_API_KEYS_PATH, REVOKE_API_KEY_PATH,
} from "../runtime/shared/api-keys.js";
import {
  APP_WIDE_STATE, type AppRecord, GET_POLICY_STATE_PATH, type ModelVersionRecord, type PolicyConfig, type ReplicaRecord, SET_APP_POLICY_PATH,
} from "../runtime/shared/state.js";
import { GET_SHADOW_STATUS_PATH, SET_SHADOW_PATH, type ShadowStatus, ShadowStatusSchema } from "../runtime/shared/shadow.js";
import { ABORT_ROLLOUT_PATH, START_ROLLOUT_PATH } from "../runtime/shared/rollout.js";
import {
  AUTOSCALER_EVENTS_PATH, type AutoscaleEventPage, AutoscaleEventPageSchema, type AutoscalingConfig, type AutoscalingEntry, GET_AUTOSCALING_PATH,
  SCALE_REQUESTS_PATH, type ScaleRequest, ScaleRequestListSchema, ScaleRequestReplySchema, SET_AUTOSCALING_PATH, SET_NUM_REPLICAS_PATH,
} from "../runtime/shared/autoscaling.js";
import {
  EXPORT_QUERY_LOG_PATH, GET_QUERY_LOG_PATH, type QueryLogStatus, QueryLogStatusSchema, SET_QUERY_LOG_PATH,
} from "../runtime/shared/query-log.js";
import { parsePolicySpec, PolicySpecError } from "./policy-spec.js";
import { noSkippedLines, recordedQueries } from "./recorded-queries.js";
import { DEFAULT_REPLAY_RATE, MAX_REPLAY_RATE, type ReplayProgress, type ReplayReport, runReplay, type SendOutcome } from "./replay.js";
import { oipOutputText, oipRequestFor } from "./replay-request.js";
import { DEFAULT_WARMUP_COUNT, type RecordedWarmup, recordedWarmupInputs } from "./warmup-from-log.js";
import { MAX_WARMUP_INPUTS } from "../runtime/shared/warmup.js";
import { DEFAULT_CACHE_BYTES, DEFAULT_MAX_BODY_BYTES, DEFAULT_REPLICA_TIMEOUT_MS } from "../runtime/shared/frontend-defaults.js";
import { deployPredictSpec, parsePredictSpec } from "./predict-spec.js";
import { DEFAULT_RPC_AUTH } from "../runtime/shared/rpc-auth.js";
import { deploymentEnv } from "./deployment-env.js";
import type { DeployFunctionOptions, DeployModuleOptions } from "./functions/deploy.js";
import type { TestPredictOptions, TestPredictResult } from "./functions/test-predict.js";

/** Restarts after which a replica that never connected counts as crash-looping. */
const CRASH_LOOP_RESTARTS = 2;

export const DEFAULT_CLUSTER_OPTIONS: ClusterOptions = {
  cluster: "default",
  host: "127.0.0.1",
  queryPort: 1337,
  managementPort: 1338,
  rpcPort: 7000,
  maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
  startupTimeoutMs: 60_000,
  replicaTimeoutMs: DEFAULT_REPLICA_TIMEOUT_MS,
  cacheBytes: DEFAULT_CACHE_BYTES,
  rpcAuth: DEFAULT_RPC_AUTH,
};

/**
 * The manager's options (ManagerOptions: home, python, Docker's runtime image and its build progress,
 * Kubernetes' kubeconfig, context and namespace — on connect, absent ones come from the context
 * `clipper start` recorded) plus which cluster, on which manager.
 */
export interface ConnectOptions extends Omit<ManagerOptions, "cluster"> {
  cluster?: string;
  manager?: ManagerKind;
  /** connect: record the cluster in the CLI's context and make it the current one (`clipper attach`). */
  remember?: boolean;
}

export interface RegisterApplicationOptions {
  name: string;
  inputType: string;
  defaultOutput?: string;
  sloMicros?: number;
  /** The selection policy (docs/policies.md): an object, or a spec such as "ensemble:threshold=0.6". Absent: default. */
  policy?: PolicyInput;
  /** Under overload, answer shed queries with 503 + Retry-After instead of the default output. */
  shedWith503?: boolean;
}

/** A selection policy as an object, or written on one line (see parsePolicySpec). */
export type PolicyInput = PolicyConfig | Record<string, unknown> | string;

function policyObject(policy: PolicyInput): Record<string, unknown> {
  if (typeof policy !== "string") return policy;
  try {
    return parsePolicySpec(policy);
  } catch (err) {
    if (err instanceof PolicySpecError) throw new ClipperError("USAGE", err.message);
    throw err;
  }
}

export interface DeployModelOptions {
  name: string;
  version: string;
  inputType: string;
  /** The runtime; needed unless `image` names a prebuilt image (which brings its own). */
  framework?: ModelFramework;
  /** `path/to/file[:function]` (optional with `image`) */
  predict?: string;
  /** Directory given to the model as CLIPPER_MODEL_PATH; defaults to the predict file's directory. */
  modelPath?: string;
  replicas?: number;
  /** A fixed batch size; -1 (the default) lets the frontend choose. */
  batchSize?: number;
  /** Hold a short batch up to this many microseconds to fill it (delayed batching; default 0). */
  batchWaitMicros?: number;
  labels?: string[];
  /** Python interpreter for python models (local manager; default: CLIPPER_PYTHON, else the first of python3 on PATH and /usr/bin/python3 that imports numpy). */
  python?: string;
  /** Link the model to this application once it is live. */
  link?: string;
  env?: Record<string, string>;
  /**
   * Warm-up: a query input (what a query's `input` holds, for this version's input type) that every
   * new replica (first deploy, scale-up, restart) predicts before it connects, so no query pays the
   * cold start. Checked against the input type before anything starts. Docs: docs/quickstart.md.
   */
  warmupInput?: unknown;
  /** Batches of `warmupInput` each replica predicts before it connects (default 3; needs warmupInput). */
  warmupBatches?: number;
  /**
   * Warm-up from recorded queries instead of `warmupInput`: each warm-up batch holds the latest
   * `count` (default 16, at most 256) distinct inputs of application `app`'s query log that fit the
   * input type, bounded to 64 KiB of JSON (src/warmup-from-log.ts). A log with none is refused.
   */
  warmupFromLog?: { app: string; count?: number };
  /** How long to wait for the replicas to connect. */
  readyTimeoutMs?: number;
  /** Docker/Kubernetes: a prebuilt image speaking RPC v3 (nothing is built; `predict` may be omitted). */
  image?: string;
  /** GPUs for each replica: Docker device requests, Kubernetes limits, CUDA_VISIBLE_DEVICES locally. */
  gpu?: GpuRequest;
  /** Image building (Docker/Kubernetes): pip packages, a requirements file, npm packages, base image, registry. */
  packages?: string[];
  requirementsFile?: string;
  npmDependencies?: string[];
  baseImage?: string;
  registry?: string;
  /** Progress of an image build (the CLI shows it behind a spinner). */
  onBuildProgress?: BuildProgress;
}

/**
 * A version's autoscaling (docs/autoscaling.md): bounds and tuning, or `off` to stop scaling it
 * (its replicas stay as they are). `version` defaults to the model's current version.
 */
export type AutoscalingOptions = { version?: string } & (
  | { off: true }
  | { off?: false; min: number; max: number; targetQueuePerReplica?: number; scaleDownDelayS?: number }
);

export interface DeleteModelOptions {
  /** Only this version; absent: every version of the model. */
  version?: string;
  /**
   * Also when applications link the model and the deletion takes their current (or last) version:
   * the model is unlinked from them first, so they answer their default output until another
   * model is linked. Without it that deletion is refused, naming the applications.
   */
  force?: boolean;
}

/** What `deleteModel` did. */
export interface DeletedModel {
  model_name: string;
  /** The versions whose records were removed. */
  deleted_versions: string[];
  /** The applications the model was unlinked from (with `force`). */
  unlinked_from: string[];
}

/** A model version as the admin API lists it (Clipper's fields). */
export type ModelInfo = Omit<ModelVersionRecord, "batch_size"> & {
  is_current_version: boolean;
  /** Present when the version is autoscaled (our extension). */
  autoscaling?: AutoscalingConfig;
};

/** What `buildModel` needs: a deployment's build inputs. */
export type BuildModelOptions = Pick<DeployModelOptions,
  "name" | "version" | "inputType" | "predict" | "modelPath" | "packages" | "requirementsFile" |
  "npmDependencies" | "baseImage" | "registry" | "gpu" | "onBuildProgress"> & { framework: ModelFramework };

/** `clipper status`: the manager's view with usage, plus load per model version and links per app. */
export interface ClusterOverview extends ClusterStatus {
  models: { name: string; version: string; current: boolean; queueDepth?: number; p99Ms?: number; batches?: number }[];
  /** Why models, applications, queue depth or p99 are missing, when they are. */
  loadNote?: string;
  /** Why the management daemon is not ready (it refuses writes until restarted), when it says so. */
  managementNotReady?: string;
  apps: { name: string; linkedModels: string[]; sloMicros: number }[];
}

export interface PredictReply {
  status: number;
  body: unknown;
}

/** Feedback for `/update`: the user (0: no particular user), the input and its true label. */
export interface Feedback {
  uid: string | number;
  input: unknown;
  label: number | string;
  /** The query_id of the answer the feedback is about (ours, optional): the query log joins them. */
  queryId?: number;
}

/** What is wrong with a feedback's fields, checked here so a bad one never reaches the frontend. */
function feedbackProblem(f: Feedback): string | undefined {
  const uidOk = (typeof f.uid === "number" && Number.isFinite(f.uid)) || (typeof f.uid === "string" && f.uid !== "");
  if (!uidOk) return "the feedback's uid must be a finite number or a non-empty string";
  if (f.input === undefined) return "the feedback needs an input";
  if (!(typeof f.label === "number" && Number.isFinite(f.label)) && typeof f.label !== "string") {
    return "the feedback's label must be a finite number or a string";
  }
  if (f.queryId !== undefined && !(Number.isSafeInteger(f.queryId) && f.queryId >= 0)) return "the feedback's query id must be a whole number ≥ 0";
  return undefined;
}

/** A query the frontend refused, as one line: status, error and cause. */
export function queryRejected(reply: PredictReply): ClipperError {
  const body = (typeof reply.body === "object" && reply.body !== null ? reply.body : {}) as { error?: unknown; cause?: unknown };
  const cause = typeof body.cause === "string" ? body.cause : JSON.stringify(reply.body);
  return new ClipperError("QUERY_REJECTED", `${reply.status} ${typeof body.error === "string" ? body.error : ""}: ${cause}`);
}

function parseInputType(value: string): InputType {
  const type = canonicalInputType(value);
  if (!type) throw new ClipperError("USAGE", `unknown input type '${value}' (use one of bytes, integers, floats, doubles, strings)`);
  return type;
}


export class ClipperConnection {
  private addresses?: ClusterAddresses;
  /** How long a write waits for every query frontend to apply it before it fails (src/revision-wait.ts). */
  applyTimeoutMs = DEFAULT_APPLY_TIMEOUT_MS;

  constructor(readonly manager: ContainerManager, private readonly home = clipperHome()) {}

  /** Attaches to the current cluster (or the named one) recorded by `clipper start`. */
  static async connect(options: ConnectOptions = {}): Promise<ClipperConnection> {
    const conn = await ClipperConnection.locate(options);
    const addresses = await conn.connect();
    if (options.remember) saveCluster({ ...addresses }, conn.home);
    return conn;
  }

  /**
   * The current (or named) cluster's connection, without asking the cluster anything: what
   * `clipper stop` needs, as it must also stop a cluster that no longer answers (a local
   * supervisor killed with -9 leaves the daemon, the frontend and the replicas running).
   */
  static async locate(options: ConnectOptions = {}): Promise<ClipperConnection> {
    const home = options.home ?? clipperHome();
    const entry = findCluster(options.cluster, home);
    const cluster = options.cluster ?? entry?.cluster ?? "default";
    const kind = options.manager ?? entry?.manager ?? "local";
    // Flags given now win over what `clipper start` recorded; flags not given leave it alone.
    const given = Object.fromEntries(Object.entries(options.kubernetes ?? {}).filter(([, v]) => v !== undefined));
    const kubernetes = kind === "kubernetes" ? { ...entry?.kubernetes, ...given } : undefined;
    const manager = await createManager(kind, { cluster, home, python: options.python, ...(kubernetes ? { kubernetes } : {}) });
    return new ClipperConnection(manager, home);
  }

  /** A connection for starting a new cluster. */
  static async create(options: ConnectOptions = {}): Promise<ClipperConnection> {
    const home = options.home ?? clipperHome();
    const manager = await createManager(options.manager ?? "local", {
      cluster: options.cluster ?? "default", home, python: options.python,
      ...(options.runtimeBaseImage ? { runtimeBaseImage: options.runtimeBaseImage } : {}),
      ...(options.runtimeImage ? { runtimeImage: options.runtimeImage } : {}),
      ...(options.onBuildProgress ? { onBuildProgress: options.onBuildProgress } : {}),
      ...(options.kubernetes ? { kubernetes: options.kubernetes } : {}),
    });
    return new ClipperConnection(manager, home);
  }

  async start(options: Partial<ClusterOptions> = {}): Promise<ClusterAddresses> {
    // The cluster is the one this connection was created for, unless the options name it too.
    const addresses = await this.manager.startClipper({ ...DEFAULT_CLUSTER_OPTIONS, cluster: this.manager.cluster, ...options });
    this.addresses = addresses;
    saveCluster({ ...addresses }, this.home);
    return addresses;
  }

  async connect(): Promise<ClusterAddresses> {
    this.addresses = await this.manager.connect();
    return this.addresses;
  }

  /**
   * Stops the whole cluster; its apps and models are deleted too unless keepState is set. With
   * removeImages, then removes the model images the cluster built from the local Docker daemon
   * (exactly those: images/remove-images.ts) and says which; not with keepState, whose next start
   * brings back replicas of those images.
   */
  async stopAll(options: { keepState?: boolean; removeImages?: boolean } = {}): Promise<{ images?: ImageRemoval }> {
    if (options.keepState && options.removeImages) {
      throw new ClipperError("USAGE", "--remove-images would remove the images the kept state deploys again at the next start",
        "stop with --keep-state and keep the images, or stop without it to remove them");
    }
    await this.manager.stopAll({ keepState: options.keepState ?? false });
    forgetCluster(this.manager.cluster, this.home);
    this.addresses = undefined;
    return options.removeImages ? { images: await this.removeBuiltImages() } : {};
  }

  /**
   * Removes the model images this cluster built from the local Docker daemon, and no other image
   * (images/remove-images.ts); an image a container still uses is kept, with the daemon's reason.
   */
  async removeBuiltImages(): Promise<ImageRemoval> {
    const [{ removeBuiltImages }, { dockerClient }] = await Promise.all([import("./images/remove-images.js"), import("./docker/client.js")]);
    return removeBuiltImages(dockerClient(), this.manager.cluster);
  }

  /** Lets go of the cluster in this process (the cluster keeps running); connect() again to use it. */
  async close(): Promise<void> {
    await this.manager.close?.();
    this.addresses = undefined;
  }

  private get cluster(): ClusterAddresses {
    if (!this.addresses) throw new ClipperError("NO_CLUSTER", "not connected to a cluster", "call start() or connect() first");
    return this.addresses;
  }

  private get admin(): AdminClient {
    return new AdminClient({ managementUrl: this.cluster.managementUrl, token: this.cluster.token });
  }

  /**
   * An admin write that returns only once every live query frontend has applied it, so a query
   * sent next is served by the new configuration. A daemon that names no revision (Clipper's own)
   * is not waited on.
   */
  private async write(path: string, body: unknown): Promise<string> {
    const admin = this.admin;
    const { text, revision } = await admin.postWrite(path, body);
    if (revision) await waitUntilApplied(revision, () => admin.appliedRevisions(), { timeoutMs: this.applyTimeoutMs });
    return text;
  }

  getQueryAddr(): string {
    return this.cluster.queryUrl;
  }

  getMetricAddr(): string {
    return this.cluster.metricsUrl;
  }

  getAddresses(): ClusterAddresses {
    return this.cluster;
  }

  // --- applications -------------------------------------------------------------------------

  async registerApplication(options: RegisterApplicationOptions): Promise<string> {
    return this.write("/admin/add_app", {
      name: options.name,
      input_type: parseInputType(options.inputType),
      default_output: options.defaultOutput ?? "None",
      latency_slo_micros: options.sloMicros ?? 100_000,
      ...(options.policy === undefined ? {} : { policy: policyObject(options.policy) }),
      ...(options.shedWith503 ? { shed_with_503: true } : {}),
    });
  }

  /** Changes an application's selection policy (our extension of the admin API). */
  async setApplicationPolicy(app: string, policy: PolicyInput): Promise<string> {
    return this.write(SET_APP_POLICY_PATH, { name: app, policy: policyObject(policy) });
  }

  /**
   * The weights a learning policy (exp3, exp4) has learned, per uid ("*": application-wide). uid 0
   * is no particular user, whose feedback trains the application-wide weights: it reads those.
   */
  async getPolicyState(app: string, uid?: string | number): Promise<{ app_name: string; policy: string; weights: Record<string, Record<string, number>> }> {
    const key = uid === undefined ? undefined : String(uid) === "0" ? APP_WIDE_STATE : uid;
    return this.admin.postJson(GET_POLICY_STATE_PATH, key === undefined ? { app_name: app } : { app_name: app, uid: key });
  }

  // --- query API keys (docs/security.md) -------------------------------------------------------

  /**
   * Creates a key for the query API (used when the frontends run with `--query-auth keys`). The
   * answer holds the key itself, which the cluster does not keep: this is the only time it is shown.
   */
  async createApiKey(options: { app?: string; rate?: number } = {}): Promise<CreatedApiKey> {
    return parseJsonAnswer(ADD_API_KEY_PATH, await this.write(ADD_API_KEY_PATH, {
      ...(options.app === undefined ? {} : { app: options.app }),
      ...(options.rate === undefined ? {} : { rate: options.rate }),
    }));
  }

  /** Every key's id, scope, rate and creation time (never the keys or their hashes). */
  async getApiKeys(): Promise<ApiKeyInfo[]> {
    return this.admin.postJson(GET_API_KEYS_PATH, {});
  }

  async revokeApiKey(id: string): Promise<string> {
    return this.write(REVOKE_API_KEY_PATH, { id });
  }

  async unregisterApplication(name: string): Promise<string> {
    return this.write("/admin/delete_app", { name });
  }

  async linkModelToApp(app: string, model: string): Promise<string> {
    return this.write("/admin/add_model_links", { app_name: app, model_names: [model] });
  }

  async unlinkModelFromApp(app: string, model: string): Promise<string> {
    return this.write("/admin/delete_model_links", { app_name: app, model_names: [model] });
  }

  async getAllApps(verbose: true): Promise<AppRecord[]>;
  async getAllApps(verbose?: false): Promise<string[]>;
  async getAllApps(verbose = false): Promise<string[] | AppRecord[]> {
    return this.admin.postJson("/admin/get_all_applications", { verbose });
  }

  /** The application's record, or undefined when there is none (Clipper answered `{}`). */
  async getAppInfo(name: string): Promise<AppRecord | undefined> {
    const info = await this.admin.postJson<AppRecord | Record<string, never>>("/admin/get_application", { name });
    return "name" in info ? (info as AppRecord) : undefined;
  }

  async getLinkedModels(app: string): Promise<string[]> {
    return this.admin.postJson("/admin/get_linked_models", { app_name: app });
  }

  // --- models -------------------------------------------------------------------------------

  /** Records a model version whose replicas run elsewhere (Clipper's register_model). */
  async registerModel(options: {
    name: string; version: string; inputType: string; labels?: string[]; containerName?: string; modelDataPath?: string; batchSize?: number;
    batchWaitMicros?: number;
  }): Promise<string> {
    return this.write("/admin/add_model", {
      model_name: options.name,
      model_version: options.version,
      labels: options.labels ?? [],
      input_type: parseInputType(options.inputType),
      container_name: options.containerName ?? "NO_CONTAINER",
      model_data_path: options.modelDataPath ?? "DEPRECATED",
      batch_size: options.batchSize ?? -1,
      ...(options.batchWaitMicros ? { batch_wait_micros: options.batchWaitMicros } : {}),
    });
  }

  /**
   * Starts the replicas first and registers the version second, so that the new version is live
   * when it becomes current and no query falls through to the default output during a rollout.
   * Answers what the manager tells about the replicas: on the local manager, a Python version's
   * `interpreter` (chosen as src/python/interpreter.ts says: --python, else CLIPPER_PYTHON, else the
   * first of python3 on PATH and /usr/bin/python3 that imports numpy).
   */
  async deployModel(options: DeployModelOptions): Promise<DeployedModel> {
    const inputType = parseInputType(options.inputType);
    const fromLog = options.warmupFromLog === undefined ? undefined : await this.warmupFromLog(inputType, options);
    const env = deploymentEnv(inputType, fromLog ? { ...options, warmupInputs: fromLog.inputs } : options);
    const replicas = options.replicas ?? 1;
    if (!Number.isInteger(replicas) || replicas < 0) throw new ClipperError("USAGE", `replicas must be a whole number ≥ 0, got ${replicas}`);
    const { runsImages, pullsFromRegistry, defaultReadyTimeoutMs } = this.manager.capabilities;
    if (!runsImages && options.image) throw new ClipperError("USAGE", "--image needs a manager that runs images (start the cluster with --manager docker)");
    const { framework } = options;
    const spec = deployPredictSpec(options);
    const existing = await this.getModelInfo(options.name, options.version);
    if (existing) throw new ClipperError("ADMIN_REJECTED", `model with name '${options.name}' and version '${options.version}' already exists`);
    // A cluster elsewhere pulls images from a registry: the one named here, or the cluster's default.
    const registry = options.registry ?? (pullsFromRegistry ? this.cluster.registry : undefined);
    // Images are built before anything starts: a failed build leaves no replica behind.
    const image = options.image ?? (runsImages && framework ? await this.buildModel({ ...options, framework, ...(registry ? { registry } : {}) }) : undefined);
    const modelPath = options.modelPath ? resolve(options.modelPath) : spec ? dirname(spec.file) : "/model";
    const readyTimeoutMs = options.readyTimeoutMs ?? defaultReadyTimeoutMs;
    const containerName = image ?? `local:${framework}:${spec?.file}:${spec?.fn}`.replace(/,/g, "");
    let deployed: DeployedReplicas;
    try {
      deployed = (await this.manager.deployModel({
        name: options.name,
        version: options.version,
        inputType,
        ...(framework ? { framework } : {}),
        predictFile: spec?.file ?? `${modelPath}/predict`,
        predictFunction: spec?.fn ?? "predict",
        modelPath,
        python: options.python,
        env,
        readyTimeoutMs,
        ...(image ? { image } : {}),
        ...(options.gpu ? { gpu: options.gpu } : {}),
      }, replicas)) ?? {};
      await this.waitForReplicas(options.name, options.version, replicas, readyTimeoutMs);
      await this.registerModel({
        name: options.name, version: options.version, inputType, labels: options.labels,
        containerName, modelDataPath: modelPath,
        batchSize: options.batchSize, batchWaitMicros: options.batchWaitMicros,
      });
    } catch (err) {
      // Leave nothing half-deployed: a version that never registered has no use for its replicas or its deployment.
      await this.manager.deleteModels({ [options.name]: [options.version] }).catch(() => undefined);
      throw err;
    }
    if (options.link) {
      const linked = await this.getLinkedModels(options.link);
      if (!linked.includes(options.name)) await this.linkModelToApp(options.link, options.name);
    }
    return fromLog ? { ...deployed, warmupFromLog: { app: options.warmupFromLog!.app, inputs: fromLog.inputs.length } } : deployed;
  }

  /** The recorded inputs a deployment warms up with (src/warmup-from-log.ts), checked before anything starts. */
  private async warmupFromLog(inputType: InputType, options: DeployModelOptions): Promise<RecordedWarmup> {
    const { app, count = DEFAULT_WARMUP_COUNT } = options.warmupFromLog!;
    if (options.warmupInput !== undefined) throw new ClipperError("USAGE", "give the warm-up either as one input (--warmup-input) or from the query log (--warmup-from-log), not both");
    if (!(Number.isSafeInteger(count) && count >= 1 && count <= MAX_WARMUP_INPUTS)) {
      throw new ClipperError("USAGE", `the warm-up count must be a whole number from 1 to ${MAX_WARMUP_INPUTS}, got ${count}`);
    }
    const chunks = await this.admin.postStream(EXPORT_QUERY_LOG_PATH, { app_name: app }, 60_000);
    const chosen = await recordedWarmupInputs(recordedQueries(chunks, app, noSkippedLines()), inputType, count);
    if (chosen.inputs.length === 0) {
      throw new ClipperError("USAGE", `the query log of '${app}' holds no recorded input of type ${inputType} to warm up with` +
        ` (${chosen.read} records, ${chosen.unfit} of another input type)`, `record some first: clipper query-log ${app} --sample 0.01`);
    }
    return chosen;
  }

  /**
   * Waits until exactly `count` replicas of a version are connected to the query frontend. A
   * replica that keeps crashing (a wrong interpreter, a predict file that fails to import) ends
   * the wait at once with the end of its log, rather than at the timeout.
   */
  private async waitForReplicas(name: string, version: string, count: number, timeoutMs: number): Promise<void> {
    let connected = 0;
    let round = 0;
    /** The failure, told with the last line of the first replica's log where `describe` wants it. */
    const failed = async (describe: (lastLine: string) => string): Promise<ClipperError> => {
      const log = (await this.manager.readLogs(`${name}-${version}-0`, 20).catch(() => []))[0];
      // The supervisor's own lines say that it exited; the line before says why.
      const last = log ? lastLogMessage(log.lines) : undefined;
      return new ClipperError("DEPLOY_FAILED", describe(last ? ` (last log line: ${last})` : ""),
        `see the replica's log: \`clipper logs ${name}-${version}-0\`${log?.path ? ` (${log.path})` : ""}`);
    };
    await waitUntil({
      deadline: systemClock.now() + timeoutMs,
      intervalMs: 100,
      attempt: async () => {
        connected = (await this.getAllModelReplicas(true)).filter((r) => r.model_name === name && r.model_version === version).length;
        if (connected === count) return true;
        const crashing = round++ % 10 === 9 && (await this.manager.status()).replicas
          .some((r) => r.name === name && r.version === version && r.restarts >= CRASH_LOOP_RESTARTS);
        if (crashing) throw await failed((lastLine) => `replicas of ${name}:${version} keep exiting before they connect${lastLine}`);
        return undefined;
      },
      onTimeout: () => failed(() => `${connected} of ${count} replicas of ${name}:${version} connected within ${timeoutMs} ms`),
    });
  }

  /**
   * Builds a model version's image with the Docker daemon (tag `<cluster>-<name>:<version>`, with the
   * registry prefix, pushed only when a registry is given) and returns its tag.
   */
  async buildModel(options: BuildModelOptions): Promise<string> {
    if (!options.predict) throw new ClipperError("USAGE", "building an image needs --predict FILE[:FUNCTION]");
    const { file, fn } = parsePredictSpec(options.predict, options.framework);
    const [{ buildModelImage }, { dockerClient }] = await Promise.all([import("./images/build-model-image.js"), import("./docker/client.js")]);
    const built = await buildModelImage(dockerClient(), {
      cluster: this.addresses?.cluster ?? "default",
      name: options.name, version: options.version, framework: options.framework, inputType: parseInputType(options.inputType),
      predictFile: file, predictFunction: fn,
      ...(options.modelPath ? { modelPath: resolve(options.modelPath) } : {}),
      ...(options.packages ? { packages: options.packages } : {}),
      ...(options.requirementsFile ? { requirementsFile: resolve(options.requirementsFile) } : {}),
      ...(options.npmDependencies ? { npmDependencies: options.npmDependencies } : {}),
      ...(options.baseImage ? { baseImage: options.baseImage } : {}),
      ...(options.registry ? { registry: options.registry } : {}),
      ...(options.gpu ? { gpu: true } : {}),
    }, options.onBuildProgress);
    return built.tag;
  }

  // --- deploying from code (src/functions/, docs/deploy-from-code.md) --------------------------

  /**
   * Deploys a function value: its source is checked (a function that closes over variables is
   * refused, naming them, before anything is built or started), written into a module with its
   * `context`, and deployed on the Node runtime.
   */
  async deployFunction(options: DeployFunctionOptions): Promise<void> {
    const { deployFunction } = await import("./functions/deploy.js");
    await deployFunction(this, { home: this.home }, options);
  }

  /** Deploys a Node module (`entry`, TypeScript too) and what it imports, bundled with esbuild. */
  async deployModule(options: DeployModuleOptions): Promise<void> {
    const { deployModule } = await import("./functions/deploy.js");
    await deployModule(this, options);
  }

  /**
   * Runs a predict function (a function value, a Node module or a Python file) here on one input or
   * a batch, through the runtime's input decoding and output encoding; needs no cluster. A failure
   * throws PredictFailedError (code PREDICT_FAILED) with the traceback.
   */
  async testPredictFunction(options: TestPredictOptions): Promise<TestPredictResult> {
    const { testPredictFunction } = await import("./functions/test-predict.js");
    return testPredictFunction(options);
  }

  /** Clipper's build_and_deploy_model: the same as deployModel, which builds when the manager runs images. */
  async buildAndDeployModel(options: DeployModelOptions): Promise<DeployedModel> {
    return this.deployModel(options);
  }

  async setModelVersion(name: string, version: string, numReplicas?: number): Promise<string> {
    if (numReplicas !== undefined) {
      await this.manager.setNumReplicas(name, version, numReplicas);
      await this.waitForReplicas(name, version, numReplicas, 60_000);
    }
    return this.write("/admin/set_model_version", { model_name: name, model_version: version });
  }

  async getCurrentModelVersion(name: string): Promise<string> {
    const models = await this.getAllModels(true);
    const current = models.find((m) => m.model_name === name && m.is_current_version);
    if (!current) throw new ClipperError("ADMIN_REJECTED", `model '${name}' has no current version`);
    return current.model_version;
  }

  async getNumReplicas(name: string, version?: string): Promise<number> {
    return this.manager.getNumReplicas(name, version ?? (await this.getCurrentModelVersion(name)));
  }

  async setNumReplicas(name: string, replicas: number, version?: string): Promise<void> {
    if (!Number.isInteger(replicas) || replicas < 0) throw new ClipperError("USAGE", `replicas must be a whole number ≥ 0, got ${replicas}`);
    const v = version ?? (await this.getCurrentModelVersion(name));
    await this.manager.setNumReplicas(name, v, replicas);
    await this.waitForReplicas(name, v, replicas, 60_000);
  }

  async getAllModels(verbose: true): Promise<ModelInfo[]>;
  async getAllModels(verbose?: false): Promise<string[]>;
  async getAllModels(verbose = false): Promise<string[] | ModelInfo[]> {
    return this.admin.postJson("/admin/get_all_models", { verbose });
  }

  async getModelInfo(name: string, version: string): Promise<(ModelInfo) | undefined> {
    const info = await this.admin.postJson<Record<string, unknown>>("/admin/get_model", { model_name: name, model_version: version });
    return "model_name" in info ? (info as ModelInfo) : undefined;
  }

  async getAllModelReplicas(verbose: true): Promise<ReplicaRecord[]>;
  async getAllModelReplicas(verbose?: false): Promise<string[]>;
  async getAllModelReplicas(verbose = false): Promise<string[] | ReplicaRecord[]> {
    return this.admin.postJson("/admin/get_all_containers", { verbose });
  }

  async getModelReplicaInfo(name: string, version: string, replicaId: number): Promise<ReplicaRecord | undefined> {
    const info = await this.admin.postJson<Record<string, unknown>>("/admin/get_container", {
      model_name: name, model_version: version, replica_id: replicaId,
    });
    return "model_name" in info ? (info as ReplicaRecord) : undefined;
  }

  // --- autoscaling (docs/autoscaling.md) -----------------------------------------------------

  /** Sets or switches off a model version's autoscaling; the daemon validates the numbers. */
  async setAutoscaling(name: string, options: AutoscalingOptions): Promise<string> {
    const target = { model_name: name, ...(options.version === undefined ? {} : { model_version: options.version }) };
    if (options.off) return this.write(SET_AUTOSCALING_PATH, { ...target, off: true });
    return this.write(SET_AUTOSCALING_PATH, {
      ...target,
      min_replicas: options.min,
      max_replicas: options.max,
      ...(options.targetQueuePerReplica === undefined ? {} : { target_queue_per_replica: options.targetQueuePerReplica }),
      ...(options.scaleDownDelayS === undefined ? {} : { scale_down_delay_s: options.scaleDownDelayS }),
    });
  }

  /**
   * Asks the cluster's manager, through the daemon, for `replicas` replicas of a version (the current
   * one unless named): what the dashboard's Scale button does. It returns once the daemon accepted
   * the request; the autoscaler loop's host applies it within seconds (`getScaleRequests` lists
   * those not yet applied, `getEvents` the outcome). `setNumReplicas` scales directly instead.
   */
  async requestReplicas(name: string, replicas: number, options: { version?: string } = {}): Promise<{ message: string; request: ScaleRequest }> {
    const body = { model_name: name, num_replicas: replicas, ...(options.version === undefined ? {} : { model_version: options.version }) };
    const reply = ScaleRequestReplySchema.safeParse(await this.admin.postJson(SET_NUM_REPLICAS_PATH, body));
    if (!reply.success) throw new ClipperError("ADMIN_REJECTED", `the management daemon answered ${SET_NUM_REPLICAS_PATH} with an unexpected body`);
    return reply.data;
  }

  /** Replica counts asked for through the daemon and not yet applied by the cluster's manager. */
  async getScaleRequests(): Promise<ScaleRequest[]> {
    return (await this.admin.getValidated(SCALE_REQUESTS_PATH, ScaleRequestListSchema)).requests;
  }

  /** Every autoscaled version, or those of one model. */
  async getAutoscaling(name?: string): Promise<AutoscalingEntry[]> {
    return this.admin.postJson(GET_AUTOSCALING_PATH, name === undefined ? {} : { model_name: name });
  }

  /**
   * The daemon's autoscaler events after sequence number `since` (scale decisions and configuration
   * changes, oldest first); pass the answer's `next_seq` as `since` to follow.
   */
  async getEvents(options: { since?: number; limit?: number } = {}): Promise<AutoscaleEventPage> {
    const query = new URLSearchParams();
    if (options.since !== undefined) query.set("since", String(options.since));
    if (options.limit !== undefined) query.set("limit", String(options.limit));
    const suffix = query.size > 0 ? `?${query}` : "";
    return this.admin.getValidated(`${AUTOSCALER_EVENTS_PATH}${suffix}`, AutoscaleEventPageSchema);
  }

  // --- shadow versions and rollouts (docs/rollouts.md) ---------------------------------------

  /**
   * Makes `version` of model `name` a shadow: it receives a copy of `percent`% (default 100) of the
   * live queries the current version answers, and its answers are compared, never returned. The
   * daemon refuses an unknown version, the current one, and one with no connected replica.
   */
  async setShadow(name: string, version: string, options: { percent?: number } = {}): Promise<string> {
    return this.write(SET_SHADOW_PATH, { model_name: name, model_version: version, ...(options.percent === undefined ? {} : { percent: options.percent }) });
  }

  /** Ends model `name`'s shadow (the daemon refuses when it has none). */
  async endShadow(name: string): Promise<string> {
    return this.write(SET_SHADOW_PATH, { model_name: name, off: true });
  }

  /**
   * Starts a gated rollout of model `name` to `version` (docs/rollouts.md#gated-rollouts); the daemon
   * drives its steps. Resolves once every live frontend applied its first step.
   */
  async startRollout(name: string, version: string, options: RolloutOptions = {}): Promise<string> {
    const body = { model_name: name, model_version: version, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
    return this.write(START_ROLLOUT_PATH, body);
  }

  /** Rolls back model `name`'s running rollout (the daemon refuses when none runs). */
  async abortRollout(name: string): Promise<string> {
    return this.write(ABORT_ROLLOUT_PATH, { model_name: name });
  }

  /** Model `name`'s current version, its shadow and the shadow's figures summed over every frontend, and its rollout. */
  async getRolloutStatus(name: string): Promise<ShadowStatus> {
    const answer = ShadowStatusSchema.safeParse(await this.admin.postJson(GET_SHADOW_STATUS_PATH, { model_name: name }));
    if (!answer.success) throw new ClipperError("ADMIN_REJECTED", `the management daemon answered ${GET_SHADOW_STATUS_PATH} with an unexpected body`);
    return answer.data;
  }

  // --- query log (docs/rollouts.md#query-log) ----------------------------------------------

  /**
   * Records a sample of an application's queries (`sample` in (0, 1]) in a log kept under `maxMb`
   * MiB (default: the current bound, else 64), or stops recording (`off`; what was recorded stays).
   */
  async setQueryLog(app: string, options: { sample: number; maxMb?: number } | { off: true }): Promise<string> {
    if ("off" in options) return this.write(SET_QUERY_LOG_PATH, { app_name: app, off: true });
    return this.write(SET_QUERY_LOG_PATH, {
      app_name: app, sample: options.sample, ...(options.maxMb === undefined ? {} : { max_mb: options.maxMb }),
    });
  }

  /** An application's query log setting and what the log holds. */
  async getQueryLog(app: string): Promise<QueryLogStatus> {
    const status = QueryLogStatusSchema.safeParse(await this.admin.postJson(GET_QUERY_LOG_PATH, { app_name: app }));
    if (!status.success) throw new ClipperError("ADMIN_REJECTED", `the management daemon answered ${GET_QUERY_LOG_PATH} with an unexpected body`);
    return status.data;
  }

  /** Writes an application's query log into `file` as JSON lines, feedback joined; resolves with the number of queries. */
  async exportQueryLog(app: string, file: string): Promise<number> {
    return this.admin.postToFile(EXPORT_QUERY_LOG_PATH, { app_name: app }, file);
  }

  // --- replay (docs/rollouts.md#replay-and-warm-up) -------------------------------------------

  /**
   * Sends an application's recorded queries (a file `exportQueryLog` wrote, or the daemon's log of
   * the application read as it streams) to one model version, not through the application's
   * policy, at `rate` queries per second, and compares the answers with the recorded outputs
   * (src/replay.ts says how each record counts). Refuses an unknown application or version, a
   * version of another input type, and one with no connected replica, before sending anything.
   */
  async replayQueries(app: string, options: ReplayOptions): Promise<ReplayReport> {
    const { name, version } = options.to;
    const rate = options.rate ?? DEFAULT_REPLAY_RATE;
    const problem = nameProblem("model name", name) ?? nameProblem("model version", version)
      ?? (!(Number.isFinite(rate) && rate > 0 && rate <= MAX_REPLAY_RATE) ? `the rate must be a number of queries per second above 0 and at most ${MAX_REPLAY_RATE}, got ${rate}` : undefined)
      ?? (options.limit !== undefined && !(Number.isSafeInteger(options.limit) && options.limit >= 1) ? `the limit must be a whole number ≥ 1, got ${options.limit}` : undefined)
      ?? (options.maxInFlight !== undefined && !(Number.isSafeInteger(options.maxInFlight) && options.maxInFlight >= 1) ? `at most in flight must be a whole number ≥ 1, got ${options.maxInFlight}` : undefined);
    if (problem) throw new ClipperError("USAGE", problem);
    const appInfo = await this.getAppInfo(app);
    if (!appInfo) throw new ClipperError("ADMIN_REJECTED", `application '${app}' does not exist`);
    const target = await this.getModelInfo(name, version);
    if (!target) throw new ClipperError("ADMIN_REJECTED", `model '${name}' has no version '${version}'`, "clipper models lists the versions");
    if (target.input_type !== appInfo.input_type) {
      throw new ClipperError("USAGE", `${name}:${version} takes ${target.input_type}, but application '${app}' takes ${appInfo.input_type}: its recorded inputs do not fit`);
    }
    const replicas = (await this.getAllModelReplicas(true)).filter((r) => r.model_name === name && r.model_version === version);
    if (replicas.length === 0) {
      throw new ClipperError("ADMIN_REJECTED", `${name}:${version} has no connected replica`, `deploy it, or scale it: clipper replicas ${name} 1 --version ${version}`);
    }
    const source = "file" in options.from ? options.from.file : `the query log of '${app}'`;
    const chunks = "file" in options.from ? await openRecordFile(options.from.file) : await this.admin.postStream(EXPORT_QUERY_LOG_PATH, { app_name: app }, 60_000);
    const skipped = noSkippedLines();
    const url = `${this.getQueryAddr()}/v2/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/infer`;
    const headers = { "content-type": "application/json", ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}) };
    const figures = await runReplay({
      records: recordedQueries(chunks, app, skipped),
      prepare: (record) => {
        const request = oipRequestFor(target.input_type, record.input);
        return "unsendable" in request ? request : { send: () => sendOipQuery(url, headers, request.body) };
      },
      rate,
      ...(options.limit === undefined ? {} : { limit: options.limit }),
      ...(options.maxInFlight === undefined ? {} : { maxInFlight: options.maxInFlight }),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return { app, model_name: name, model_version: version, source, rate, skipped, ...figures };
  }

  // --- processes ----------------------------------------------------------------------------

  async getClipperLogs(component?: string): Promise<LogSource[]> {
    return this.manager.logs(component);
  }

  /** The last `tail` lines of each matching component's log, whichever manager runs it. */
  async readClipperLogs(component: string | undefined, tail = 100): Promise<LogTail[]> {
    return this.manager.readLogs(component, tail);
  }

  /**
   * Hands each matching component's log lines to `onLine`: the last `tail` (since `since`), then,
   * with `follow`, new ones until `signal` aborts (`clipper logs --follow`).
   */
  async streamClipperLogs(component: string | undefined, options: LogStreamOptions, onLine: (line: LogLine) => void): Promise<void> {
    return this.manager.streamLogs(component, options, onLine);
  }

  async inspectInstance(): Promise<ClusterStatus> {
    return this.manager.status();
  }

  /**
   * What `clipper status` shows: the components and replicas with uptime, CPU and memory; queue
   * depth and p99 batch latency per model version from the query frontend's /metrics; and each
   * application's links. A part that cannot be read says why in its note instead of failing all.
   */
  async clusterOverview(): Promise<ClusterOverview> {
    const why = (err: unknown) => (err instanceof Error ? err.message : String(err));
    const status = await this.manager.status({ usage: true });
    // The processes are the manager's to report; a daemon or frontend that is down only leaves its part empty.
    const [records, loaded, readiness] = await Promise.allSettled([
      Promise.all([this.getAllModels(true), this.getAllApps(true)]),
      fetchModelVersionLoads(status.addresses.metricsUrl, status.addresses.token),
      this.admin.notReadyBecause(),
    ]);
    const managementNotReady = readiness.status === "fulfilled" ? readiness.value : undefined;
    const [models, apps] = records.status === "fulfilled" ? records.value : [[], []];
    const loads: ModelVersionLoad[] = loaded.status === "fulfilled" ? loaded.value : [];
    const loadNote = records.status === "rejected"
      ? `models and applications are unknown: the management daemon did not answer (${why(records.reason)})`
      : loaded.status === "rejected"
        ? `queue depth and p99 are unknown: the query frontend's metrics did not answer (${why(loaded.reason)})`
        : undefined;
    const loadOf = new Map(loads.map((l) => [l.model, l]));
    return {
      ...status,
      models: models.map((m) => {
        const { model: _model, ...load } = loadOf.get(`${m.model_name}:${m.model_version}`) ?? { model: "" };
        return { name: m.model_name, version: m.model_version, current: m.is_current_version, ...load };
      }),
      ...(loadNote ? { loadNote } : {}),
      ...(managementNotReady ? { managementNotReady } : {}),
      apps: apps.map((a) => ({ name: a.name, linkedModels: a.linked_models, sloMicros: a.latency_slo_micros })),
    };
  }

  /** Stops every replica of the named models. */
  async stopModels(names: string[]): Promise<void> {
    await this.manager.stopModels(Object.fromEntries(names.map((n) => [n, []])));
  }

  async stopVersionedModels(versions: Record<string, string[]>): Promise<void> {
    await this.manager.stopModels(versions);
  }

  /** Stops the replicas of every version of the named models except the current one. */
  async stopInactiveModelVersions(names: string[]): Promise<void> {
    const models = await this.getAllModels(true);
    const inactive: Record<string, string[]> = {};
    for (const m of models) {
      if (names.includes(m.model_name) && !m.is_current_version) (inactive[m.model_name] ??= []).push(m.model_version);
    }
    if (Object.keys(inactive).length > 0) await this.manager.stopModels(inactive);
  }

  async stopAllModelContainers(): Promise<void> {
    await this.manager.stopAllModelContainers();
  }

  /**
   * Deletes a model version (or every version): stops its replicas and forgets their deployment
   * (the manager), then removes its record (Clipper's delete_versioned_model). In that order, so no
   * replica keeps serving a version whose record is gone; a failure in between leaves a record
   * without replicas, which the same call deletes again. Replicas of a version the daemon no longer
   * records are stopped too, and the call then fails: the model does not exist.
   */
  async deleteModel(name: string, options: DeleteModelOptions = {}): Promise<DeletedModel> {
    const { version, force = false } = options;
    const problem = nameProblem("model name", name) ?? (version === undefined ? undefined : nameProblem("model version", version));
    if (problem) throw new ClipperError("USAGE", problem);
    const recorded = (await this.getAllModels(true)).filter((m) => m.model_name === name);
    const chosen = recorded.filter((m) => version === undefined || m.model_version === version);
    const linking = (await this.getAllApps(true)).filter((a) => a.linked_models.includes(name)).map((a) => a.name);
    // An application serves its model's current version; the daemon also refuses to delete the last one.
    const takesServed = chosen.some((m) => m.is_current_version) || (chosen.length > 0 && chosen.length === recorded.length);
    const unlink = linking.length > 0 && takesServed;
    if (unlink && !force) {
      const what = chosen.length === recorded.length ? "every version" : `the current version (${chosen.find((m) => m.is_current_version)?.model_version})`;
      throw new ClipperError(
        "ADMIN_REJECTED",
        `refusing to delete ${what} of model '${name}': application${linking.length === 1 ? "" : "s"} ${linking.map((a) => `'${a}'`).join(", ")} link${linking.length === 1 ? "s" : ""} it`,
        "unlink it first (clipper unlink APP MODEL), set another version current, or pass --force to unlink it from them and delete",
      );
    }
    if (unlink) for (const app of linking) await this.unlinkModelFromApp(app, name);
    await this.manager.deleteModels({ [name]: version === undefined ? [] : [version] });
    for (const m of chosen) await this.write("/admin/delete_versioned_model", { model_name: name, model_version: m.model_version });
    if (chosen.length === 0) {
      throw new ClipperError("ADMIN_REJECTED", `model '${name}'${version === undefined ? "" : ` version '${version}'`} does not exist`);
    }
    return { model_name: name, deleted_versions: chosen.map((m) => m.model_version), unlinked_from: unlink ? linking : [] };
  }

  // --- queries ------------------------------------------------------------------------------

  /**
   * Sends a query to an application (`input` or `input_batch`) and returns status and JSON body.
   * `apiKey` is sent as `Authorization: Bearer` (needed when the frontends run with `--query-auth keys`).
   */
  async predict(
    app: string, body: { input: unknown } | { input_batch: unknown[] }, version?: string, options: { apiKey?: string } = {},
  ): Promise<PredictReply> {
    return this.postQuery(app, "predict", version === undefined ? body : { ...body, version }, options.apiKey);
  }

  /**
   * Sends feedback to an application (the query API's `/update`): the true `label` of `input` for
   * user `uid`, which learning policies (exp3, exp4) score their answer with. Resolves once the
   * frontend accepted it; a refusal (unknown application, bad input, 401/403) is QUERY_REJECTED.
   */
  async sendFeedback(app: string, feedback: Feedback, options: { apiKey?: string } = {}): Promise<{ feedback_accepted: true }> {
    const problem = feedbackProblem(feedback);
    if (problem) throw new ClipperError("USAGE", problem);
    const body = {
      uid: feedback.uid, input: feedback.input, label: feedback.label, ...(feedback.queryId === undefined ? {} : { query_id: feedback.queryId }),
    };
    const reply = await this.postQuery(app, "update", body, options.apiKey);
    if (reply.status !== 200) throw queryRejected(reply);
    return reply.body as { feedback_accepted: true };
  }

  /** POSTs a JSON body to `/<app>/<route>` on the query frontend; answers its status and JSON body. */
  private async postQuery(app: string, route: "predict" | "update", body: unknown, apiKey: string | undefined): Promise<PredictReply> {
    let res: FetchedText;
    try {
      res = await fetchText(`${this.getQueryAddr()}/${encodeURIComponent(app)}/${route}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
        body: JSON.stringify(body),
      }, 60_000);
    } catch (err) {
      throw new ClipperError("UNREACHABLE", `cannot reach the query frontend at ${this.getQueryAddr()}: ${err instanceof Error ? err.message : String(err)}`);
    }
    try {
      return { status: res.status, body: JSON.parse(res.text) as unknown };
    } catch {
      throw new ClipperError("QUERY_REJECTED", `the query frontend answered ${res.status} with a body that is not JSON: ${res.text.slice(0, 200)}`);
    }
  }
}

/** What `deployModel` did: the manager's account of the replicas, and the recorded warm-up inputs used. */
export type DeployedModel = DeployedReplicas & { warmupFromLog?: { app: string; inputs: number } };

/** What `replayQueries` replays, where, and how fast. */
export interface ReplayOptions {
  /** An exported query log (JSON lines), or the daemon's log of the application. */
  from: { file: string } | { log: true };
  /** The model version that answers (any version, current or not). */
  to: { name: string; version: string };
  /** Queries per second (default DEFAULT_REPLAY_RATE). */
  rate?: number;
  /** Send at most this many recorded queries (the first in the log, oldest first). */
  limit?: number;
  /** Queries awaiting an answer at once, at most (default DEFAULT_REPLAY_IN_FLIGHT). */
  maxInFlight?: number;
  /** Query API key, for frontends that run with `--query-auth keys`. */
  apiKey?: string;
  onProgress?: (progress: ReplayProgress) => void;
  /** Stops sending; the queries in flight are awaited and the report says `stopped`. */
  signal?: AbortSignal;
}

/** `NAME:V` (names never hold ':'), or a usage error. */
export function parseReplayTarget(text: string): { name: string; version: string } {
  const at = text.indexOf(":");
  const name = text.slice(0, at);
  const version = text.slice(at + 1);
  const problem = at < 0 ? `expected NAME:VERSION (such as m:2), got '${text}'` : nameProblem("model name", name) ?? nameProblem("model version", version);
  if (problem) throw new ClipperError("USAGE", problem);
  return { name, version };
}

/** A recorded-queries file as a stream of chunks; a file that cannot be read is a usage error. */
async function openRecordFile(file: string): Promise<AsyncIterable<Uint8Array>> {
  let handle: FileHandle;
  try {
    handle = await open(file, "r");
    if (!(await handle.stat()).isFile()) {
      await handle.close();
      throw new ClipperError("USAGE", `${file} is not a file`);
    }
  } catch (err) {
    if (err instanceof ClipperError) throw err;
    throw new ClipperError("USAGE", `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return handle.createReadStream();
}

/** One OIP inference; its outcome, never a rejection. */
async function sendOipQuery(url: string, headers: Record<string, string>, body: string): Promise<SendOutcome> {
  const started = performance.now();
  let res: FetchedText;
  try {
    res = await fetchText(url, { method: "POST", headers, body }, 60_000);
  } catch (err) {
    return { kind: "error", message: `no answer: ${err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err)}` };
  }
  const latencyMs = performance.now() - started;
  let answer: unknown;
  try {
    answer = JSON.parse(res.text);
  } catch {
    return { kind: "error", message: `${res.status}: ${res.text.slice(0, 200)}` };
  }
  if (res.status !== 200) {
    const error = (answer as { error?: unknown } | null)?.error;
    return { kind: "error", message: `${res.status}: ${typeof error === "string" ? error : res.text.slice(0, 200)}` };
  }
  const text = oipOutputText(answer);
  return text === undefined ? { kind: "error", message: `200 with an unexpected body: ${res.text.slice(0, 200)}` } : { kind: "output", text, latencyMs };
}

/** A gated rollout's settings (connection.startRollout); absent ones take the daemon's defaults. */
export interface RolloutOptions {
  steps?: number[];
  step_s?: number;
  min_queries?: number;
  max_p99_ms?: number;
  min_agreement?: number;
  max_default_rate?: number;
}
