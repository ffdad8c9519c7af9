/**
 * Frontend benchmark: how close the query frontend comes to the ceiling of this machine, a bare
 * node:http server parsing the same JSON body, for cache hits and for distinct inputs through a
 * no-op Python model; then a CPU profile of the frontend under the distinct-input load.
 * Writes docs/bench/frontend.md and docs/bench/frontend.svg.
 *
 *   npm run build && node dist/bench/frontend.js   (needs /usr/bin/python3 with numpy and zmq)
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { distinctDoubles, startBenchCluster, type BenchCluster } from "./lib/cluster.js";
import { runLoad, warmUp, type LoadResult } from "./lib/load.js";
import { metricValue, scrape } from "./lib/metrics.js";
import { summarizeProfile } from "./lib/profile.js";
import { runtimeEntry } from "../runtime/shared/package-root.js";
import { barChartSvg, formatNumber, markdownTable, runContext, writeReport } from "./lib/report.js";

const CONNECTIONS = 32;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const FIXED_BODY = JSON.stringify({ input: [1, 2, 3, 4, 5, 6, 7, 8] });
const fixedBody = () => FIXED_BODY;

async function bareServer(): Promise<{ url: string; stop(): void }> {
  const entry = fileURLToPath(new URL("./servers/bare-http.js", import.meta.url));
  const child = spawn(process.execPath, [entry], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once("exit", () => reject(new Error("the bare server exited")));
  });
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill("SIGTERM") };
}

async function measure(url: string, path: string, body: () => string): Promise<LoadResult> {
  const load = { url, path, connections: CONNECTIONS, durationSec: SECONDS, body };
  await warmUp(load, 3);
  return runLoad(load);
}

async function noopCluster(frontendCommand?: string[]): Promise<BenchCluster> {
  const cluster = await startBenchCluster({ frontendCommand });
  await cluster.pythonModel("noop", 1000, { name: "noop", version: "1", file: "noop_model.py:predict" });
  return cluster;
}

const bare = await bareServer();
let ceiling: LoadResult;
try {
  ceiling = await measure(bare.url, "/noop/predict", fixedBody);
} finally {
  bare.stop();
}
process.stdout.write(`bare node:http: ${ceiling.rps.toFixed(0)}/s\n`);

const cluster = await noopCluster();
let hits: LoadResult;
let distinct: LoadResult;
let hitRatio = 0;
try {
  const before = await scrape(cluster.queryUrl);
  hits = await measure(cluster.queryUrl, "/noop/predict", fixedBody);
  const after = await scrape(cluster.queryUrl);
  const d = (name: string) => metricValue(after, name) - metricValue(before, name);
  const hitCount = d("clipper_cache_hits_total");
  hitRatio = hitCount / Math.max(1, hitCount + d("clipper_cache_misses_total"));
  process.stdout.write(`cache hits: ${hits.rps.toFixed(0)}/s (hit ratio ${hitRatio.toFixed(3)})\n`);
  distinct = await measure(cluster.queryUrl, "/noop/predict", distinctDoubles());
  process.stdout.write(`distinct inputs: ${distinct.rps.toFixed(0)}/s, p99 ${distinct.p99} ms\n`);
} finally {
  await cluster.stop();
}

// A separate, profiled run: the profiler's own cost stays out of the figures above.
const profileDir = mkdtempSync(join(tmpdir(), "clipper-prof-"));
const profiled = await noopCluster([process.execPath, "--cpu-prof", `--cpu-prof-dir=${profileDir}`, runtimeEntry("frontend/main.js")]);
let frontendPid = 0;
try {
  frontendPid = (await profiled.conn.inspectInstance()).components.find((c) => c.component === "frontend")?.pid ?? 0;
  await measure(profiled.queryUrl, "/noop/predict", distinctDoubles());
} finally {
  await profiled.stop();
}
const profileFile = readdirSync(profileDir).find((f) => f.includes(`.${frontendPid}.`));
const profile = profileFile ? summarizeProfile(join(profileDir, profileFile)) : undefined;
rmSync(profileDir, { recursive: true, force: true });

const rows: Array<[string, LoadResult]> = [["bare node:http (ceiling)", ceiling], ["frontend, cache hits", hits], ["frontend, distinct inputs, no-op model", distinct]];
const pct = (r: LoadResult) => (100 * r.rps) / ceiling.rps;
writeReport("frontend", [
  "# Frontend benchmark",
  "",
  runContext("npm run build && node dist/bench/frontend.js"),
  "",
  `${CONNECTIONS} concurrent clients (closed loop, autocannon), ${SECONDS} s per row after a 3 s warm-up. The ceiling`,
  "is a bare `node:http` server that reads and parses the same JSON body and answers a small JSON",
  "(bench/servers/bare-http.ts). Cache hits repeat one input; distinct inputs go through a no-op",
  "Python model (bench/models/noop_model.py), one replica, over RPC v3.",
  "",
  markdownTable(["server", "answers/s", "% of ceiling", "p50 ms", "p99 ms"],
    rows.map(([name, r]) => [name, r.rps, `${pct(r).toFixed(0)}%`, r.p50, r.p99])),
  "",
  `- cache hits: **${pct(hits).toFixed(0)}%** of the ceiling (target ≥ 80%); hit ratio during the run ${formatNumber(hitRatio)}`,
  `- distinct inputs: **${pct(distinct).toFixed(0)}%** of the ceiling (target ≥ 35%), p99 **${distinct.p99} ms** (target < 10 ms)`,
  "",
  "![answers per second](frontend.svg)",
  "",
  "## Where the time goes",
  "",
  profile
    ? [
      `A CPU profile of the frontend process (\`--cpu-prof\`, ${profile.totalSamples} samples) during a separate`,
      "distinct-input run, self time by area and by function:",
      "",
      markdownTable(["area", "% of samples"], profile.byArea.map((a) => [a.area, a.percent])),
      "",
      markdownTable(["function", "where", "% self"], profile.byFunction.map((f) => [`\`${f.name}\``, f.where, f.percent])),
    ].join("\n")
    : "(no profile was written: the frontend did not exit cleanly)",
  "",
].join("\n"), {
  "frontend.svg": barChartSvg(`Answers/s at ${CONNECTIONS} connections`, "/s",
    rows.map(([name, r]) => ({ label: name.replace(" (ceiling)", ""), value: r.rps, note: `p99 ${r.p99} ms` }))),
});
