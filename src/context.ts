/**
 * The CLI's memory of which cluster to talk to, like kubectl's kubeconfig context:
 * `$CLIPPER_HOME/context.json` records each started cluster's manager and addresses, and which is
 * current, so later commands need no ports.
 */
import { own } from "../runtime/shared/dict.js";
import { mkdirSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../runtime/shared/atomic-file.js";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import { ClipperError } from "./errors.js";

/** `$CLIPPER_HOME`, else `~/.clipper`: where contexts and clusters keep their files. */
export function clipperHome(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.CLIPPER_HOME?.trim();
  return configured ? resolve(configured) : join(homedir(), ".clipper");
}

const ContextEntrySchema = z.object({
  cluster: z.string(),
  manager: z.enum(["local", "docker", "kubernetes"]),
  queryUrl: z.string(),
  managementUrl: z.string(),
  rpcAddress: z.string(),
  metricsUrl: z.string(),
  token: z.string().optional(),
  applicationQueryUrls: z.array(z.string()).optional(),
  kubernetes: z.object({ kubeconfig: z.string().optional(), context: z.string().optional(), namespace: z.string() }).optional(),
  registry: z.string().optional(),
});
export type ContextEntry = z.infer<typeof ContextEntrySchema>;

const ContextFileSchema = z.object({
  current: z.string().nullable(),
  clusters: z.record(z.string(), ContextEntrySchema),
});
type ContextFile = z.infer<typeof ContextFileSchema>;

function contextPath(home: string): string {
  return join(home, "context.json");
}

export function readContext(home = clipperHome()): ContextFile {
  let raw: string;
  try {
    raw = readFileSync(contextPath(home), "utf8");
  } catch {
    return { current: null, clusters: {} };
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    json = undefined; // reported below, as any other invalid file
  }
  const parsed = ContextFileSchema.safeParse(json);
  if (!parsed.success) {
    throw new ClipperError("NO_CLUSTER", `${contextPath(home)} is not a valid context file`, "delete it and run `clipper start` again");
  }
  return parsed.data;
}

function writeContext(home: string, context: ContextFile): void {
  mkdirSync(home, { recursive: true });
  writeFileAtomic(contextPath(home), `${JSON.stringify(context, null, 2)}\n`);
}

/** Records a started cluster and makes it current. */
export function saveCluster(entry: ContextEntry, home = clipperHome()): void {
  const context = readContext(home);
  context.clusters[entry.cluster] = entry;
  context.current = entry.cluster;
  writeContext(home, context);
}

export function forgetCluster(cluster: string, home = clipperHome()): void {
  const context = readContext(home);
  delete context.clusters[cluster];
  if (context.current === cluster) context.current = Object.keys(context.clusters)[0] ?? null;
  writeContext(home, context);
}

/** The named cluster's entry, or the current one. */
export function findCluster(cluster: string | undefined, home = clipperHome()): ContextEntry | undefined {
  const context = readContext(home);
  const name = cluster ?? context.current;
  return name === null ? undefined : own(context.clusters, name);
}
