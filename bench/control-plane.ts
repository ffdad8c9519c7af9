/**
 * Control plane at scale (issue 16 §1): the state grows through the admin REST API to 10,000
 * applications and 2,000 model versions (each application with a policy and a link), and at each size
 * it measures what a configuration change costs:
 *   - admin write latency (p50, p99) of link/unlink writes, alone and under query load;
 *   - the time from a write's acknowledgement until every frontend has applied it (the daemon's
 *     /admin/get_applied_revisions, which each frontend worker reports to as soon as it applied);
 *   - the frontend's CPU per applied change (its clipper_frontend_config_apply_cpu_seconds histogram);
 *   - the query p99 of a steady open-loop load, without and with admin writes at a steady rate.
 * Writes docs/bench/control-plane.md and docs/bench/control-plane.svg.
 *
 *   npm run build && flock /tmp/clipper-bench.lock node dist/bench/control-plane.js
 *
 * BENCH_SIZES (default 100,1000,5000,10000 applications), BENCH_SECONDS (each load, default 10),
 * BENCH_QUERY_RATE (default 500/s), BENCH_WRITE_RATE (default 100/s), BENCH_FRONTEND_WORKERS (default 2),
 * BENCH_ROUNDS (interleaved rounds of the loads without and with writes, default 3; medians over them).
 */
import { execSync } from "node:child_process";
import { positiveEnv } from "./lib/env.js";
import { startBenchCluster, type BenchCluster } from "./lib/cluster.js";
import { distinctDoubles } from "./lib/body.js";
import { runOpenLoop } from "./lib/open-loop.js";
import type { LoadResult } from "./lib/load.js";
import { histogramQuantile, metricValue, scrape } from "./lib/metrics.js";
import { barChartSvg, markdownTable, runContext, writeReport } from "./lib/report.js";
import { clusterCpuMs, cpuRate, CPU_PARTS, type CpuByPart } from "./lib/cluster-cpu.js";
import { Admin, PROBE_APPS, prepareProbes, ProbeWriter, writeAtRate } from "./lib/admin-writes.js";

const SIZES = (process.env.BENCH_SIZES ?? "100,1000,5000,10000").split(",").map(Number);
const SECONDS = positiveEnv("BENCH_SECONDS", 10);
const QUERY_RATE = positiveEnv("BENCH_QUERY_RATE", 500);
const WRITE_RATE = positiveEnv("BENCH_WRITE_RATE", 100);
const WORKERS = positiveEnv("BENCH_FRONTEND_WORKERS", 2);
const ROUNDS = positiveEnv("BENCH_ROUNDS", 3);
/** Model versions per application: 2,000 at 10,000 applications (two versions per model). */
const VERSIONS_PER_APP = 0.2;
/** Sequential probe writes per size for the apply delay and the CPU per change. */
const PROBES = 40;
/** Growth writes in flight (the daemon serializes them; this only hides the HTTP round trips). */
const GROWTH_CONCURRENCY = 8;
const POLICIES = [undefined, { name: "exp3" }, { name: "ensemble", threshold: 0.5 }, { name: "exp4" }];

/** The BENCH_* settings of this run, as the command to repeat it sets them. */
const ENV_SET = ["BENCH_SIZES", "BENCH_SECONDS", "BENCH_QUERY_RATE", "BENCH_WRITE_RATE", "BENCH_FRONTEND_WORKERS", "BENCH_ROUNDS"]
  .filter((name) => process.env[name] !== undefined).map((name) => `${name}=${process.env[name]} `).join("");

const pad = (n: number, width = 5) => String(n).padStart(width, "0");
const modelName = (i: number) => `model-${pad(i)}`;

/** Runs `jobs` with at most `limit` in flight. */
async function inParallel(jobs: Array<() => Promise<unknown>>, limit: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < jobs.length) await jobs[next++]!();
  }));
}

/** Grows the state to `apps` applications and apps × VERSIONS_PER_APP model versions (two per model), each app linked, with a policy. */
async function growTo(admin: Admin, fromApps: number, apps: number): Promise<void> {
  const modelsBefore = Math.ceil((fromApps * VERSIONS_PER_APP) / 2);
  const models = Math.ceil((apps * VERSIONS_PER_APP) / 2);
  const modelJobs: Array<() => Promise<unknown>> = [];
  for (let m = modelsBefore; m < models; m++) {
    for (const version of ["1", "2"]) {
      modelJobs.push(() => admin.post("/admin/add_model", {
        model_name: modelName(m), model_version: version, labels: ["bench"], input_type: "doubles",
        container_name: "NO_CONTAINER", model_data_path: "none", batch_size: -1,
      }));
    }
  }
  await inParallel(modelJobs, GROWTH_CONCURRENCY);
  const appJobs: Array<() => Promise<unknown>> = [];
  for (let a = fromApps; a < apps; a++) {
    const name = `app-${pad(a)}`;
    const policy = POLICIES[a % POLICIES.length];
    appJobs.push(async () => {
      await admin.post("/admin/add_app", {
        name, input_type: "doubles", default_output: "-1", latency_slo_micros: 100_000 + (a % 50) * 1000, ...(policy ? { policy } : {}),
      });
      await admin.post("/admin/add_model_links", { app_name: name, model_names: [modelName(a % models)] });
    });
  }
  await inParallel(appJobs, GROWTH_CONCURRENCY);
}

/** Polls the daemon until every frontend has applied `revision`; ms after `since`. */
async function appliedAfter(admin: Admin, revision: number, since: number): Promise<number> {
  for (;;) {
    if ((await admin.applied()).least >= revision) return performance.now() - since;
    await new Promise((r) => setTimeout(r, 1));
  }
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
};

interface SizeResult {
  apps: number;
  versions: number;
  stateKb: number;
  writeP50: number;
  writeP99: number;
  appliedP50: number;
  appliedP99: number;
  cpuMeanMs: number;
  cpuP99Ms: number;
  queryP99: number;
  queryP99Writes: number;
  /** Each round's query p99 with writes / without. */
  roundRatios: number[];
  writeP50Load: number;
  writeP99Load: number;
  writesDone: number;
  writeErrors: number;
  queryDefaults: number;
  /** CPU per second of each part of the cluster during the query load, without and with writes. */
  cpuQuiet: CpuByPart;
  cpuWrites: CpuByPart;
  /** The frontend workers' event-loop delay p99 (ms) over each load (prom-client's monitorEventLoopDelay). */
  loopP99Quiet: number;
  loopP99Writes: number;
}

interface Phase {
  load: LoadResult;
  cpu: CpuByPart;
  loopP99: number;
}

/** One load phase, with each process's CPU per second and the workers' event-loop delay p99 over it. */
async function phase(cluster: BenchCluster, loopLag: () => Promise<number>, run: () => Promise<LoadResult>): Promise<Phase> {
  await loopLag(); // resets the delay histogram (each scrape reads and resets it)
  const before = await clusterCpuMs(cluster);
  const started = performance.now();
  const load = await run();
  const cpu = cpuRate(before, await clusterCpuMs(cluster), (performance.now() - started) / 1000);
  return { load, cpu, loopP99: await loopLag() };
}

const median = (values: number[]) => quantile(values, 0.5);
const medianCpu = (phases: Phase[]) =>
  Object.fromEntries(CPU_PARTS.map((part) => [part, median(phases.map((p) => p.cpu[part]))])) as CpuByPart;

async function measureSize(cluster: BenchCluster, admin: Admin, probes: ProbeWriter, apps: number): Promise<SizeResult> {
  // Sequential probes: each write's latency, then the time until every frontend applied it.
  const before = await scrape(cluster.queryUrl);
  const writes: number[] = [];
  const applied: number[] = [];
  for (let i = 0; i < PROBES; i++) {
    const write = await probes.write();
    if (!write) continue;
    writes.push(write.ms);
    applied.push(await appliedAfter(admin, write.revision, performance.now()));
  }
  const after = await scrape(cluster.queryUrl);
  const d = (name: string) => metricValue(after, name, { kind: "delta" }) - metricValue(before, name, { kind: "delta" });
  const cpuMeanMs = (1000 * d("clipper_frontend_config_apply_cpu_seconds_sum")) / Math.max(1, d("clipper_frontend_config_apply_cpu_seconds_count"));
  const cpuP99Ms = 1000 * histogramQuantile(before, after, "clipper_frontend_config_apply_cpu_seconds", { kind: "delta" }, 0.99);

  // Query p99 without and with admin writes at a steady rate (open loop: each write's latency
  // counts from its scheduled time, so a store that falls behind shows), in interleaved rounds so
  // that what else the shared machine runs meanwhile falls on both alike; medians over the rounds.
  const load = { url: cluster.queryUrl, path: "/hot/predict", rate: QUERY_RATE, durationSec: SECONDS, body: distinctDoubles() };
  const loopLag = async () => 1000 * metricValue(await scrape(cluster.queryUrl), "nodejs_eventloop_lag_p99_seconds");
  const underLoad: number[] = [];
  const errorsBefore = probes.errors;
  const quiet: Phase[] = [];
  const busy: Phase[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    quiet.push(await phase(cluster, loopLag, () => runOpenLoop(load)));
    busy.push(await phase(cluster, loopLag, async () => {
      const writer = writeAtRate(probes, WRITE_RATE, WRITE_RATE * SECONDS, (ms) => underLoad.push(ms));
      const result = await runOpenLoop(load);
      await writer;
      return result;
    }));
  }
  const stateKb = Math.round((await admin.snapshotBytes()) / 1024);
  return {
    apps, versions: Math.ceil((apps * VERSIONS_PER_APP) / 2) * 2, stateKb,
    writeP50: quantile(writes, 0.5), writeP99: quantile(writes, 0.99),
    appliedP50: quantile(applied, 0.5), appliedP99: quantile(applied, 0.99),
    cpuMeanMs, cpuP99Ms,
    queryP99: median(quiet.map((p) => p.load.p99)), queryP99Writes: median(busy.map((p) => p.load.p99)),
    roundRatios: quiet.map((q, i) => busy[i]!.load.p99 / Math.max(1, q.load.p99)),
    writeP50Load: quantile(underLoad, 0.5), writeP99Load: quantile(underLoad, 0.99), writesDone: underLoad.length,
    writeErrors: probes.errors - errorsBefore,
    queryDefaults: [...quiet, ...busy].reduce((sum, p) => sum + p.load.defaults + p.load.non2xx, 0),
    cpuQuiet: medianCpu(quiet), cpuWrites: medianCpu(busy),
    loopP99Quiet: median(quiet.map((p) => p.loopP99)), loopP99Writes: median(busy.map((p) => p.loopP99)),
  };
}

const results: SizeResult[] = [];
const cluster = await startBenchCluster({ cacheBytes: 0, frontendWorkers: WORKERS });
let cleanup = () => {};
try {
  const { admin, probes } = await prepareProbes(cluster);
  cleanup = () => admin.close();
  await runOpenLoop({ url: cluster.queryUrl, path: "/hot/predict", rate: QUERY_RATE, durationSec: 3, body: distinctDoubles() }); // warm-up
  let apps = 0;
  for (const size of SIZES) {
    const grown = performance.now();
    await growTo(admin, apps, size);
    apps = size;
    process.stdout.write(`grew to ${size} applications in ${((performance.now() - grown) / 1000).toFixed(0)} s; measuring\n`);
    const result = await measureSize(cluster, admin, probes, size);
    results.push(result);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
} finally {
  cleanup();
  await cluster.stop();
}

const commit = execSync("git rev-parse --short HEAD").toString().trim();
const last = results.at(-1)!;
const verdict = (ok: boolean) => (ok ? "met" : "**not met**");
writeReport("control-plane", [
  "# Control plane at scale",
  "",
  runContext(`npm run build && ${ENV_SET}flock /tmp/clipper-bench.lock node dist/bench/control-plane.js`),
  `Commit measured: \`${commit}\`.`,
  "",
  `The state grows through the admin REST API: applications \`app-NNNNN\`, each with a policy (default, exp3, ensemble, exp4 in turn)`,
  "and a link to one of the models; one model version per 5 applications, two versions per model (2,000 at 10,000 applications).",
  `One local cluster, the frontend with ${WORKERS} workers (each one follows the watch stream and reports what it applied).`,
  "At each size:",
  `- ${PROBES} sequential probe writes (a link added to or removed from a probe application): the write's latency, and the time`,
  "  from its acknowledgement until every frontend worker reports it applied (polling `/admin/get_applied_revisions`, which",
  "  includes each worker's report round trip: an upper bound on when the change is in force);",
  "- the frontend's CPU per applied delta: its `clipper_frontend_config_apply_cpu_seconds{kind=\"delta\"}` histogram",
  "  (process.cpuUsage around reading and applying one watch line), mean and p99 over the probes;",
  `- query p99 of a ${QUERY_RATE} req/s open-loop load on a 1 ms Python model for ${SECONDS} s, then again while probe writes run at`,
  `  ${WRITE_RATE}/s (their latency under load in the last columns), in ${ROUNDS} interleaved rounds: the p99 columns are the medians`,
  "  of the rounds' p99s, the ratio is theirs, and each round's own ratio follows it. Probe writes toggle the link of one of",
  `  ${PROBE_APPS} probe applications; the bench's writer is a node:http client on a keep-alive connection, asleep between writes.`,
  "",
  markdownTable([
    "apps", "versions", "state KB (snapshot)", "write p50 ms", "write p99 ms", "applied p50 ms", "applied p99 ms",
    "apply CPU mean ms", "apply CPU p99 ms", "query p99 ms", `query p99 ms, ${WRITE_RATE} writes/s`, "ratio", "ratio per round",
    "write p50 ms (load)", "write p99 ms (load)", "writes acked", "write errors", "non-model answers",
  ], results.map((r) => [
    r.apps, r.versions, r.stateKb, r.writeP50, r.writeP99, r.appliedP50, r.appliedP99, r.cpuMeanMs, r.cpuP99Ms,
    r.queryP99, r.queryP99Writes, (r.queryP99Writes / Math.max(1, r.queryP99)).toFixed(2),
    r.roundRatios.map((ratio) => ratio.toFixed(2)).join(", "), r.writeP50Load, r.writeP99Load,
    `${r.writesDone} / ${ROUNDS * WRITE_RATE * SECONDS}`, r.writeErrors, r.queryDefaults,
  ])),
  "",
  `Targets (issue 16) at ${last.apps} applications:`,
  `- apply CPU per change < 5 ms: mean ${last.cpuMeanMs.toFixed(2)} ms, p99 ${last.cpuP99Ms.toFixed(2)} ms: ${verdict(last.cpuP99Ms < 5)}.`,
  `- in force on every frontend < 100 ms after the ack: p99 ${last.appliedP99.toFixed(0)} ms: ${verdict(last.appliedP99 < 100)}.`,
  `- query p99 under ${WRITE_RATE} writes/s within 1.5× of without: ${last.queryP99Writes} vs ${last.queryP99} ms: ${verdict(last.queryP99Writes <= 1.5 * Math.max(1, last.queryP99))}.`,
  "",
  "Where the CPU goes (ms of CPU per second, all processes of the cluster and the bench itself, from /proc) during the query",
  `load without and with ${WRITE_RATE} writes/s, and the frontend workers' event-loop delay p99 over each load:`,
  "",
  markdownTable([
    "apps", ...CPU_PARTS.map((part) => `${part}: without → with writes`), "all: without → with", "worker loop delay p99 ms: without → with",
  ], results.map((r) => {
    const sum = (cpu: CpuByPart) => CPU_PARTS.reduce((total, part) => total + cpu[part], 0);
    return [
      r.apps, ...CPU_PARTS.map((part) => `${r.cpuQuiet[part]} → ${r.cpuWrites[part]}`), `${sum(r.cpuQuiet)} → ${sum(r.cpuWrites)}`,
      `${r.loopP99Quiet.toFixed(1)} → ${r.loopP99Writes.toFixed(1)}`,
    ];
  })),
  "",
  `Write latency under load counts from each write's scheduled time (${WRITE_RATE}/s, open loop): a store that cannot keep`,
  "that rate queues the writes, and their latency grows over the window.",
  "",
  "![control plane at scale](control-plane.svg)",
  "",
].join("\n"), {
  "control-plane.svg": barChartSvg("Per state size: in force on every frontend, apply CPU, query p99 under writes", "ms", results.flatMap((r) => [
    { label: `${r.apps} apps: in force p99`, value: r.appliedP99, note: "target < 100" },
    { label: `${r.apps} apps: apply CPU p99`, value: r.cpuP99Ms, note: "target < 5" },
    { label: `${r.apps} apps: query p99`, value: r.queryP99Writes, note: `${WRITE_RATE} writes/s; ${r.queryP99} ms without` },
  ])),
});
