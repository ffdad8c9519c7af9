/**
 * Where an admin write's cost lands (issue 16 §1): the control-plane benchmark's query load and
 * probe writes at 100/s, with the management daemon and the frontend (its primary and workers) under
 * `node --cpu-prof`, then each process's profile summarized (self time by function and by area).
 * A profiled cluster of its own, so the profiler's cost stays out of measured figures.
 *
 *   npm run build && flock /tmp/clipper-bench.lock node dist/bench/control-plane-profile.js
 *
 * BENCH_SECONDS (default 8), BENCH_QUERY_RATE (500/s), BENCH_WRITE_RATE (100/s; 0 profiles the query load alone).
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { positiveEnv } from "./lib/env.js";
import { startBenchCluster } from "./lib/cluster.js";
import { distinctDoubles } from "./lib/body.js";
import { runOpenLoop } from "./lib/open-loop.js";
import { summarizeProfile } from "./lib/profile.js";
import { prepareProbes, writeAtRate } from "./lib/admin-writes.js";
import { runtimeEntry } from "../runtime/shared/package-root.js";

const SECONDS = positiveEnv("BENCH_SECONDS", 8);
const QUERY_RATE = positiveEnv("BENCH_QUERY_RATE", 500);
const WRITE_RATE = Number(process.env.BENCH_WRITE_RATE ?? 100);

const dir = mkdtempSync(join(tmpdir(), "clipper-prof-"));
const profiled = (entry: string) => [process.execPath, "--cpu-prof", `--cpu-prof-dir=${dir}`, runtimeEntry(entry)];
const cluster = await startBenchCluster({
  cacheBytes: 0, frontendWorkers: 2, frontendCommand: profiled("frontend/main.js"), managementCommand: profiled("management/main.js"),
});
let roles = new Map<number, string>();
try {
  const { admin, probes } = await prepareProbes(cluster);
  const status = await cluster.conn.inspectInstance();
  roles = new Map(status.components.map((c) => [c.pid ?? 0, c.component === "frontend" ? "frontend primary" : c.component]));
  const load = { url: cluster.queryUrl, path: "/hot/predict", rate: QUERY_RATE, durationSec: SECONDS, body: distinctDoubles() };
  await runOpenLoop({ ...load, durationSec: 2 }); // warm-up
  const writes = WRITE_RATE > 0 ? writeAtRate(probes, WRITE_RATE, Math.round(WRITE_RATE * SECONDS), () => {}) : Promise.resolve();
  const result = await runOpenLoop(load);
  await writes;
  admin.close();
  process.stdout.write(`query p99 ${result.p99} ms, ${WRITE_RATE} writes/s\n`);
} finally {
  await cluster.stop();
}
for (const file of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))) {
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
  const pid = Number(/^CPU\.\d+\.\d+\.(\d+)\./.exec(file)?.[1]);
  const summary = summarizeProfile(join(dir, file), 40);
  process.stdout.write(`\n## ${roles.get(pid) ?? "frontend worker"} (pid ${pid}, ${summary.totalSamples} samples)\n`);
  for (const a of summary.byArea) process.stdout.write(`  ${a.percent.toFixed(1).padStart(5)}%  ${a.area}\n`);
  process.stdout.write("  --\n");
  for (const f of summary.byFunction) process.stdout.write(`  ${f.percent.toFixed(1).padStart(5)}%  ${f.name}  ${f.where}\n`);
}
rmSync(dir, { recursive: true, force: true });
