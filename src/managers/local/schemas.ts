/**
 * The shapes exchanged between the local manager and its supervisor: the files in the cluster
 * directory and the bodies and answers of the supervisor's control API. Validated with zod on read.
 */
import { isAbsolute } from "node:path";
import { z } from "zod";
import { INPUT_TYPES } from "../../../runtime/shared/input-types.js";
import { nameProblem } from "../../../runtime/shared/names.js";
import { hostnameOf } from "../../../runtime/shared/host-check.js";
import { MAX_FRONTEND_WORKERS } from "../../../runtime/shared/frontend-defaults.js";
import { QUERY_AUTH_MODES } from "../../../runtime/shared/api-keys.js";
import { RPC_AUTH_MODES } from "../../../runtime/shared/rpc-auth.js";
import { MAX_MAX_IN_FLIGHT, MIN_RPC_FRAME_BYTES } from "../../../runtime/shared/frontend-defaults.js";
import { MAX_MAX_CONNECTIONS } from "../../../runtime/shared/connection-limit.js";
import {
  ENV_NAME_PATTERN,
  MODEL_FRAMEWORKS,
  type ClusterAddresses,
  type ClusterOptions,
  type ComponentStatus,
  type LogSource,
  type RuntimeDeployment,
  type ReplicaStatus,
} from "../container-manager.js";
import { MAX_REPLICAS } from "../common/replicas.js";
import { STOP_GRACE_SECONDS } from "../common/stop-grace.js";

const nameOf = (kind: string) =>
  z.string().superRefine((value, ctx) => {
    const problem = nameProblem(kind, value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

export const ModelNameSchema = nameOf("model name");
export const ModelVersionSchema = nameOf("model version");
export const ClusterNameSchema = nameOf("cluster name");

const absolutePath = (what: string) =>
  z.string().min(1).refine(isAbsolute, { message: `${what} must be an absolute path` });

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

export const ModelDeploymentSchema = z.strictObject({
  name: ModelNameSchema,
  version: ModelVersionSchema,
  inputType: z.enum(INPUT_TYPES),
  framework: z.enum(MODEL_FRAMEWORKS),
  predictFile: absolutePath("predictFile"),
  predictFunction: z.string().regex(IDENTIFIER, { message: "predictFunction must be an identifier" }),
  modelPath: absolutePath("modelPath"),
  python: z.string().min(1).optional(),
  env: z
    .record(z.string().regex(ENV_NAME_PATTERN, { message: "environment variable names must match [A-Za-z_][A-Za-z0-9_]*" }), z.string())
    .optional(),
  /** Images are for the Docker and Kubernetes managers; local processes run the predict file itself. */
  image: z.string().min(1).optional(),
  gpu: z.union([
    z.strictObject({ count: z.union([z.number().int().positive(), z.literal("all")]) }),
    z.strictObject({ deviceIds: z.array(z.string().regex(/^[\w-]+$/)).min(1) }),
  ]).optional(),
}) satisfies z.ZodType<RuntimeDeployment>;

const port = z.number().int().min(1).max(65535);

export const ClusterOptionsSchema = z.object({
  cluster: ClusterNameSchema,
  host: z.string().min(1),
  queryPort: port,
  managementPort: port,
  rpcPort: port,
  frontendWorkers: z.number().int().min(1).max(MAX_FRONTEND_WORKERS).optional(),
  maxBodyBytes: z.number().int().positive(),
  maxConnections: z.number().int().min(1).max(MAX_MAX_CONNECTIONS).optional(),
  startupTimeoutMs: z.number().int().positive(),
  replicaTimeoutMs: z.number().int().positive(),
  cacheBytes: z.number().int().nonnegative().optional(),
  maxBatch: z.number().int().positive().optional(),
  maxInFlight: z.number().int().min(1).max(MAX_MAX_IN_FLIGHT).optional(),
  batchBudgetMs: z.number().int().positive().optional(),
  admission: z.boolean().optional(),
  oipTimeoutMs: z.number().int().positive().optional(),
  allowedHosts: z.array(z.string().refine((h) => h === "*" || hostnameOf(h) !== undefined, { message: "allowedHosts entries must be hostnames or '*'" })).optional(),
  queryAuth: z.enum(QUERY_AUTH_MODES).optional(),
  rpcAuth: z.enum(RPC_AUTH_MODES).optional(),
  maxRpcFrameBytes: z.number().int().min(MIN_RPC_FRAME_BYTES).optional(),
  autoscaler: z.boolean().optional(),
}) satisfies z.ZodType<ClusterOptions>;

/**
 * Replaces the program (and leading arguments) run for a kind of component; the usual flags and
 * environment are still added. Meant for tests and development only.
 */
export const ComponentCommandsSchema = z.strictObject({
  management: z.array(z.string().min(1)).min(1).optional(),
  frontend: z.array(z.string().min(1)).min(1).optional(),
  python: z.array(z.string().min(1)).min(1).optional(),
  node: z.array(z.string().min(1)).min(1).optional(),
});
export type ComponentCommands = z.infer<typeof ComponentCommandsSchema>;

export const RestartPolicySchema = z.strictObject({
  initialDelayMs: z.number().int().positive(),
  maxDelayMs: z.number().int().positive(),
  /** A child that ran this long before exiting restarts after the initial delay again. */
  resetAfterMs: z.number().int().positive(),
});
export type RestartPolicy = z.infer<typeof RestartPolicySchema>;

export const DEFAULT_RESTART_POLICY: RestartPolicy = { initialDelayMs: 250, maxDelayMs: 10_000, resetAfterMs: 30_000 };
/** Long enough for a replica to drain (common/stop-grace.ts). */
export const DEFAULT_STOP_GRACE_MS = STOP_GRACE_SECONDS * 1000;

/** What the manager hands the supervisor (a JSON file named on its command line). */
export const SupervisorConfigSchema = z.strictObject({
  cluster: ClusterNameSchema,
  clusterDir: absolutePath("clusterDir"),
  options: ClusterOptionsSchema,
  tokenFile: absolutePath("tokenFile").optional(),
  python: z.string().min(1).optional(),
  stopGraceMs: z.number().int().positive().default(DEFAULT_STOP_GRACE_MS),
  restartPolicy: RestartPolicySchema.partial().optional(),
  componentCommands: ComponentCommandsSchema.optional(),
});
export type SupervisorConfig = z.input<typeof SupervisorConfigSchema>;

export const AddressesSchema = z.object({
  cluster: z.string(),
  manager: z.literal("local"),
  queryUrl: z.string(),
  managementUrl: z.string(),
  rpcAddress: z.string(),
  metricsUrl: z.string(),
});

/** supervisor.json: how to find a running supervisor. */
export const SupervisorRecordSchema = z.object({
  pid: z.number().int().positive(),
  controlPort: port,
  controlToken: z.string().min(16),
  cluster: z.string(),
  addresses: AddressesSchema,
  tokenFile: z.string().optional(),
  startedAt: z.string(),
});
export type SupervisorRecord = z.infer<typeof SupervisorRecordSchema>;

export const DeploymentEntrySchema = z.object({
  deployment: ModelDeploymentSchema,
  replicas: z.number().int().min(0),
});
export type DeploymentEntry = z.infer<typeof DeploymentEntrySchema>;

/** deployments.json: the desired replicas per model version, restored when a supervisor starts. */
export const DeploymentsFileSchema = z.object({
  version: z.literal(1),
  deployments: z.array(DeploymentEntrySchema),
});

/** children.json: the live child processes, so leftovers of a supervisor that died can be stopped. */
export const ChildrenFileSchema = z.object({
  supervisorPid: z.number().int().positive(),
  children: z.array(z.object({ component: z.string(), pid: z.number().int().positive(), argv: z.array(z.string()) })),
});
export type ChildrenFile = z.infer<typeof ChildrenFileSchema>;

// ---- control API bodies ----------------------------------------------------------------------

const replicaCount = z.number().int().min(0).max(MAX_REPLICAS);

/** POST /deployments */
export const SetDeploymentBodySchema = z.strictObject({ deployment: ModelDeploymentSchema, replicas: replicaCount });
/** POST /deployments/replicas */
export const SetReplicasBodySchema = z.strictObject({
  name: ModelNameSchema,
  version: ModelVersionSchema,
  replicas: replicaCount,
});
/** POST /models/stop and POST /models/delete: {name: [versions]} ([] = every version). */
export const StopModelsBodySchema = z.strictObject({ models: z.record(ModelNameSchema, z.array(ModelVersionSchema)) });
/** POST /shutdown */
export const ShutdownBodySchema = z.strictObject({ keepState: z.boolean().optional() });

// ---- control API answers ---------------------------------------------------------------------

export interface LastExit {
  code: number | null;
  signal: string | null;
  /** Set when the process could not be started at all (e.g. the program does not exist). */
  error?: string;
  at: string;
}

export interface ProcessReport extends ComponentStatus {
  logFile: string;
  startedAt?: string;
  lastExit?: LastExit;
}

export interface ReplicaReport extends ReplicaStatus {
  component: string;
  logFile: string;
  /** The replica wrote its CLIPPER_READY_FILE. */
  ready: boolean;
  startedAt?: string;
  lastExit?: LastExit;
}

export interface DeploymentReport {
  name: string;
  version: string;
  framework: RuntimeDeployment["framework"];
  replicas: number;
}

export interface StatusResponse {
  cluster: string;
  supervisorPid: number;
  addresses: Omit<ClusterAddresses, "token">;
  components: ProcessReport[];
  replicas: ReplicaReport[];
  deployments: DeploymentReport[];
}

export interface DeploymentsResponse {
  deployments: DeploymentEntry[];
}

export interface StoppedResponse {
  stopped: { name: string; version: string }[];
}

export interface LogsResponse {
  logs: LogSource[];
}

/** Formats zod issues as one line. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => (issue.path.length ? `${issue.path.join(".")}: ${issue.message}` : issue.message))
    .join("; ");
}
