/**
 * What the Docker manager writes on what it creates, and the names it gives things. Labels are
 * ownership: everything carries `ai.clipper.container.label=<cluster>`, and every lookup and every
 * removal goes through that label, never through a name pattern. The deployment of a model version
 * travels in a JSON label so that another process (a new CLI invocation) can scale it.
 */
import { z } from "zod";
import { INPUT_TYPES } from "../../../runtime/shared/input-types.js";
import { MODEL_FRAMEWORKS, type GpuRequest, type ModelDeployment, type ModelFramework } from "../container-manager.js";
import { LABEL } from "../cluster-spec.js";

export {
  clusterLabels,
  INTERNAL_PORTS,
  LABEL,
  modelContainerLabel,
  STATE_DIR,
  TOKEN_DIR,
  TOKEN_FILE,
  type Role,
} from "../cluster-spec.js";

export const names = {
  network: (cluster: string) => `clipper-${cluster}`,
  volume: (cluster: string) => `clipper-${cluster}-state`,
  management: (cluster: string) => `clipper-${cluster}-management`,
  frontend: (cluster: string) => `clipper-${cluster}-query-frontend`,
  autoscaler: (cluster: string) => `clipper-${cluster}-autoscaler`,
  replica: (cluster: string, name: string, version: string, replica: number) => `clipper-${cluster}-${name}-${version}-${replica}`,
  deployment: (cluster: string, name: string, version: string) => `clipper-${cluster}-${name}-${version}-deployment`,
};

/** The component name a user passes to `logs` (the same names the local manager uses). */
export function componentOf(labels: Record<string, string> | undefined): string | undefined {
  switch (labels?.[LABEL.role]) {
    case "management":
      return "management";
    case "query_frontend":
      return "frontend";
    case "autoscaler":
      return "autoscaler";
    case "model": {
      const name = labels[LABEL.modelName];
      const version = labels[LABEL.modelVersion];
      const replica = labels[LABEL.replica];
      return name && version && replica !== undefined ? `${name}-${version}-${replica}` : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * On a deployment record (role model_deployment): the version's desired replica count, which
 * survives `stopAll({keepState})` so that start brings the replicas back, and the record's
 * generation, which tells the newest record when an update was cut short (docker-manager.ts).
 */
export const RECORD_LABEL = {
  replicas: "ai.clipper.deployment.replicas",
  generation: "ai.clipper.deployment.generation",
} as const;

/** A record's count or generation label as a number (0 when absent or unreadable). */
export function recordNumber(labels: Record<string, string>, key: string): number {
  const value = Number(labels[key]);
  return Number.isSafeInteger(value) && value >= 0 ? value : 0;
}

/** What a model version's replicas need, as kept in the `ai.clipper.deployment` label. */
export interface StoredDeployment {
  name: string;
  version: string;
  inputType: ModelDeployment["inputType"];
  framework?: ModelFramework;
  image: string;
  env?: Record<string, string>;
  gpu?: GpuRequest;
}

const StoredDeploymentSchema = z.object({
  name: z.string().min(1),
  version: z.string().min(1),
  inputType: z.enum(INPUT_TYPES),
  /** Absent for a prebuilt image deployed without one (it brings its own runtime). */
  framework: z.enum(MODEL_FRAMEWORKS).optional(),
  image: z.string().min(1),
  env: z.record(z.string(), z.string()).optional(),
  gpu: z
    .union([
      z.object({ count: z.union([z.number().int().positive(), z.literal("all")]) }),
      z.object({ deviceIds: z.array(z.string()).min(1) }),
    ])
    .optional(),
});

export function storedDeployment(d: ModelDeployment & { image: string }): StoredDeployment {
  return {
    name: d.name,
    version: d.version,
    inputType: d.inputType,
    ...(d.framework ? { framework: d.framework } : {}),
    image: d.image,
    ...(d.env && Object.keys(d.env).length ? { env: { ...d.env } } : {}),
    ...(d.gpu ? { gpu: d.gpu } : {}),
  };
}

/** The deployment recorded in a container's labels; undefined when absent or unreadable. */
export function readStoredDeployment(labels: Record<string, string> | undefined): StoredDeployment | undefined {
  const text = labels?.[LABEL.deployment];
  if (!text) return undefined;
  try {
    const parsed = StoredDeploymentSchema.safeParse(JSON.parse(text));
    return parsed.success ? (parsed.data as StoredDeployment) : undefined;
  } catch {
    return undefined;
  }
}
