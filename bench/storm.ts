/**
 * Retry-storm benchmark (issue 13, target 1): a model with a fixed batch size of 1 and a known
 * capacity, and 64 closed-loop clients with a 100 ms SLO. A client that is answered with a default
 * output asks again at once, so every refusal the frontend answers instantly comes straight back:
 * the model must still be kept busy. The model's capacity is measured in the same run; then a CPU
 * profile of the frontend under the storm says where its time goes.
 * Writes docs/bench/storm.md and docs/bench/storm.svg.
 *
 *   npm run build && node dist/bench/storm.js   (needs /usr/bin/python3 with numpy and zmq)
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { distinctDoubles, startBenchCluster, type BenchCluster } from "./lib/cluster.js";
import { runLoad, warmUp, type LoadResult } from "./lib/load.js";
import { summarizeProfile, type ProfileSummary } from "./lib/profile.js";
import { barChartSvg, markdownTable, runContext, writeReport } from "./lib/report.js";
import { runtimeEntry } from "../runtime/shared/package-root.js";

const COST_MS = 4;
const SLO_MS = 100;
const CONNECTIONS = 64;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);

const model = { version: "1", file: "cost_model.py:predict", batchSize: 1, env: { BENCH_A_MS: String(COST_MS), BENCH_B_MS: "0" } };

/** Capacity: a few clients and a generous SLO keep the model busy without any default output. */
async function capacityRun(cluster: BenchCluster): Promise<LoadResult> {
  await cluster.pythonModel("capacity", 10_000, { name: "cost-capacity", ...model });
  const load = { url: cluster.queryUrl, path: "/capacity/predict", connections: 4, durationSec: SECONDS, body: distinctDoubles() };
  await warmUp(load, 3);
  return runLoad(load);
}

/** The storm: 64 clients that ask again as soon as any answer comes, a 100 ms SLO. */
async function stormRun(cluster: BenchCluster, seconds = SECONDS): Promise<LoadResult> {
  await cluster.pythonModel("storm", SLO_MS, { name: "cost-storm", ...model });
  const load = { url: cluster.queryUrl, path: "/storm/predict", connections: CONNECTIONS, durationSec: seconds, body: distinctDoubles() };
  await warmUp(load, 3);
  return runLoad(load);
}

let capacity: LoadResult;
let storm: LoadResult;
const cluster = await startBenchCluster({ cacheBytes: 0 });
try {
  capacity = await capacityRun(cluster);
  process.stdout.write(`capacity: ${capacity.modelRps.toFixed(0)} answers/s\n`);
  storm = await stormRun(cluster);
  process.stdout.write(`storm: ${storm.modelRps.toFixed(0)} model answers/s, ${(storm.defaults / SECONDS).toFixed(0)} defaults/s\n`);
} finally {
  await cluster.stop();
}

// A separate, profiled storm: the profiler's own cost stays out of the figures above.
async function profiledStorm(): Promise<ProfileSummary | undefined> {
  const dir = mkdtempSync(join(tmpdir(), "clipper-prof-"));
  const profiled = await startBenchCluster({
    cacheBytes: 0, frontendCommand: [process.execPath, "--cpu-prof", `--cpu-prof-dir=${dir}`, runtimeEntry("frontend/main.js")],
  });
  let pid = 0;
  try {
    pid = (await profiled.conn.inspectInstance()).components.find((c) => c.component === "frontend")?.pid ?? 0;
    await stormRun(profiled, 5);
  } finally {
    await profiled.stop();
  }
  const file = readdirSync(dir).find((f) => f.includes(`.${pid}.`));
  const summary = file ? summarizeProfile(join(dir, file)) : undefined;
  rmSync(dir, { recursive: true, force: true });
  return summary;
}
const profile = await profiledStorm();

const share = (100 * storm.modelRps) / capacity.modelRps;
writeReport("storm", [
  "# Retry-storm benchmark",
  "",
  runContext("npm run build && node dist/bench/storm.js"),
  "",
  `A Python model with a fixed batch size of 1 and ${COST_MS} ms per query (bench/models/cost_model.py), one replica.`,
  `Its capacity is measured first with 4 clients and a generous SLO; then ${CONNECTIONS} closed-loop clients`,
  `(autocannon) ask with a ${SLO_MS} ms SLO, each asking again as soon as it has any answer, default outputs included.`,
  `${SECONDS} s each after a 3 s warm-up, in one run.`,
  "",
  markdownTable(["run", "model answers/s", "% of capacity", "default outputs/s", "p50 ms", "p99 ms"], [
    ["capacity (4 clients, no SLO pressure)", capacity.modelRps, "100%", capacity.defaults / SECONDS, capacity.p50, capacity.p99],
    [`storm: ${CONNECTIONS} clients, ${SLO_MS} ms SLO`, storm.modelRps, `${share.toFixed(0)}%`, storm.defaults / SECONDS, storm.p50, storm.p99],
  ]),
  "",
  `- model answers under the storm: **${share.toFixed(0)}%** of capacity (target ≥ 90%).`,
  "",
  "![model answers per second](storm.svg)",
  "",
  "## Where the frontend's time goes under the storm",
  "",
  profile ? [
    `CPU profile of the frontend (\`node --cpu-prof\`) during a separate 5 s storm: ${profile.totalSamples} samples.`,
    "",
    markdownTable(["area", "% of samples"], profile.byArea.map((a) => [a.area, a.percent])),
    "",
    markdownTable(["function", "where", "% self"], profile.byFunction.map((f) => [`\`${f.name}\``, f.where, f.percent])),
  ].join("\n") : "(no profile was written: the frontend did not exit cleanly)",
  "",
].join("\n"), {
  "storm.svg": barChartSvg(`Model answers/s, ${COST_MS} ms/query, batch size 1`, "/s", [
    { label: "capacity", value: capacity.modelRps },
    { label: `${CONNECTIONS}-client storm`, value: storm.modelRps, note: `${(storm.defaults / SECONDS).toFixed(0)} defaults/s` },
  ]),
});
