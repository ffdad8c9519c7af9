/**
 * The autoscaler host of the Docker and Kubernetes managers: the same AutoscaleLoop the local
 * manager's supervisor runs, in a process of its own that holds the credential to scale (the Docker
 * engine socket, or the Kubernetes scale permission of its ServiceAccount) and nothing else. The
 * manager that starts the cluster runs it as a container or a Deployment (docs/autoscaling.md) and
 * configures it through the environment, checked here before anything runs.
 */
import { z } from "zod";
import { readTokenFile } from "../../runtime/shared/runtime-flags.js";
import { nameProblem } from "../../runtime/shared/names.js";
import { AdminClient } from "../admin-client.js";
import { DockerContainerManager } from "../managers/docker/docker-manager.js";
import type { DockerEngine } from "../managers/docker/engine.js";
import { KubernetesContainerManager } from "../managers/kubernetes/kubernetes-manager.js";
import { AdminAutoscaleSource } from "./admin-source.js";
import { AutoscaleLoop, DEFAULT_AUTOSCALE_INTERVAL_MS, type Scaler } from "./loop.js";

/** The environment variables the host reads (the managers write the same names). */
export const HOST_ENV = {
  adminUrl: "CLIPPER_ADMIN_URL",
  tokenFile: "CLIPPER_ADMIN_TOKEN_FILE",
  cluster: "CLIPPER_CLUSTER",
  manager: "CLIPPER_MANAGER",
  namespace: "CLIPPER_NAMESPACE",
  intervalMs: "CLIPPER_AUTOSCALE_INTERVAL_MS",
} as const;

const httpUrl = z.string().url().refine((u) => /^https?:$/.test(new URL(u).protocol), "must be an http(s) URL");
const cluster = z.string().superRefine((value, ctx) => {
  const problem = nameProblem("cluster name", value);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});
const common = {
  adminUrl: httpUrl,
  tokenFile: z.string().min(1).optional(),
  cluster,
  intervalMs: z.string().regex(/^\d+$/, "must be a whole number of milliseconds").transform(Number)
    .pipe(z.number().int().min(100).max(60_000)).optional(),
};

const HostConfigSchema = z.discriminatedUnion("manager", [
  z.object({ manager: z.literal("docker"), ...common }),
  z.object({
    manager: z.literal("kubernetes"),
    ...common,
    namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a Kubernetes namespace name").max(63),
  }),
]);

export type HostConfig = z.infer<typeof HostConfigSchema>;

export class HostConfigError extends Error {}

/** The host's configuration from its environment; a missing or bad variable is named in the error. */
export function hostConfigFromEnv(env: NodeJS.ProcessEnv): HostConfig {
  const raw = Object.fromEntries(Object.entries(HOST_ENV).flatMap(([key, name]) => (env[name] === undefined ? [] : [[key, env[name]]])));
  const parsed = HostConfigSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => {
    const key = String(i.path[0] ?? "manager") as keyof typeof HOST_ENV;
    return `${HOST_ENV[key] ?? key}: ${key === "manager" ? "must be docker or kubernetes" : i.message}`;
  });
  throw new HostConfigError(`invalid autoscaler environment: ${issues.join("; ")}`);
}

export interface HostDeps {
  /** Kubernetes: a kubeconfig file naming the API server to scale through (default: in-cluster, from the pod's ServiceAccount). */
  kubeconfig?: string;
  /** Docker: the engine to scale through (default: dockerode on the mounted socket). */
  engine?: DockerEngine;
  log: (level: "info" | "warn", message: string, fields?: Record<string, unknown>) => void;
}

/**
 * The replica calls of the cluster's manager. On Kubernetes the scale subresource is set and the
 * rollout is not waited for: the controller waits for replicas to connect itself, and a loop
 * blocked on one version's rollout would decide nothing for the others.
 */
async function hostScaler(config: HostConfig, deps: HostDeps): Promise<Scaler> {
  if (config.manager === "docker") {
    return new DockerContainerManager({ cluster: config.cluster, ...(deps.engine ? { engine: deps.engine } : {}) });
  }
  // Outside a pod the in-cluster configuration would point at "undefined:undefined".
  if (!deps.kubeconfig && !process.env.KUBERNETES_SERVICE_HOST) {
    throw new HostConfigError("CLIPPER_MANAGER=kubernetes runs in a pod: KUBERNETES_SERVICE_HOST is not set, so there is no in-cluster API server");
  }
  const manager = await KubernetesContainerManager.create({
    cluster: config.cluster, namespace: config.namespace, ...(deps.kubeconfig ? { kubeconfig: deps.kubeconfig } : { inCluster: true }),
  });
  return {
    getNumReplicas: (name, version) => manager.getNumReplicas(name, version),
    setNumReplicas: (name, version, replicas) => manager.requestReplicas(name, version, replicas),
  };
}

/** Starts the loop for the configured cluster; `stop` ends it with no scale after it resolves. */
export async function startAutoscalerHost(config: HostConfig, deps: HostDeps): Promise<AutoscaleLoop> {
  const token = readTokenFile(config.tokenFile, HOST_ENV.tokenFile);
  const admin = new AdminClient({ managementUrl: config.adminUrl, timeoutMs: 5_000, ...(token ? { token } : {}) });
  const loop = new AutoscaleLoop({
    source: new AdminAutoscaleSource(admin),
    scaler: await hostScaler(config, deps),
    intervalMs: config.intervalMs ?? DEFAULT_AUTOSCALE_INTERVAL_MS,
    log: (message, fields) => deps.log("warn", message, fields),
  });
  loop.start();
  deps.log("info", "autoscaler running", {
    cluster: config.cluster, manager: config.manager, adminUrl: config.adminUrl,
    ...(config.manager === "kubernetes" ? { namespace: config.namespace } : {}),
  });
  return loop;
}
