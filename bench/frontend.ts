/**
 * Frontend benchmark: how close the query frontend comes to the ceiling of this machine, a bare
 * node:http server parsing the same JSON body, for cache hits and for distinct inputs through a
 * no-op Python model; then CPU profiles of the frontend under each load.
 * Writes docs/bench/frontend.md and docs/bench/frontend.svg.
 *
 *   npm run build && node dist/bench/frontend.js   (needs /usr/bin/python3 with numpy and zmq)
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startBenchCluster, type BenchCluster } from "./lib/cluster.js";
import { distinctDoubles, fixedBody, type LoadBody } from "./lib/body.js";
import { runLoad, warmUp, type LoadResult } from "./lib/load.js";
import { histogramQuantile, metricValue, scrape } from "./lib/metrics.js";
import { profileFrontend, type ProfileSummary } from "./lib/profile.js";
import { barChartSvg, formatNumber, markdownTable, runContext, writeReport } from "./lib/report.js";

const CONNECTIONS = 32;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const FIXED = fixedBody();

async function bareServer(): Promise<{ url: string; stop(): void }> {
  const entry = fileURLToPath(new URL("./servers/bare-http.js", import.meta.url));
  const child = spawn(process.execPath, [entry], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once("exit", () => reject(new Error("the bare server exited")));
  });
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill("SIGTERM") };
}

async function measure(url: string, path: string, body: LoadBody): Promise<LoadResult> {
  const load = { url, path, connections: CONNECTIONS, durationSec: SECONDS, body };
  await warmUp(load, 3);
  return runLoad(load);
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

const bare = await bareServer();
const cluster = await noopCluster();
const runs: Record<"ceiling" | "hits" | "distinct", LoadResult[]> = { ceiling: [], hits: [], distinct: [] };
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
  const before = await scrape(cluster.queryUrl);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, load] of Object.entries(loads) as Array<[keyof typeof runs, (typeof loads)["hits"]]>) {
      const r = await runLoad(load);
      runs[name].push(r);
      process.stdout.write(`round ${round + 1} ${name}: ${r.rps.toFixed(0)}/s, p99 ${r.p99} ms\n`);
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
  bare.stop();
  await cluster.stop();
}
const ceiling = median(runs.ceiling);
const hits = median(runs.hits);
const distinct = median(runs.distinct);

// Separate, profiled runs (one per load): the profiler's own cost stays out of the figures above.
const profilePhase = (body: LoadBody): Promise<ProfileSummary | undefined> =>
  profileFrontend(noopCluster, (profiled) => measure(profiled.queryUrl, "/noop/predict", body));
const hitProfile = await profilePhase(FIXED);
const distinctProfile = await profilePhase(distinctDoubles());

function profileSection(title: string, profile: ProfileSummary | undefined): string {
  if (!profile) return `### ${title}\n\n(no profile was written: the frontend did not exit cleanly)\n`;
  return [
    `### ${title}`,
    "",
    `${profile.totalSamples} samples; self time by area, then the top functions:`,
    "",
    markdownTable(["area", "% of samples"], profile.byArea.map((a) => [a.area, a.percent])),
    "",
    markdownTable(["function", "where", "% self"], profile.byFunction.map((f) => [`\`${f.name}\``, f.where, f.percent])),
    "",
  ].join("\n");
}

const rows: Array<[string, LoadResult]> = [["bare node:http (ceiling)", ceiling], ["frontend, cache hits", hits], ["frontend, distinct inputs, no-op model", distinct]];
const pct = (r: LoadResult) => (100 * r.rps) / ceiling.rps;
writeReport("frontend", [
  "# Frontend benchmark",
  "",
  runContext("npm run build && node dist/bench/frontend.js"),
  "",
  `${CONNECTIONS} concurrent clients (closed loop, autocannon). The three loads run in ${ROUNDS} interleaved rounds of`,
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
  "Client latencies are what autocannon saw, on the same two cores as the servers (at saturation, in a",
  "closed loop, they are mostly queueing: mean latency = connections / throughput). Frontend latencies are",
  "from the frontend's own `clipper_app_request_latency_seconds` histogram (request parsed to answer",
  "written), interpolated within its buckets.",
  "",
  `- cache hits: **${pct(hits).toFixed(0)}%** of the ceiling (target ≥ 80%); hit ratio during the run ${formatNumber(hitRatio)}`,
  `- distinct inputs: **${pct(distinct).toFixed(0)}%** of the ceiling (target ≥ 35%), p99 **${distinct.p99} ms** at the client and **${formatNumber(serverSide.distinct?.p99 ?? NaN)} ms** inside the frontend (target < 10 ms)`,
  "",
  "![answers per second](frontend.svg)",
  "",
  "## Where the time goes",
  "",
  "CPU profiles of the frontend process (`node --cpu-prof`) during separate runs of the same loads.",
  "",
  profileSection("Cache hits", hitProfile),
  profileSection("Distinct inputs through the no-op model", distinctProfile),
  "",
].join("\n"), {
  "frontend.svg": barChartSvg(`Answers/s at ${CONNECTIONS} connections`, "/s",
    rows.map(([name, r]) => ({ label: name.replace(" (ceiling)", ""), value: r.rps, note: `p99 ${r.p99} ms` }))),
});
