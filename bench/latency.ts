/**
 * Latency benchmark (issue 13, target 5: p99 < 10 ms for distinct inputs at 32 connections, by the
 * client AND by the frontend's own histogram, on N=1 and N=2 frontend workers). One cluster per
 * combination of frontend workers (`--frontend-workers`) and batches in flight per replica
 * (`--max-in-flight`: 1, Clipper's way, and the default), all started before the first round, each
 * with one replica of the no-op Python model (our runtime). Closed loop on wrk (2 threads), distinct
 * inputs; interleaved rounds with the order turning each round; per round the client's p50/p99 (wrk)
 * and the frontend's (clipper_app_request_latency_seconds between scrapes just before and after the
 * round); each row gives the medians of the rounds. Writes docs/bench/latency.md and latency.svg.
 *
 *   npm run build && node dist/bench/latency.js     (needs /usr/bin/python3 with numpy and zmq; wrk)
 */
import { positiveEnv } from "./lib/env.js";
import { loadavg } from "node:os";
import { startBenchCluster, type BenchCluster } from "./lib/cluster.js";
import { distinctDoubles } from "./lib/body.js";
import { closedLoopGenerator, runLoad, warmUp, type LoadOptions } from "./lib/load.js";
import { histogramQuantile, scrape } from "./lib/metrics.js";
import { barChartSvg, markdownTable, runContext, writeReport } from "./lib/report.js";
import { DEFAULT_MAX_IN_FLIGHT } from "../runtime/shared/frontend-defaults.js";

const CONNECTIONS = 32;
const SECONDS = positiveEnv("BENCH_SECONDS", 5);
const ROUNDS = positiveEnv("BENCH_ROUNDS", 7);
const SLO_MS = 1000;
const TARGET_P99_MS = 10;
const WORKERS = [1, 2];
const PIPELINES = [...new Set([1, DEFAULT_MAX_IN_FLIGHT])];


interface Round {
  rps: number;
  errors: number;
  clientP50: number;
  clientP99: number;
  frontendP50: number;
  frontendP99: number;
}

interface Setup {
  workers: number;
  inFlight: number;
  cluster: BenchCluster;
  load: LoadOptions;
  rounds: Round[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const setups: Setup[] = [];
/** The machine's 1-minute load average after each round: what else competed for the two cores. */
const loads: number[] = [];
try {
  for (const workers of WORKERS) {
    for (const inFlight of PIPELINES) {
      const cluster = await startBenchCluster({ frontendWorkers: workers, maxInFlight: inFlight });
      setups.push({
        workers, inFlight, cluster, rounds: [],
        load: { url: cluster.queryUrl, path: "/noop/predict", connections: CONNECTIONS, durationSec: SECONDS, body: distinctDoubles() },
      });
      await cluster.pythonModel("noop", SLO_MS, { name: "noop", version: "1", file: "noop_model.py:predict" });
    }
  }
  for (const s of setups) await warmUp(s.load, 3);
  for (let round = 0; round < ROUNDS; round++) {
    // Interleaved, and the order turns each round, so drift on a shared machine weighs on every setup alike.
    const order = setups.map((_, i) => setups[(i + round) % setups.length]!);
    for (const s of order) {
      const before = await scrape(s.cluster.queryUrl);
      const r = await runLoad(s.load);
      const after = await scrape(s.cluster.queryUrl);
      const q = (x: number) => 1000 * histogramQuantile(before, after, "clipper_app_request_latency_seconds", { app: "noop" }, x);
      const result: Round = {
        rps: r.modelRps, errors: r.non2xx + r.errors + r.defaults, clientP50: r.p50, clientP99: r.p99, frontendP50: q(0.5), frontendP99: q(0.99),
      };
      s.rounds.push(result);
      loads.push(loadavg()[0]!);
      process.stdout.write(`round ${round + 1} N=${s.workers} K=${s.inFlight}: ${r.modelRps.toFixed(0)}/s, client p99 ${r.p99} ms, ` +
        `frontend p99 ${result.frontendP99.toFixed(2)} ms, ${result.errors} defaults or errors\n`);
    }
  }
} finally {
  for (const s of setups) await s.cluster.stop();
}

const rows = setups.map((s) => {
  const m = (pick: (r: Round) => number) => median(s.rounds.map(pick));
  return {
    s, rps: m((r) => r.rps), clientP50: m((r) => r.clientP50), clientP99: m((r) => r.clientP99),
    frontendP50: m((r) => r.frontendP50), frontendP99: m((r) => r.frontendP99),
    errors: s.rounds.reduce((sum, r) => sum + r.errors, 0),
  };
});
const meets = (row: (typeof rows)[number]) => row.clientP99 < TARGET_P99_MS && row.frontendP99 < TARGET_P99_MS;
const label = (s: Setup) => `N=${s.workers}, ${s.inFlight} in flight${s.inFlight === DEFAULT_MAX_IN_FLIGHT ? " (default)" : ""}`;
const settings = ["BENCH_ROUNDS", "BENCH_SECONDS"].filter((n) => process.env[n] !== undefined).map((n) => `${n}=${process.env[n]} `).join("");

writeReport("latency", [
  "# Latency benchmark (distinct inputs)",
  "",
  runContext(`npm run build && ${settings}node dist/bench/latency.js`),
  "",
  `One cluster per setup (local manager), each with one replica of the no-op Python model (bench/models/noop_model.py,`,
  `our runtime) behind ${WORKERS.map((n) => `N=${n}`).join(" or ")} frontend workers (\`--frontend-workers\`) and 1 or ${DEFAULT_MAX_IN_FLIGHT}`,
  "batches in flight per replica (`--max-in-flight`). All clusters run from the first round to the last; the load",
  `goes to one at a time: ${CONNECTIONS} connections, closed loop (${closedLoopGenerator()}, 2 threads), a fresh input of 8 random`,
  `doubles per request (no cache hits), ${ROUNDS} interleaved rounds of ${SECONDS} s after a 3 s warm-up of each, the order`,
  "turning every round. Client percentiles are wrk's; frontend percentiles are from the frontend's",
  "`clipper_app_request_latency_seconds` histogram (all workers), scraped just before and after each round and",
  "interpolated within its buckets (…, 7.5, 10, 15 ms, …). Every figure is the median over the rounds.",
  `The machine's 1-minute load average after the rounds: median ${median(loads).toFixed(1)}, ${Math.min(...loads).toFixed(1)} to ${Math.max(...loads).toFixed(1)}`,
  "(2 cores; the benchmark itself — wrk, one frontend, one Python replica — accounts for about 2).",
  "",
  markdownTable(["setup", "model answers/s", "client p50 ms", "client p99 ms", "frontend p50 ms", "frontend p99 ms",
    "defaults + errors", `p99 < ${TARGET_P99_MS} ms (both)`],
  rows.map((r) => [label(r.s), r.rps, r.clientP50, r.clientP99, r.frontendP50, r.frontendP99, r.errors, meets(r) ? "yes" : "no"])),
  "",
  "Per round, client p99 / frontend p99 (ms):",
  "",
  ...rows.map((r) => `- ${label(r.s)}: ${r.s.rounds.map((x) => `${x.clientP99.toFixed(1)}/${x.frontendP99.toFixed(1)}`).join(", ")}`),
  "",
  "![p99 latency](latency.svg)",
  "",
].join("\n"), {
  "latency.svg": barChartSvg(`Client p99 latency, distinct inputs, ${CONNECTIONS} connections (target < ${TARGET_P99_MS} ms)`, "ms",
    rows.map((r) => ({ label: label(r.s), value: r.clientP99, note: `frontend p99 ${r.frontendP99.toFixed(1)} ms, ${r.rps.toFixed(0)}/s` }))),
});
for (const r of rows) {
  process.stdout.write(`${label(r.s)}: ${r.rps.toFixed(0)}/s, client p99 ${r.clientP99} ms, frontend p99 ${r.frontendP99.toFixed(2)} ms\n`);
}
