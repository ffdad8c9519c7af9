/**
 * Frontend workers benchmark: cache-hit throughput of one cluster per worker count
 * (`--frontend-workers N`), measured in interleaved rounds in one run, so each N is compared with
 * N=1 under the same machine load. Every cluster serves the same no-op Python model (one replica,
 * connected to every worker); the load repeats one input, so after the warm-up each worker answers
 * from its own cache. Writes docs/bench/workers.md and docs/bench/workers.svg.
 *
 *   npm run build && BENCH_WORKERS=1,2 node dist/bench/workers.js     (needs /usr/bin/python3 with numpy and zmq)
 *   BENCH_WORKERS=1,2,4,8 BENCH_CLIENT_THREADS=4 node dist/bench/workers.js   (a machine with 16 cores or more)
 */
import { availableParallelism } from "node:os";
import autocannon from "autocannon";
import { startBenchCluster, type BenchCluster } from "./lib/cluster.js";
import { barChartSvg, formatNumber, markdownTable, runContext, writeReport } from "./lib/report.js";
import { MAX_FRONTEND_WORKERS } from "../runtime/shared/frontend-defaults.js";

const SECONDS = positive("BENCH_SECONDS", 5);
const ROUNDS = positive("BENCH_ROUNDS", 3);
const CONNECTIONS = positive("BENCH_CONNECTIONS", 32);
/** Load generator threads (autocannon workers): one thread saturates near one frontend worker's rate. */
const CLIENT_THREADS = positive("BENCH_CLIENT_THREADS", 1);
const WORKER_COUNTS = workerCounts(process.env.BENCH_WORKERS ?? "1,2");
const BODY = JSON.stringify({ input: [1, 2, 3, 4, 5, 6, 7, 8] });

function positive(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined) return fallback;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got '${text}'`);
  return n;
}

function workerCounts(text: string): number[] {
  const counts = text.split(",").map((p) => Number(p.trim()));
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > MAX_FRONTEND_WORKERS)) {
    throw new Error(`BENCH_WORKERS must list worker counts from 1 to ${MAX_FRONTEND_WORKERS}, e.g. 1,2,4,8; got '${text}'`);
  }
  // N=1 is the baseline every ratio is taken against.
  return [...new Set([1, ...counts])].sort((a, b) => a - b);
}

interface Round {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

/** A closed loop of the fixed body (no per-request function, so autocannon can use threads). */
async function hits(queryUrl: string, durationSec: number): Promise<Round> {
  const r = await autocannon({
    url: `${queryUrl}/hits/predict`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: BODY,
    connections: CONNECTIONS,
    duration: durationSec,
    ...(CLIENT_THREADS > 1 ? { workers: CLIENT_THREADS } : {}),
  });
  return { rps: r["2xx"] / durationSec, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
}

/** Warms every worker's cache and JIT; fails when the answers are defaults rather than the model's. */
async function warm(cluster: BenchCluster): Promise<void> {
  await hits(cluster.queryUrl, 3);
  for (let i = 0; i < 2 * MAX_FRONTEND_WORKERS; i++) {
    // A fresh connection each: the primary hands connections to the workers in turn.
    const res = await fetch(`${cluster.queryUrl}/hits/predict`, { method: "POST", body: BODY, headers: { connection: "close" } });
    const answer = (await res.json()) as { default?: boolean };
    if (res.status !== 200 || answer.default !== false) throw new Error(`the warm-up got ${res.status} ${JSON.stringify(answer)}`);
  }
}

const median = (values: Round[]) => [...values].sort((a, b) => a.rps - b.rps)[Math.floor(values.length / 2)]!;

const clusters = new Map<number, BenchCluster>();
const rounds = new Map<number, Round[]>(WORKER_COUNTS.map((n) => [n, []]));
try {
  for (const n of WORKER_COUNTS) {
    const cluster = await startBenchCluster({ frontendWorkers: n });
    clusters.set(n, cluster);
    await cluster.pythonModel("hits", 1000, { name: "noop", version: "1", file: "noop_model.py:predict" });
    await warm(cluster);
  }
  for (let round = 0; round < ROUNDS; round++) {
    // Interleaved, and the order turns each round, so drift on a shared machine hits every N alike.
    const order = WORKER_COUNTS.map((_, i) => WORKER_COUNTS[(i + round) % WORKER_COUNTS.length]!);
    for (const n of order) {
      const r = await hits(clusters.get(n)!.queryUrl, SECONDS);
      rounds.get(n)!.push(r);
      process.stdout.write(`round ${round + 1} N=${n}: ${r.rps.toFixed(0)}/s, p99 ${r.p99} ms, errors ${r.errors}\n`);
    }
  }
} finally {
  for (const cluster of clusters.values()) await cluster.stop();
}

const results = WORKER_COUNTS.map((n) => ({ n, ...median(rounds.get(n)!), errors: rounds.get(n)!.reduce((s, r) => s + r.errors, 0) }));
const base = results[0]!.rps;
const cores = availableParallelism();
const settings = ["BENCH_ROUNDS", "BENCH_SECONDS", "BENCH_CONNECTIONS", "BENCH_CLIENT_THREADS"]
  .filter((name) => process.env[name] !== undefined).map((name) => ` ${name}=${process.env[name]}`).join("");
const command = `npm run build && BENCH_WORKERS=${WORKER_COUNTS.join(",")}${settings} node dist/bench/workers.js`;
writeReport("workers", [
  "# Frontend workers benchmark",
  "",
  runContext(command),
  "",
  `Cache hits (one repeated input) at ${CONNECTIONS} connections, closed loop (autocannon, ${CLIENT_THREADS} client thread${CLIENT_THREADS > 1 ? "s" : ""}),`,
  `against one cluster per worker count, all started before the first round. ${ROUNDS} interleaved rounds of ${SECONDS} s`,
  "after a warm-up that fills every worker's cache; each row is the round with the median throughput, and the",
  "ratio is against N=1 in the same run. The clients run on the same cores as the servers.",
  "",
  markdownTable(["workers", "answers/s", "× N=1", "target", "client p50 ms", "client p99 ms", "errors"],
    results.map((r) => [r.n, r.rps, (r.rps / base).toFixed(2), target(r.n), r.p50, r.p99, r.errors])),
  "",
  `This machine has ${cores} cores, shared by the load generator and every cluster. The target is no regression`,
  "(≥ 1.0× N=1) where the workers outnumber the cores left over after the client, and ≥ 0.7×N beyond.",
  "",
  "![answers per second](workers.svg)",
  "",
].join("\n"), {
  "workers.svg": barChartSvg(`Cache-hit answers/s at ${CONNECTIONS} connections`, "/s",
    results.map((r) => ({ label: `N=${r.n}`, value: r.rps, note: `${formatNumber(r.rps / base)}×, p99 ${r.p99} ms` }))),
});

/** What N workers should reach on this machine: linear scaling needs a core per worker besides the client's. */
function target(n: number): string {
  if (n === 1) return "-";
  return n + CLIENT_THREADS <= cores ? `≥ ${(0.7 * n).toFixed(1)}×` : "≥ 1.0×";
}
