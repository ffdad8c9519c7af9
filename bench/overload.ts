/**
 * Overload benchmark: a model with a fixed batch size of 1 and a known capacity, offered about twice
 * that capacity (open loop) with a 100 ms SLO. Deadline-aware admission should keep the model busy
 * with queries that can still make their deadline, instead of spending it on answers that arrive too
 * late (Clipper's collapse). Writes docs/bench/overload.md and docs/bench/overload.svg.
 *
 *   npm run build && node dist/bench/overload.js   (needs /usr/bin/python3 with numpy and zmq)
 */
import { positiveEnv } from "./lib/env.js";
import { startBenchCluster, type BenchCluster } from "./lib/cluster.js";
import { distinctDoubles } from "./lib/body.js";
import { runLoad, warmUp, type LoadResult } from "./lib/load.js";
import { runOpenLoop } from "./lib/open-loop.js";
import { barChartSvg, markdownTable, runContext, writeReport } from "./lib/report.js";

const COST_MS = 4;
const SLO_MS = 100;
const SECONDS = positiveEnv("BENCH_SECONDS", 10);

const model = { version: "1", file: "cost_model.py:predict", batchSize: 1, env: { BENCH_A_MS: String(COST_MS), BENCH_B_MS: "0" } };

/** Offers `rate` queries/s to a fresh app on the cluster, open loop, after a warm-up. */
async function overloadRun(cluster: BenchCluster, app: string, rate: number): Promise<LoadResult> {
  await cluster.pythonModel(app, SLO_MS, { name: `cost-${app}`, ...model });
  const load = { url: cluster.queryUrl, path: `/${app}/predict`, rate, durationSec: SECONDS, body: distinctDoubles() };
  await runOpenLoop({ ...load, durationSec: 3 });
  return runOpenLoop(load);
}

let capacity: LoadResult;
let overload: LoadResult;
let withoutAdmission: LoadResult;
let offered = 0;
const cluster = await startBenchCluster({ cacheBytes: 0 });
try {
  // Capacity: a few clients and a generous SLO keep the model busy without any default output.
  await cluster.pythonModel("capacity", 10_000, { name: "cost-capacity", ...model });
  const capLoad = { url: cluster.queryUrl, path: "/capacity/predict", connections: 4, durationSec: SECONDS, body: distinctDoubles() };
  await warmUp(capLoad, 3);
  capacity = await runLoad(capLoad);
  process.stdout.write(`capacity: ${capacity.modelRps.toFixed(0)} answers/s\n`);
  offered = Math.round(2 * capacity.modelRps);
  overload = await overloadRun(cluster, "overload", offered);
  process.stdout.write(`overload at ${offered}/s: ${overload.modelRps.toFixed(0)} model answers/s\n`);
} finally {
  await cluster.stop();
}
// The same offered load on a cluster started with --no-admission: Clipper's behaviour.
const clipperLike = await startBenchCluster({ cacheBytes: 0, admission: false });
try {
  withoutAdmission = await overloadRun(clipperLike, "overload", offered);
  process.stdout.write(`without admission: ${withoutAdmission.modelRps.toFixed(0)} model answers/s\n`);
} finally {
  await clipperLike.stop();
}

const share = (100 * overload.modelRps) / capacity.modelRps;
writeReport("overload", [
  "# Overload benchmark",
  "",
  runContext("npm run build && node dist/bench/overload.js"),
  "",
  `A Python model with a fixed batch size of 1 and ${COST_MS} ms per query (bench/models/cost_model.py), one replica.`,
  `Its capacity is measured first with 4 clients and a generous SLO (closed loop, autocannon); then it is offered`,
  `twice that rate with a ${SLO_MS} ms SLO by an open-loop generator (evenly spaced requests, latency from each`,
  `request's scheduled start: bench/lib/open-loop.ts), ${SECONDS} s each after a 3 s warm-up.`,
  "",
  markdownTable(["run", "offered/s", "model answers/s", "default outputs/s", "p50 ms", "p99 ms"], [
    ["capacity (4 clients, no SLO pressure)", "closed loop", capacity.modelRps, capacity.defaults / SECONDS, capacity.p50, capacity.p99],
    [`2× capacity, ${SLO_MS} ms SLO`, offered, overload.modelRps, overload.defaults / SECONDS, overload.p50, overload.p99],
    [`2× capacity, ${SLO_MS} ms SLO, \`--no-admission\``, offered, withoutAdmission.modelRps, withoutAdmission.defaults / SECONDS, withoutAdmission.p50, withoutAdmission.p99],
  ]),
  "",
  `- model answers under overload: **${share.toFixed(0)}%** of capacity (target ≥ 90%). The rest of the offered`,
  "  queries are refused at admission without taking model time, and get the default output at their deadline",
  "  (not at once: an instant refusal feeds a retry storm, [storm.md](storm.md)).",
  `- Without admission (\`--no-admission\`, Clipper's behaviour) the model answered **${((100 * withoutAdmission.modelRps) / capacity.modelRps).toFixed(0)}%** of`,
  "  capacity in time: it spends its time on queries that have already waited too long.",
  "",
  "![model answers per second](overload.svg)",
  "",
].join("\n"), {
  "overload.svg": barChartSvg(`Model answers/s, ${COST_MS} ms/query, batch size 1`, "/s", [
    { label: "capacity", value: capacity.modelRps },
    { label: `offered ${offered}/s, SLO ${SLO_MS} ms`, value: overload.modelRps, note: `p99 ${overload.p99} ms` },
    { label: "same, --no-admission", value: withoutAdmission.modelRps, note: `p99 ${withoutAdmission.p99} ms` },
  ]),
});
