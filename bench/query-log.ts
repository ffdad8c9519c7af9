/**
 * Query log benchmark (docs/rollouts.md#query-log): what recording costs the query path. One
 * cluster, a no-op Python model; cache hits (one repeated input) and distinct inputs (through the
 * model) with the query log off, at 1% and at 100% sampling, in interleaved rounds so that the
 * machine's drift hits every setting alike. Each figure is the median over the rounds of the
 * throughput relative to logging off in the same round. Target: cache hits at 100% within 10%
 * of off. Then, in-process, the CPU one record costs the frontend and each check the daemon could
 * make on it. Writes docs/bench/query-log.md and docs/bench/query-log.svg.
 *
 *   npm run build && flock /tmp/clipper-bench.lock node dist/bench/query-log.js   (needs /usr/bin/python3 with numpy and zmq)
 */
import { positiveEnv } from "./lib/env.js";
import { startBenchCluster } from "./lib/cluster.js";
import { distinctDoubles, fixedBody } from "./lib/body.js";
import { closedLoopGenerator, runLoad, warmUp, type LoadResult } from "./lib/load.js";
import { metricSum, scrape } from "./lib/metrics.js";
import { barChartSvg, formatNumber, markdownTable, runContext, writeReport } from "./lib/report.js";
import { processCpuMs } from "./lib/process-cpu.js";
import { measureRecordCosts } from "./lib/query-log-costs.js";

const CONNECTIONS = 32;
const SECONDS = positiveEnv("BENCH_SECONDS", 5);
const ROUNDS = positiveEnv("BENCH_ROUNDS", 5);
/** Large enough that rotation never drops what a run records. */
const MAX_MB = 512;

const SETTINGS = [
  { name: "off", sample: undefined },
  { name: "1%", sample: 0.01 },
  { name: "100%", sample: 1 },
] as const;
type SettingName = (typeof SETTINGS)[number]["name"];
const LOADS = ["hits", "distinct"] as const;
type LoadName = (typeof LOADS)[number];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const cluster = await startBenchCluster();
/** The frontend's and the management daemon's CPU per answered request, µs (/proc; undefined: unknown). */
type Run = { result: LoadResult; cpuUs: number | undefined; daemonCpuUs: number | undefined };
const runs = new Map<string, Run[]>();
const key = (setting: SettingName, load: LoadName) => `${setting}/${load}`;
let recorded = 0;
let dropped = 0;
try {
  await cluster.pythonModel("noop", 1000, { name: "noop", version: "1", file: "noop_model.py:predict" });
  await cluster.conn.registerApplication({ name: "hits", inputType: "doubles", defaultOutput: "-1", sloMicros: 1_000_000 });
  await cluster.conn.linkModelToApp("hits", "noop");
  const loads = {
    hits: { url: cluster.queryUrl, path: "/hits/predict", connections: CONNECTIONS, durationSec: SECONDS, body: fixedBody() },
    distinct: { url: cluster.queryUrl, path: "/noop/predict", connections: CONNECTIONS, durationSec: SECONDS, body: distinctDoubles() },
  };
  for (const load of Object.values(loads)) await warmUp(load, 3);
  const pid = cluster.frontendPid();
  const daemonPid = (await cluster.conn.inspectInstance()).components.find((c) => c.component === "management")?.pid ?? 0;
  const perRequest = (before: number | undefined, after: number | undefined, requests: number) =>
    before === undefined || after === undefined || requests === 0 ? undefined : (1000 * (after - before)) / requests;
  for (let round = 0; round < ROUNDS; round++) {
    // Each round starts at another setting, so that none always follows the same one.
    for (const setting of SETTINGS.map((_, i) => SETTINGS[(i + round) % SETTINGS.length]!)) {
      for (const app of ["hits", "noop"]) {
        await cluster.conn.setQueryLog(app, setting.sample === undefined ? { off: true } : { sample: setting.sample, maxMb: MAX_MB });
      }
      for (const load of LOADS) {
        const cpuBefore = processCpuMs(pid);
        const daemonBefore = processCpuMs(daemonPid);
        const result = await runLoad(loads[load]);
        const cpuUs = perRequest(cpuBefore, processCpuMs(pid), result.requests);
        const daemonCpuUs = perRequest(daemonBefore, processCpuMs(daemonPid), result.requests);
        const list = runs.get(key(setting.name, load)) ?? [];
        list.push({ result, cpuUs, daemonCpuUs });
        runs.set(key(setting.name, load), list);
        process.stdout.write(`round ${round + 1} ${setting.name} ${load}: ${result.rps.toFixed(0)}/s, p99 ${result.p99} ms, frontend CPU ${cpuUs?.toFixed(1) ?? "?"} µs/request, daemon ${daemonCpuUs?.toFixed(1) ?? "?"}\n`);
      }
    }
  }
  const metrics = await scrape(cluster.queryUrl);
  recorded = metricSum(metrics, "clipper_query_log_records_total");
  dropped = metricSum(metrics, "clipper_query_log_dropped_total");
} finally {
  await cluster.stop();
}

const at = (setting: SettingName, load: LoadName) => runs.get(key(setting, load))!;
/** Per round, throughput relative to logging off in the same round. */
const relative = (setting: SettingName, load: LoadName) => at(setting, load).map((r, i) => r.result.rps / at("off", load)[i]!.result.rps);
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
const rows = SETTINGS.flatMap((s) => LOADS.map((load) => {
  const list = at(s.name, load);
  const rel = relative(s.name, load);
  const known = (xs: Array<number | undefined>) => xs.filter((x): x is number => x !== undefined);
  const cpu = known(list.map((r) => r.cpuUs));
  const daemonCpu = known(list.map((r) => r.daemonCpuUs));
  return [s.name, load === "hits" ? "cache hits" : "distinct inputs, no-op model", formatNumber(median(list.map((r) => r.result.rps))),
    pct(median(rel)), rel.map(pct).join(", "), formatNumber(median(list.map((r) => r.result.p99))), cpu.length > 0 ? formatNumber(median(cpu)) : "unknown",
    daemonCpu.length > 0 ? formatNumber(median(daemonCpu)) : "unknown"];
}));
const hitsAtFull = median(relative("100%", "hits"));
const recordCosts = measureRecordCosts();
const generator = closedLoopGenerator();
writeReport("query-log", [
  "# Query log benchmark",
  "",
  runContext("npm run build && flock /tmp/clipper-bench.lock node dist/bench/query-log.js"),
  "",
  `${CONNECTIONS} concurrent clients (closed loop, ${generator}). Cache hits repeat one input; distinct inputs go`,
  "through a no-op Python model (bench/models/noop_model.py), one replica. The query log of both applications is",
  `off, at 1% or at 100% sampling (bound ${MAX_MB} MiB), set through the admin API before each load; the settings`,
  `run in ${ROUNDS} interleaved rounds (each starting at the next setting) of ${SECONDS} s per load after a 3 s warm-up. "vs off" is the median over the`,
  "rounds of the throughput relative to logging off in the same round (each round's ratio listed after it).",
  "",
  markdownTable(["query log", "load", "answers/s (median)", "vs off", "vs off, per round", "client p99 ms (median)", "frontend CPU µs/request (median)",
    "daemon CPU µs/request (median)"], rows),
  "",
  `- cache hits with 100% sampling: **${pct(hitsAtFull)}** of the throughput with logging off (target ≥ 90%)`,
  `- distinct inputs with 100% sampling: **${pct(median(relative("100%", "distinct")))}** of off`,
  `- records delivered to the daemon during the run: ${formatNumber(recorded)}; dropped by the frontend: ${formatNumber(dropped)}`,
  "",
  "CPU per request is each process's user + system time during the load (/proc) over the answers. On two cores that",
  "wrk, the frontend, the daemon and the model share (and other work on this machine), whatever CPU the daemon spends",
  "appending records is taken from the frontend, which then answers fewer requests per event-loop turn (so its own CPU",
  "per request rises too, with no more work per request).",
  "",
  "What one record costs, in this process after the loads, in CPU time (median of 5 passes over 100,000 records of the",
  "cache-hit load's shape; bench/lib/query-log-costs.ts): the frontend's part, the checks the daemon makes on a report,",
  "and the per-record checks it leaves to the log's reader (shared/query-log.ts says why).",
  "",
  markdownTable(["step", "CPU µs per record"], recordCosts.map((c) => [c.step, c.us.toFixed(2)])),
  "",
  "![answers per second](query-log.svg)",
  "",
].join("\n"), {
  "query-log.svg": barChartSvg(`Answers/s at ${CONNECTIONS} connections (medians)`, "/s",
    SETTINGS.flatMap((s) => LOADS.map((load) => ({
      label: `${load === "hits" ? "cache hits" : "distinct"}, log ${s.name}`,
      value: median(at(s.name, load).map((r) => r.result.rps)),
      note: `${pct(median(relative(s.name, load)))} of off`,
    })))),
});
