/**
 * Autoscaling benchmark: a Python model at a fixed batch size of 1 costing 20 ms per query
 * (bench/models/cost_model.py), autoscaled between 1 and 4 replicas, behind an app with a 2 s SLO,
 * under load both ways: 16 closed-loop connections (clients that ask again at once) and an open
 * loop at 3× one replica's capacity (independent users). Each run records, per second, the answers
 * by the model, default outputs, failures and the replica count, through the load and after it
 * until the autoscaler is back at 1 replica. Writes docs/bench/autoscale.md and autoscale-*.svg.
 *
 *   npm run build && node dist/bench/autoscale.js   (needs /usr/bin/python3 with numpy and zmq)
 */
import { positiveEnv } from "./lib/env.js";
import { startBenchCluster, type BenchCluster } from "./lib/cluster.js";
import { distinctDoubles } from "./lib/body.js";
import { lineChartSvg, markdownTable, runContext, writeReport } from "./lib/report.js";
import { startTimelineLoad, type Second } from "./lib/timeline.js";

const COST_MS = 20;
const SLO_MS = 2_000;
const LOAD_SECONDS = positiveEnv("BENCH_SECONDS", 40);
/** How long the run waits, after the load, for the autoscaler to return to one replica. */
const SETTLE_LIMIT_S = 120;

interface Run {
  name: string;
  seconds: Second[];
  replicas: number[];
  /** Seconds from the end of the load until one replica was left (undefined: not within the limit). */
  downAfterS?: number;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

async function autoscaledRun(cluster: BenchCluster, name: string, load: { connections: number } | { rate: number }): Promise<Run> {
  const model = `cost-${name}`;
  await cluster.pythonModel(name, SLO_MS, {
    name: model, version: "1", file: "cost_model.py:predict", batchSize: 1, env: { BENCH_A_MS: String(COST_MS), BENCH_B_MS: "0" },
  });
  await cluster.conn.setAutoscaling(model, { min: 1, max: 4 });
  const replicas: number[] = [];
  const sample = async () => replicas.push(await cluster.conn.getNumReplicas(model, "1"));
  const timeline = startTimelineLoad({ url: `${cluster.queryUrl}/${name}/predict`, body: distinctDoubles(), ...load });
  for (let s = 0; s < LOAD_SECONDS; s++) {
    await new Promise((r) => setTimeout(r, 1000));
    await sample();
  }
  await timeline.stop();
  let downAfterS: number | undefined;
  for (let s = 1; s <= SETTLE_LIMIT_S; s++) {
    await new Promise((r) => setTimeout(r, 1000));
    await sample();
    if (replicas.at(-1) === 1) {
      downAfterS = s;
      break;
    }
  }
  process.stdout.write(`${name}: replicas ${replicas.join(",")}\n`);
  return { name, seconds: timeline.seconds.slice(0, LOAD_SECONDS), replicas, ...(downAfterS === undefined ? {} : { downAfterS }) };
}

const cluster = await startBenchCluster({ cacheBytes: 0 });
let closed: Run;
let open: Run;
try {
  closed = await autoscaledRun(cluster, "closed", { connections: 16 });
  // 3× what one replica answers (1000 / COST_MS per second).
  open = await autoscaledRun(cluster, "open", { rate: 3 * (1000 / COST_MS) });
} finally {
  await cluster.stop();
}

function summary(run: Run) {
  const model = run.seconds.map((s) => s.model);
  const first = mean(model.slice(0, 5));
  const late = mean(model.slice(30));
  return {
    first, late, ratio: first > 0 ? late / first : Infinity,
    defaults: run.seconds.reduce((n, s) => n + s.defaults, 0),
    failed: run.seconds.reduce((n, s) => n + s.failed, 0),
    peak: Math.max(...run.replicas),
  };
}
const rows = [closed, open].map((run) => ({ run, ...summary(run) }));

writeReport("autoscale", [
  "# Autoscaling benchmark",
  "",
  runContext("npm run build && node dist/bench/autoscale.js"),
  "",
  `A Python model with a fixed batch size of 1 and ${COST_MS} ms per query (bench/models/cost_model.py), behind an app with a`,
  `${SLO_MS / 1000} s SLO, autoscaled with \`clipper autoscale --min 1 --max 4\` (target queue 4 per replica, scale-down delay 30 s:`,
  `the defaults). ${LOAD_SECONDS} s of load, then no load until the autoscaler is back at one replica. The loop runs in the`,
  `local manager's supervisor (docs/autoscaling.md). Prediction cache off, every input distinct.`,
  "",
  markdownTable(
    ["load", "model answers/s, first 5 s", "model answers/s, from 30 s", "ratio", "peak replicas", "default outputs", "failed", "back to 1 replica after the load"],
    rows.map((r) => [
      r.run.name === "closed" ? "closed loop, 16 connections" : `open loop, ${3 * (1000 / COST_MS)}/s`,
      r.first, r.late, `${r.ratio.toFixed(1)}×`, r.peak, r.defaults, r.failed,
      r.run.downAfterS === undefined ? `not within ${SETTLE_LIMIT_S} s` : `${r.run.downAfterS} s`,
    ]),
  ),
  "",
  `- Target (issue 12): closed loop ≥ 3× after 30 s, back to 1 replica within 90 s, no failed query: ` +
    `**${rows[0]!.ratio.toFixed(1)}×**, **${closed.downAfterS ?? "-"} s**, **${rows[0]!.failed} failed, ${rows[0]!.defaults} default outputs**.`,
  "- The open loop offers 3× one replica's capacity from the first second: until the new replicas are up, admission answers",
  "  what cannot make the SLO with the default output at its deadline (its count is in the table); afterwards the model answers all of it.",
  "- A step down while the open loop still runs, when the chart shows one, is the controller's low-load rule at work:",
  "  150/s is exactly three replicas' capacity, so the queue can stay under half the target on one replica fewer.",
  "- Each scale-down drains the replica that goes (docs/autoscaling.md): it answers what it holds and gets no new batch.",
  "",
  "![closed loop](autoscale-closed.svg)",
  "",
  "![open loop](autoscale-open.svg)",
  "",
].join("\n"), Object.fromEntries([closed, open].map((run) => [`autoscale-${run.name}.svg`, lineChartSvg(
  `${run.name === "closed" ? "Closed loop, 16 connections" : "Open loop"}: answers/s and replicas`,
  { left: "answers/s", right: "replicas" },
  [
    { label: "model answers/s", color: "#3b7dd8", values: run.seconds.map((s) => s.model) },
    { label: "default outputs/s", color: "#d8893b", values: run.seconds.map((s) => s.defaults) },
    { label: "replicas", color: "#2a9d4b", values: run.replicas, right: true },
  ],
)])));
