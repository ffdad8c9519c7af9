/** Summarizes a V8 .cpuprofile: self time by function and by area of the code, for "where the time goes". */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runtimeEntry } from "../../runtime/shared/package-root.js";
import type { BenchCluster } from "./cluster.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

export interface ProfileSummary {
  totalSamples: number;
  byFunction: Array<{ name: string; where: string; percent: number }>;
  byArea: Array<{ area: string; percent: number }>;
}

/** Which part of the system a frame belongs to. */
function area(url: string, fn: string): string {
  if (fn === "(idle)") return "idle (waiting for I/O)";
  if (fn === "(garbage collector)") return "garbage collection";
  if (fn === "(program)" || fn === "(root)") return "V8 / native (uncategorized)";
  if (url.includes("/runtime/frontend/")) return "frontend: query path (ours)";
  if (url.includes("/runtime/rpc/")) return "frontend: RPC codec and router (ours)";
  if (url.includes("/runtime/shared/")) return "frontend: input encoding, body reading (ours)";
  if (url.includes("zeromq")) return "zeromq binding";
  if (url.includes("prom-client")) return "prom-client";
  if (url.includes("pino")) return "logging";
  if (url.startsWith("node:_http") || url.startsWith("node:http")) return "node:http";
  if (url.startsWith("node:net") || url.startsWith("node:stream") || url.startsWith("node:internal/stream")) return "sockets and streams";
  if (url.startsWith("node:")) return "other Node internals";
  if (fn === "parse" || fn === "stringify") return "JSON";
  return url === "" ? "native builtins (JSON, Buffer, ...)" : "other";
}

export function summarizeProfile(path: string, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, "utf8")) as { nodes: ProfileNode[]; samples?: number[] };
  const hits = new Map<number, number>();
  for (const id of profile.samples ?? []) hits.set(id, (hits.get(id) ?? 0) + 1);
  const total = [...hits.values()].reduce((a, b) => a + b, 0) || 1;
  const fnTotals = new Map<string, { name: string; where: string; hits: number }>();
  const areaTotals = new Map<string, number>();
  for (const node of profile.nodes) {
    const h = hits.get(node.id) ?? node.hitCount ?? 0;
    if (h === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName || "(anonymous)";
    const where = url ? `${url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, "$1/")}:${lineNumber + 1}` : "";
    const key = `${name}@${where}`;
    const entry = fnTotals.get(key) ?? { name, where, hits: 0 };
    entry.hits += h;
    fnTotals.set(key, entry);
    const a = area(url, functionName);
    areaTotals.set(a, (areaTotals.get(a) ?? 0) + h);
  }
  return {
    totalSamples: total,
    byFunction: [...fnTotals.values()].sort((a, b) => b.hits - a.hits).slice(0, top)
      .map((e) => ({ name: e.name, where: e.where, percent: (100 * e.hits) / total })),
    byArea: [...areaTotals].sort((a, b) => b[1] - a[1]).map(([a, h]) => ({ area: a, percent: (100 * h) / total })),
  };
}

/** The processes of a bench cluster that can run under the profiler. */
export type ProfiledComponent = "frontend" | "management";

const ENTRIES: Record<ProfiledComponent, string> = { frontend: "frontend/main.js", management: "management/main.js" };

/**
 * Runs `load` on a cluster whose named components run under `node --cpu-prof`, and summarizes each
 * one's profile (undefined where none was written). A separate cluster, so the profiler's own cost
 * stays out of measured figures.
 */
export async function profileComponents<C extends ProfiledComponent>(
  components: readonly C[],
  start: (commands: Partial<Record<ProfiledComponent, string[]>>) => Promise<BenchCluster>,
  load: (cluster: BenchCluster) => Promise<unknown>,
): Promise<Record<C, ProfileSummary | undefined>> {
  const dir = mkdtempSync(join(tmpdir(), "clipper-prof-"));
  try {
    const commands = Object.fromEntries(components.map((c) =>
      [c, [process.execPath, "--cpu-prof", `--cpu-prof-dir=${dir}`, runtimeEntry(ENTRIES[c])]]));
    const profiled = await start(commands);
    const pids = new Map<C, number>();
    try {
      const running = (await profiled.conn.inspectInstance()).components;
      for (const c of components) pids.set(c, running.find((r) => r.component === c)?.pid ?? 0);
      await load(profiled);
    } finally {
      await profiled.stop();
    }
    const files = readdirSync(dir);
    const summaries = {} as Record<C, ProfileSummary | undefined>;
    for (const c of components) {
      const file = files.find((f) => f.includes(`.${pids.get(c)}.`));
      summaries[c] = file ? summarizeProfile(join(dir, file)) : undefined;
    }
    return summaries;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** profileComponents for the query frontend alone. */
export async function profileFrontend(
  start: (frontendCommand: string[]) => Promise<BenchCluster>,
  load: (cluster: BenchCluster) => Promise<unknown>,
): Promise<ProfileSummary | undefined> {
  return (await profileComponents(["frontend"], (commands) => start(commands.frontend!), load)).frontend;
}
