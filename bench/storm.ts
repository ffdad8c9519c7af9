/**
 * Retry-storm benchmark (issue 13, target 1): a model with a fixed batch size of 1 and a known
 * capacity, and 64 closed-loop clients with a 100 ms SLO. A client that is answered with a default
 * output asks again at once, so every refusal the frontend answers instantly comes straight back:
 * the model must still be kept busy. The model's capacity is measured in the same run; then a CPU
 * profile of the frontend under the storm says where its time goes.
 * Writes docs/bench/storm.md and docs/bench/storm.svg.
 *
 *   npm run build && node dist/bench/storm.js   (needs /usr/bin/python3 with numpy and zmq)
 *
 * BENCH_BASELINE_FRONTEND=/other/build/dist/runtime/frontend/main.js adds the same storm against
 * another build's frontend (an older commit, say), in rounds interleaved with this build's.
 */
import { positiveEnv } from "./lib/env.js";
import { startBenchCluster, type BenchCluster } from "./lib/cluster.js";
import { distinctDoubles } from "./lib/body.js";
import { runLoad, warmUp, type LoadResult } from "./lib/load.js";
import { metricValue, scrape } from "./lib/metrics.js";
import { profileFrontend } from "./lib/profile.js";
import { barChartSvg, markdownTable, runContext, writeReport } from "./lib/report.js";

const COST_MS = 4;
const SLO_MS = 100;
const CONNECTIONS = 64;
const SECONDS = positiveEnv("BENCH_SECONDS", 10);

const model = { version: "1", file: "cost_model.py:predict", batchSize: 1, env: { BENCH_A_MS: String(COST_MS), BENCH_B_MS: "0" } };

interface Measured extends LoadResult {
  /** Mean time from sending a batch to reading its response, as the frontend measures it (ms). */
  batchMs: number;
}

/** A warmed-up load on one app's model, with the frontend's mean batch latency over the measured part. */
async function measured(cluster: BenchCluster, app: string, sloMs: number, connections: number, seconds: number): Promise<Measured> {
  await cluster.pythonModel(app, sloMs, { name: `cost-${app}`, ...model });
  const load = { url: cluster.queryUrl, path: `/${app}/predict`, connections, durationSec: seconds, body: distinctDoubles() };
  await warmUp(load, 3);
  const before = await scrape(cluster.queryUrl);
  const result = await runLoad(load);
  const after = await scrape(cluster.queryUrl);
  const labels = { model: `cost-${app}:1` };
  const d = (name: string) => metricValue(after, name, labels) - metricValue(before, name, labels);
  return { ...result, batchMs: (1000 * d("clipper_model_batch_latency_seconds_sum")) / Math.max(1, d("clipper_model_batch_latency_seconds_count")) };
}

const BASELINE = process.env.BENCH_BASELINE_FRONTEND;

/** The storm (64 clients that ask again as soon as any answer comes, a 100 ms SLO) on a fresh cluster. */
async function stormOn(frontendCommand?: string[]): Promise<Measured> {
  const cluster = await startBenchCluster({ cacheBytes: 0, frontendCommand });
  try {
    const storm = await measured(cluster, "storm", SLO_MS, CONNECTIONS, SECONDS);
    process.stdout.write(`storm${frontendCommand ? " (baseline)" : ""}: ${storm.modelRps.toFixed(0)} model answers/s, ${(storm.defaults / SECONDS).toFixed(0)} defaults/s\n`);
    return storm;
  } finally {
    await cluster.stop();
  }
}

let capacity: Measured;
const cluster = await startBenchCluster({ cacheBytes: 0 });
try {
  // Capacity: a few clients and a generous SLO keep the model busy without any default output.
  capacity = await measured(cluster, "capacity", 10_000, 4, SECONDS);
  process.stdout.write(`capacity: ${capacity.modelRps.toFixed(0)} answers/s\n`);
} finally {
  await cluster.stop();
}
const storms: Measured[] = [];
const baselines: Measured[] = [];
for (let round = 0; round < (BASELINE ? 2 : 1); round++) {
  storms.push(await stormOn());
  if (BASELINE) baselines.push(await stormOn([process.execPath, BASELINE]));
}
const storm = storms.reduce((a, b) => (b.modelRps < a.modelRps ? b : a));

// A separate, profiled storm: the profiler's own cost stays out of the figures above.
const profile = await profileFrontend((frontendCommand) => startBenchCluster({ cacheBytes: 0, frontendCommand }),
  (profiled) => measured(profiled, "storm", SLO_MS, CONNECTIONS, 5));

const percentOfCapacity = (r: LoadResult) => (100 * r.modelRps) / capacity.modelRps;
const share = percentOfCapacity(storm);
const stormRow = (name: string, r: Measured) =>
  [name, r.modelRps, `${percentOfCapacity(r).toFixed(0)}%`, r.defaults / SECONDS, r.p50, r.p99, r.batchMs];
writeReport("storm", [
  "# Retry-storm benchmark",
  "",
  runContext(`npm run build && ${BASELINE ? "BENCH_BASELINE_FRONTEND=<baseline build>/dist/runtime/frontend/main.js " : ""}node dist/bench/storm.js`),
  "",
  `A Python model with a fixed batch size of 1 and ${COST_MS} ms per query (bench/models/cost_model.py), one replica.`,
  `Its capacity is measured first with 4 clients and a generous SLO; then ${CONNECTIONS} closed-loop clients`,
  `(autocannon) ask with a ${SLO_MS} ms SLO, each asking again as soon as it has any answer, default outputs included.`,
  `${SECONDS} s each after a 3 s warm-up, in one run.`,
  "",
  markdownTable(["run", "model answers/s", "% of capacity", "default outputs/s", "p50 ms", "p99 ms", "batch send→response ms"], [
    ["capacity (4 clients, no SLO pressure)", capacity.modelRps, "100%", capacity.defaults / SECONDS, capacity.p50, capacity.p99, capacity.batchMs],
    ...storms.map((r, i) => stormRow(`storm: ${CONNECTIONS} clients, ${SLO_MS} ms SLO${BASELINE ? `, round ${i + 1}` : ""}`, r)),
    ...baselines.map((r, i) => stormRow(`same storm, baseline frontend, round ${i + 1}`, r)),
  ]),
  ...(BASELINE ? ["", `The baseline frontend is another build (\`BENCH_BASELINE_FRONTEND=${BASELINE.replace(/^.*?\/dist\//, ".../dist/")}\`), in rounds interleaved with this build's.`] : []),
  "",
  "The last column is the frontend's own measure of a batch round trip (`clipper_model_batch_latency_seconds`,",
  `mean): the model's ${COST_MS} ms plus the time for the replica to be scheduled and for the frontend to read its answer.`,
  "",
  `- model answers under the storm: **${share.toFixed(0)}%** of capacity (target ≥ 90%${storms.length > 1 ? "; the lower of this build's rounds" : ""}).`,
  `- A query refused at admission is answered at its deadline, not at once (runtime/frontend/model-caller.ts),`,
  `  so each client asks at most once per SLO: at most ${CONNECTIONS} / ${SLO_MS} ms = ${(CONNECTIONS * 1000) / SLO_MS} refusals a second here.`,
  "  Answered at once, the same clients asked ~10,000 times a second, the frontend and the load generator took",
  "  the machine's CPU, the model's round trip doubled and it answered about half its capacity: see",
  "  [../benchmarks.md](../benchmarks.md#retry-storm) for that run and why the other remedies were not chosen.",
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
    ...baselines.map((r, i) => ({ label: `baseline, round ${i + 1}`, value: r.modelRps, note: `${(r.defaults / SECONDS).toFixed(0)} defaults/s` })),
  ]),
});
