/**
 * Batching benchmark: a model whose batch costs a + b·n, under a closed-loop load, served with no
 * batching (batch size 1), fixed batch sizes, and adaptive batching (AIMD against the SLO), all in
 * one run on one cluster. Writes docs/bench/batching.md and docs/bench/batching.svg.
 *
 *   npm run build && node dist/bench/batching.js   (needs /usr/bin/python3 with numpy and zmq)
 */
import { positiveEnv } from "./lib/env.js";
import { startBenchCluster } from "./lib/cluster.js";
import { distinctDoubles } from "./lib/body.js";
import { runLoad, warmUp } from "./lib/load.js";
import { meanBatch, scrape } from "./lib/metrics.js";
import { barChartSvg, markdownTable, runContext, writeReport } from "./lib/report.js";

const A_MS = 10;
const B_MS = 1;
const SLO_MS = 500;
const CONNECTIONS = 64;
const SECONDS = positiveEnv("BENCH_SECONDS", 8);
const FIXED = [1, 4, 16, 32, 64];

interface Row { name: string; batchSize: number; modelRps: number; meanBatch: number; p50: number; p99: number; defaults: number }

const cluster = await startBenchCluster({ cacheBytes: 0 });
try {
  const configs = [...FIXED.map((b) => ({ name: b === 1 ? "no batching" : `fixed ${b}`, app: `b${b}`, batchSize: b })),
    { name: "adaptive", app: "adaptive", batchSize: -1 }];
  for (const c of configs) {
    await cluster.pythonModel(c.app, SLO_MS, {
      name: `cost-${c.app}`, version: "1", file: "cost_model.py:predict", batchSize: c.batchSize,
      env: { BENCH_A_MS: String(A_MS), BENCH_B_MS: String(B_MS) },
    });
  }
  const rows: Row[] = [];
  for (const c of configs) {
    const load = { url: cluster.queryUrl, path: `/${c.app}/predict`, connections: CONNECTIONS, durationSec: SECONDS, body: distinctDoubles() };
    await warmUp(load, 3);
    const before = await scrape(cluster.queryUrl);
    const r = await runLoad(load);
    const after = await scrape(cluster.queryUrl);
    rows.push({ name: c.name, batchSize: c.batchSize, modelRps: r.modelRps, meanBatch: meanBatch(before, after, `cost-${c.app}:1`), p50: r.p50, p99: r.p99, defaults: r.defaults });
    process.stdout.write(`${c.name}: ${r.modelRps.toFixed(0)} answers/s, p99 ${r.p99} ms\n`);
  }
  const none = rows[0]!.modelRps;
  const fixed = rows.filter((r) => r.batchSize > 1);
  const best = fixed.reduce((a, b) => (b.modelRps > a.modelRps ? b : a));
  const adaptive = rows.find((r) => r.name === "adaptive")!;
  const table = markdownTable(
    ["configuration", "model answers/s", "× no batching", "÷ best fixed", "mean batch", "p50 ms", "p99 ms", "default outputs"],
    rows.map((r) => [r.name, r.modelRps, r.modelRps / none, r.modelRps / best.modelRps, r.meanBatch, r.p50, r.p99, r.defaults]),
  );
  const verdict = [
    `- adaptive / best fixed (${best.name}): **${((adaptive.modelRps / best.modelRps) * 100).toFixed(0)}%** (target ≥ 90%)`,
    `- adaptive / no batching: **${(adaptive.modelRps / none).toFixed(1)}×** (target ≥ 5×)`,
    `- adaptive p99: **${adaptive.p99} ms** against a ${SLO_MS} ms SLO`,
  ].join("\n");
  writeReport("batching", [
    "# Batching benchmark",
    "",
    runContext("npm run build && node dist/bench/batching.js"),
    "",
    `A Python model whose batch of n inputs costs ${A_MS} ms + ${B_MS} ms·n (bench/models/cost_model.py), one replica,`,
    `${CONNECTIONS} concurrent clients (closed loop, autocannon) sending distinct inputs (cache off), ${SECONDS} s per`,
    `configuration after a 3 s warm-up, SLO ${SLO_MS} ms. "Model answers" excludes default outputs.`,
    "",
    table,
    "",
    verdict,
    "",
    "![model answers per second](batching.svg)",
    "",
  ].join("\n"), {
    "batching.svg": barChartSvg(`Model answers/s, batch cost ${A_MS} + ${B_MS}·n ms, ${CONNECTIONS} clients`, "/s",
      rows.map((r) => ({ label: r.name, value: r.modelRps, note: `p99 ${r.p99} ms` }))),
  });
} finally {
  await cluster.stop();
}
