/**
 * Frontend benchmark: how close the query frontend comes to the ceiling of this machine, a bare
 * node:http server parsing the same JSON body, for cache hits and for distinct inputs through a
 * no-op Python model; then CPU profiles of the bare server and of the frontend under the same loads.
 * Each round also counts the TCP segments the machine retransmitted (tcp-stats.ts): a lost
 * loopback segment costs its answer Linux's 200 ms minimum RTO, whatever the server does.
 * Writes docs/bench/frontend.md and docs/bench/frontend.svg.
 *
 *   npm run build && node dist/bench/frontend.js   (needs /usr/bin/python3 with numpy and zmq)
 *
 * BENCH_BASELINE_FRONTEND=/other/build/dist/runtime/frontend/main.js adds, to every round, the cache-hit
 * load against a second cluster whose frontend is that build: the side-by-side figure of what a change
 * to the query path gave (CPU per hit and share of the ceiling, same rounds).
 */
import { positiveEnv } from "./lib/env.js";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startBenchCluster, type BenchCluster } from "./lib/cluster.js";
import { distinctDoubles, fixedBody, type LoadBody } from "./lib/body.js";
import { closedLoopGenerator, runLoad, warmUp, type LoadResult } from "./lib/load.js";
import { histogramQuantile, metricValue, scrape } from "./lib/metrics.js";
import { profileFrontend, summarizeProfile, type ProfileSummary } from "./lib/profile.js";
import { barChartSvg, formatNumber, markdownTable, runContext, writeReport } from "./lib/report.js";
import { countingRetransmissions } from "./lib/tcp-stats.js";
import { cpuPressureMicros } from "./lib/cpu-pressure.js";
import { processCpuMs } from "./lib/process-cpu.js";

const CONNECTIONS = 32;
const SECONDS = positiveEnv("BENCH_SECONDS", 5);
const ROUNDS = positiveEnv("BENCH_ROUNDS", 5);
const FIXED = fixedBody();

/** The ceiling server in its own process; `nodeFlags` e.g. to run it under `--cpu-prof`. */
async function bareServer(nodeFlags: string[] = []): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const entry = fileURLToPath(new URL("./servers/bare-http.js", import.meta.url));
  const child = spawn(process.execPath, [...nodeFlags, entry], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
    void exited.then(() => reject(new Error("the bare server exited")));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid ?? 0,
    async stop() {
      child.kill("SIGTERM");
      await exited; // a profile is written on exit
    },
  };
}

/** A profiled run: warm-up and measured load, and how many requests both made (the profile covers both). */
async function profiledLoad(url: string, path: string, body: LoadBody): Promise<number> {
  const load = { url, path, connections: CONNECTIONS, durationSec: SECONDS, body };
  const warm = await runLoad({ ...load, durationSec: 3 });
  const measured = await runLoad(load);
  return warm.requests + measured.requests;
}

async function noopCluster(frontendCommand?: string[]): Promise<BenchCluster> {
  const cluster = await startBenchCluster({ frontendCommand });
  await cluster.pythonModel("noop", 1000, { name: "noop", version: "1", file: "noop_model.py:predict" });
  // A second application on the same model, so the frontend's own latency histogram separates the loads.
  await cluster.conn.registerApplication({ name: "hits", inputType: "doubles", defaultOutput: "-1", sloMicros: 1_000_000 });
  await cluster.conn.linkModelToApp("hits", "noop");
  return cluster;
}

/** The run with the median throughput: rounds interleave the three loads, so drift hits all alike. */
function median(runs: LoadResult[]): LoadResult {
  return [...runs].sort((a, b) => a.rps - b.rps)[Math.floor(runs.length / 2)]!;
}

function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

type LoadName = "ceiling" | "hits" | "distinct";
const bare = await bareServer();
const cluster = await noopCluster();
const runs: Record<LoadName, LoadResult[]> = { ceiling: [], hits: [], distinct: [] };
const BASELINE = process.env.BENCH_BASELINE_FRONTEND;
const baselineCluster = BASELINE ? await noopCluster([process.execPath, BASELINE]) : undefined;
/** Per round, cache hits on the baseline build: answers/s and its frontend's CPU per request (µs). */
const baselineRounds: Array<{ rps: number; cpu: number | undefined }> = [];
/** Per round and load: TCP segments the machine retransmitted during it (undefined: not Linux). */
const retransmitted: Record<LoadName, Array<number | undefined>> = { ceiling: [], hits: [], distinct: [] };
/** Per round and load: share of the round some task waited for a CPU, machine-wide (PSI; undefined: unknown). */
const cpuPressure: Record<LoadName, Array<number | undefined>> = { ceiling: [], hits: [], distinct: [] };
/** Per round of the frontend's loads: its largest event-loop delay (ms; prom-client resets it at each scrape). */
const loopLagMax: Record<LoadName, Array<number | undefined>> = { ceiling: [], hits: [], distinct: [] };
/** Per round and load: CPU the server process used per request, µs (/proc; undefined: unknown). */
const cpuPerRequest: Record<LoadName, Array<number | undefined>> = { ceiling: [], hits: [], distinct: [] };
let hitRatio = 0;
/** Latency inside the frontend (request parsed → answer written), from its own histogram. */
const serverSide: Record<string, { p50: number; p99: number }> = {};
try {
  const loads = {
    ceiling: { url: bare.url, path: "/noop/predict", connections: CONNECTIONS, durationSec: SECONDS, body: FIXED },
    hits: { url: cluster.queryUrl, path: "/hits/predict", connections: CONNECTIONS, durationSec: SECONDS, body: FIXED },
    distinct: { url: cluster.queryUrl, path: "/noop/predict", connections: CONNECTIONS, durationSec: SECONDS, body: distinctDoubles() },
  };
  for (const load of Object.values(loads)) await warmUp(load, 3);
  const pidOf = async (c: BenchCluster) => (await c.conn.inspectInstance()).components.find((x) => x.component === "frontend")?.pid ?? 0;
  const frontendPid = await pidOf(cluster);
  const baselineLoad = baselineCluster && { ...loads.hits, url: baselineCluster.queryUrl };
  const baselineDistinct = baselineCluster && { ...loads.distinct, url: baselineCluster.queryUrl };
  const baselinePid = baselineCluster ? await pidOf(baselineCluster) : 0;
  if (baselineLoad) await warmUp(baselineLoad, 3);
  if (baselineDistinct) await warmUp(baselineDistinct, 3);
  const before = await scrape(cluster.queryUrl);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, load] of Object.entries(loads) as Array<[LoadName, (typeof loads)["hits"]]>) {
      const frontend = name !== "ceiling";
      if (frontend) await scrape(cluster.queryUrl); // resets the event-loop delay's max
      const pid = frontend ? frontendPid : bare.pid;
      const waitedBefore = cpuPressureMicros();
      const cpuBefore = processCpuMs(pid);
      const { result: r, retransmitted: lost } = await countingRetransmissions(() => runLoad(load));
      const cpuAfter = processCpuMs(pid);
      const waitedAfter = cpuPressureMicros();
      cpuPerRequest[name].push(cpuBefore === undefined || cpuAfter === undefined || r.requests === 0 ? undefined : (1000 * (cpuAfter - cpuBefore)) / r.requests);
      runs[name].push(r);
      retransmitted[name].push(lost);
      cpuPressure[name].push(waitedBefore === undefined || waitedAfter === undefined ? undefined : (waitedAfter - waitedBefore) / (10_000 * SECONDS));
      loopLagMax[name].push(frontend ? 1000 * metricValue(await scrape(cluster.queryUrl), "nodejs_eventloop_lag_max_seconds") : undefined);
      process.stdout.write(`round ${round + 1} ${name}: ${r.rps.toFixed(0)}/s, p99 ${r.p99} ms, max ${r.max ?? "?"} ms, RetransSegs +${lost ?? "?"}, CPU pressure ${cpuPressure[name].at(-1)?.toFixed(0) ?? "?"}%, server CPU ${cpuPerRequest[name].at(-1)?.toFixed(1) ?? "?"} µs/request, loop lag max ${loopLagMax[name].at(-1)?.toFixed(0) ?? "-"} ms\n`);
    }
    if (baselineCluster && baselineLoad && baselineDistinct) {
      // The baseline frontend is treated as the one under test: a scrape before and after its
      // cache hits, and the distinct inputs after them (unrecorded). Without these it started each
      // round with less heap and garbage, and an A/A run (the same build as both) gave it ~3 µs
      // less CPU per hit.
      await scrape(baselineCluster.queryUrl);
      const cpuBefore = processCpuMs(baselinePid);
      const r = await runLoad(baselineLoad);
      const cpuAfter = processCpuMs(baselinePid);
      await scrape(baselineCluster.queryUrl);
      const cpu = cpuBefore === undefined || cpuAfter === undefined || r.requests === 0 ? undefined : (1000 * (cpuAfter - cpuBefore)) / r.requests;
      baselineRounds.push({ rps: r.rps, cpu });
      process.stdout.write(`round ${round + 1} baseline hits: ${r.rps.toFixed(0)}/s, server CPU ${cpu?.toFixed(1) ?? "?"} µs/request\n`);
      await scrape(baselineCluster.queryUrl);
      await runLoad(baselineDistinct);
      await scrape(baselineCluster.queryUrl);
    }
  }
  const after = await scrape(cluster.queryUrl);
  const d = (name: string) => metricValue(after, name) - metricValue(before, name);
  const hitCount = d("clipper_cache_hits_total");
  // Every query of the hit load repeats one input: all of them should have been cache hits.
  hitRatio = hitCount / Math.max(1, runs.hits.reduce((sum, r) => sum + r.requests, 0));
  const serverMs = (app: string, q: number) =>
    1000 * histogramQuantile(before, after, "clipper_app_request_latency_seconds", { app }, q);
  serverSide.hits = { p50: serverMs("hits", 0.5), p99: serverMs("hits", 0.99) };
  serverSide.distinct = { p50: serverMs("noop", 0.5), p99: serverMs("noop", 0.99) };
} finally {
  await bare.stop();
  await cluster.stop();
  await baselineCluster?.stop();
}
const ceiling = median(runs.ceiling);
const hits = median(runs.hits);
const distinct = median(runs.distinct);

// Separate, profiled runs (one per load): the profiler's own cost stays out of the figures above.
type Profiled = { summary: ProfileSummary | undefined; requests: number };
async function profilePhase(body: LoadBody): Promise<Profiled> {
  let requests = 0;
  const summary = await profileFrontend(noopCluster, async (profiled) => {
    requests = await profiledLoad(profiled.queryUrl, "/noop/predict", body);
  });
  return { summary, requests };
}
const hitProfile = await profilePhase(FIXED);
const distinctProfile = await profilePhase(distinctDoubles());
const bareProfile = await profileBare();

/** The ceiling server under `node --cpu-prof` and the same load as the cache hits: what the frontend adds is the difference. */
async function profileBare(): Promise<Profiled> {
  const dir = mkdtempSync(join(tmpdir(), "clipper-prof-bare-"));
  try {
    const profiled = await bareServer(["--cpu-prof", `--cpu-prof-dir=${dir}`]);
    let requests = 0;
    try {
      requests = await profiledLoad(profiled.url, "/noop/predict", FIXED);
    } finally {
      await profiled.stop();
    }
    const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
    return { summary: file ? summarizeProfile(join(dir, file)) : undefined, requests };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function profileSection(title: string, { summary: profile, requests }: Profiled): string {
  if (!profile) return `### ${title}\n\n(no profile was written: the server did not exit cleanly)\n`;
  return [
    `### ${title}`,
    "",
    `${profile.totalSamples} samples over ${requests} requests (start-up included); self time by area, then the top functions:`,
    "",
    markdownTable(["area", "% of samples"], profile.byArea.map((a) => [a.area, a.percent])),
    "",
    markdownTable(["function", "where", "% self"], profile.byFunction.map((f) => [`\`${f.name}\``, f.where, f.percent])),
    "",
  ].join("\n");
}

const generator = closedLoopGenerator();
const defined = (xs: Array<number | undefined>) => xs.filter((x): x is number => x !== undefined);
const rows: Array<[string, LoadResult]> = [["bare node:http (ceiling)", ceiling], ["frontend, cache hits", hits], ["frontend, distinct inputs, no-op model", distinct]];
const pct = (r: LoadResult) => (100 * r.rps) / ceiling.rps;
// Side by side within each round: the machine's drift between rounds cancels out of these.
const hitShares = runs.hits.map((r, i) => (100 * r.rps) / runs.ceiling[i]!.rps);
const distinctShares = runs.distinct.map((r, i) => (100 * r.rps) / runs.ceiling[i]!.rps);
const hitP99Ratios = runs.hits.map((r, i) => r.p99 / Math.max(runs.ceiling[i]!.p99, 1e-3));
const retransText = (n: number | undefined) => (n === undefined ? "unknown" : String(n));
const roundRows: Array<Array<string | number>> = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const name of ["ceiling", "hits", "distinct"] as const) {
    const r = runs[name][round]!;
    roundRows.push([round + 1, name, r.generator, r.rps, `${((100 * r.rps) / runs.ceiling[round]!.rps).toFixed(0)}%`, r.p50, r.p99, r.max ?? "-", cpuPerRequest[name][round] ?? "unknown", retransText(retransmitted[name][round]),
      cpuPressure[name][round] === undefined ? "unknown" : `${cpuPressure[name][round]!.toFixed(0)}%`, loopLagMax[name][round] ?? "-"]);
  }
}
const slowRounds = (Object.keys(runs) as LoadName[]).flatMap((name) =>
  runs[name].map((r, i) => ({ name, round: i + 1, p99: r.p99, max: r.max, lost: retransmitted[name][i] })).filter((x) => x.p99 >= 100 || (x.max ?? 0) >= 190));
const allRetransmitted = (Object.values(retransmitted).flat() as Array<number | undefined>).reduce<number>((sum, n) => sum + (n ?? 0), 0);
const tailLine = slowRounds.length === 0
  ? `- no round had a client p99 of 100 ms or more, nor an answer slower than 190 ms; RetransSegs rose by ${allRetransmitted} over all rounds`
  : `- rounds with a client p99 ≥ 100 ms or an answer ≥ 190 ms: ${slowRounds.map((x) => `round ${x.round} ${x.name} (p99 ${x.p99} ms, max ${x.max ?? "?"} ms, RetransSegs +${retransText(x.lost)})`).join(", ")}; RetransSegs rose by ${allRetransmitted} over all rounds`;
writeReport("frontend", [
  "# Frontend benchmark",
  "",
  runContext(`npm run build && ${BASELINE ? "BENCH_BASELINE_FRONTEND=<baseline build>/dist/runtime/frontend/main.js " : ""}node dist/bench/frontend.js`),
  "",
  `${CONNECTIONS} concurrent clients (closed loop, ${generator}${generator === "wrk" ? ", 2 threads" : ""}). The three loads run in ${ROUNDS} interleaved rounds of`,
  `${SECONDS} s each after a 3 s warm-up, and each row is the round with the median throughput. The ceiling`,
  "is a bare `node:http` server that reads and parses the same JSON body and answers a small JSON",
  "(bench/servers/bare-http.ts). Cache hits repeat one input; distinct inputs go through a no-op",
  "Python model (bench/models/noop_model.py), one replica, over RPC v3.",
  "",
  markdownTable(["server", "answers/s", "% of ceiling", "client p50 ms", "client p99 ms", "frontend p50 ms", "frontend p99 ms"],
    rows.map(([name, r], i) => {
      const inside = serverSide[["", "hits", "distinct"][i]!];
      return [name, r.rps, `${pct(r).toFixed(0)}%`, r.p50, r.p99, inside ? inside.p50 : "-", inside ? inside.p99 : "-"];
    })),
  "",
  `Client latencies are what ${generator} saw, on the same two cores as the servers (at saturation, in a`,
  "closed loop, they are mostly queueing: mean latency = connections / throughput). Frontend latencies are",
  "from the frontend's own `clipper_app_request_latency_seconds` histogram (request parsed to answer",
  "written), interpolated within its buckets.",
  "",
  `- cache hits: **${medianOf(hitShares).toFixed(0)}%** of the ceiling, median of the per-round ratios (${hitShares.map((x) => `${x.toFixed(0)}%`).join(", ")}; target ≥ 95%); hit ratio during the run ${formatNumber(hitRatio)}`,
  `- server CPU per request (from /proc, in the same rounds): bare **${formatNumber(medianOf(defined(cpuPerRequest.ceiling)))} µs**, frontend cache hits **${formatNumber(medianOf(defined(cpuPerRequest.hits)))} µs**, distinct inputs **${formatNumber(medianOf(defined(cpuPerRequest.distinct)))} µs** (medians over the rounds)`,
  `- cache hits, client p99 / the ceiling's in the same round: **${formatNumber(medianOf(hitP99Ratios))}×** median (${hitP99Ratios.map((x) => `${formatNumber(x)}×`).join(", ")}; target ≤ 2×)`,
  `- distinct inputs: **${medianOf(distinctShares).toFixed(0)}%** of the ceiling, median of the per-round ratios (target ≥ 35%), p99 **${distinct.p99} ms** at the client and **${formatNumber(serverSide.distinct?.p99 ?? NaN)} ms** inside the frontend (target < 10 ms)`,
  tailLine,
  ...(baselineRounds.length === 0 ? [] : [
    `- baseline build (\`BENCH_BASELINE_FRONTEND\`), cache hits in the same rounds: **${(medianOf(baselineRounds.map((b, i) => (100 * b.rps) / runs.ceiling[i]!.rps))).toFixed(0)}%** of the ceiling, server CPU **${formatNumber(medianOf(defined(baselineRounds.map((b) => b.cpu))))} µs** per request (medians over the rounds)`,
  ]),
  "",
  "![answers per second](frontend.svg)",
  "",
  "## Every round",
  "",
  "`RetransSegs`: TCP segments the whole machine retransmitted during the round (`/proc/net/snmp`, line `Tcp:`);",
  "a lost loopback segment is resent after Linux's minimum RTO, 200 ms. CPU pressure: the share of the round",
  "during which some runnable task on the machine waited for a CPU (`/proc/pressure/cpu`, `some`). Event-loop",
  "delay: the largest delay of the frontend's event loop during the round (`nodejs_eventloop_lag_max_seconds`).",
  "",
  markdownTable(["round", "load", "load generator", "answers/s", "% of the round's ceiling", "client p50 ms", "client p99 ms", "client max ms", "server CPU µs per request", "RetransSegs", "CPU pressure", "frontend event-loop delay max ms"], roundRows),
  "",
  "## Where the time goes",
  "",
  "CPU profiles (`node --cpu-prof`) during separate runs of the same loads: the bare server under the",
  "cache-hit load, then the frontend under each load. The profiler samples wall time: percentages include",
  "idle time, and `writev` (the system call that sends an answer over loopback, the largest item in both)",
  "also holds the time the process was preempted in it. The server CPU per request in the rounds above is",
  "the fair comparison of the two servers' costs.",
  "",
  profileSection("Bare node:http server, same load as the cache hits", bareProfile),
  profileSection("Frontend, cache hits", hitProfile),
  profileSection("Frontend, distinct inputs through the no-op model", distinctProfile),
  "",
].join("\n"), {
  "frontend.svg": barChartSvg(`Answers/s at ${CONNECTIONS} connections`, "/s",
    rows.map(([name, r]) => ({ label: name.replace(" (ceiling)", ""), value: r.rps, note: `p99 ${r.p99} ms` }))),
});
