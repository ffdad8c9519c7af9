/**
 * Frontend workers benchmark: throughput of one cluster per worker count (`--frontend-workers N`),
 * measured in interleaved rounds in one run, so each N is compared with N=1 under the same machine
 * load. Every cluster serves the same no-op Python model (one replica, connected to every worker).
 * Two closed-loop loads: cache hits (one repeated input, answered from each worker's own cache after
 * the warm-up) and distinct inputs (through the model). Besides throughput, each round records how
 * the answers spread over the workers (their live stats) and the CPU each frontend process used
 * (/proc), so a regression can be told apart from an uneven split or a busy primary.
 * Writes docs/bench/workers.md and docs/bench/workers.svg.
 *
 *   npm run build && BENCH_WORKERS=1,2 node dist/bench/workers.js     (needs /usr/bin/python3 with numpy and zmq)
 *   BENCH_WORKERS=1,2,4,8 BENCH_CONNECTIONS=128 BENCH_WRK_THREADS=4 node dist/bench/workers.js   (a machine with 16 cores or more)
 */
import { positiveEnv } from "./lib/env.js";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { startBenchCluster, type BenchCluster } from "./lib/cluster.js";
import { distinctDoubles, fixedBody, type LoadBody } from "./lib/body.js";
import { closedLoopGenerator, closedLoopThreads, runLoad, warmUp, type LoadResult } from "./lib/load.js";
import { meanBatch, scrape } from "./lib/metrics.js";
import { barChartSvg, formatNumber, markdownTable, runContext, writeReport } from "./lib/report.js";
import { MAX_FRONTEND_WORKERS } from "../runtime/shared/frontend-defaults.js";
import { LIVE_STATS_PATH, LiveStatsSchema, type LiveStats } from "../runtime/shared/live-stats.js";
import { processFamily, USER_HZ } from "../src/managers/local/proc-usage.js";

const SECONDS = positiveEnv("BENCH_SECONDS", 5);
const ROUNDS = positiveEnv("BENCH_ROUNDS", 5);
const CONNECTIONS = positiveEnv("BENCH_CONNECTIONS", 32);
const VARIANTS = variants(process.env.BENCH_WORKERS ?? "1,2");


/**
 * A cluster to measure: N workers, and for N > 1 how the primary spreads connections over them
 * (node:cluster's round-robin handoff, or "none": every worker accepts, the kernel picks).
 */
interface Variant {
  label: string;
  workers: number;
  sched?: "rr" | "none";
}

/** BENCH_WORKERS: "1,2" or "1,2,2:none,2:rr" (N, or N:policy for NODE_CLUSTER_SCHED_POLICY). */
function variants(text: string): Variant[] {
  const parsed = text.split(",").map((part): Variant => {
    const m = /^\s*(\d+)(?::(rr|none))?\s*$/.exec(part);
    const n = m ? Number(m[1]) : NaN;
    if (!m || !Number.isInteger(n) || n < 1 || n > MAX_FRONTEND_WORKERS || (n === 1 && m[2] !== undefined)) {
      throw new Error(`BENCH_WORKERS must list worker counts from 1 to ${MAX_FRONTEND_WORKERS}, each above 1 optionally with :rr or :none, e.g. 1,2,4,8 or 1,2:none; got '${text}'`);
    }
    const sched = m[2] as Variant["sched"];
    return { label: sched ? `${n} (${sched})` : String(n), workers: n, ...(sched ? { sched } : {}) };
  });
  // N=1 is the baseline every ratio is taken against.
  const all = [{ label: "1", workers: 1 }, ...parsed];
  return all.filter((v, i) => all.findIndex((w) => w.label === v.label) === i).sort((a, b) => a.workers - b.workers);
}

const LOADS = {
  hits: { app: "hits", body: fixedBody(), title: "cache hits (one repeated input)" },
  distinct: { app: "noop", body: distinctDoubles(), title: "distinct inputs through the no-op Python model" },
} satisfies Record<string, { app: string; body: LoadBody; title: string }>;
type LoadName = keyof typeof LOADS;

interface Round extends LoadResult {
  /** When the load ran (ms since the epoch), to pick the workers' live-stats samples of this round. */
  startedAt: number;
  endedAt: number;
  /** CPU seconds per second of load: the frontend primary (N > 1) and each worker, by pid. */
  primaryCpu: number;
  workerCpu: number[];
  /**
   * Milliseconds per second each worker's main thread (its event loop) was runnable but waited for
   * a core (/proc/PID/schedstat): the CPU scheduler's share of the latency.
   */
  workerWaitMs: number[];
  /** Share of the answers each worker gave (live stats), filled in after the last round. */
  shares: number[];
  /** Mean batch the replica was sent (all workers' batches), 0 with no model call (cache hits). */
  meanBatch: number;
}

/** The frontend's processes: with N > 1 the primary and its children (the workers); N = 1 is one process. */
function frontendCpuTicks(cluster: BenchCluster, workers: number): { primary: number; workers: Map<number, number> } {
  const pid = cluster.frontendPid();
  const family = processFamily(pid);
  const primary = family.get(pid)?.cpuTicks ?? 0;
  if (workers === 1) return { primary: 0, workers: new Map([[pid, primary]]) };
  family.delete(pid);
  return { primary, workers: new Map([...family].map(([child, t]) => [child, t.cpuTicks])) };
}

/** Each process's main thread: nanoseconds spent runnable but waiting for a core (the second field of /proc/PID/schedstat). */
function runQueueWaitNs(pids: Iterable<number>): Map<number, number> {
  const waits = new Map<number, number>();
  for (const pid of pids) {
    try {
      const wait = Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[1]);
      if (Number.isFinite(wait)) waits.set(pid, wait);
    } catch {
      // gone (a worker forked again) or no schedstat on this kernel: left out
    }
  }
  return waits;
}

async function measure(cluster: BenchCluster, workers: number, load: LoadName): Promise<Round> {
  const scrapeBefore = load === "distinct" ? await scrape(cluster.queryUrl) : "";
  const before = frontendCpuTicks(cluster, workers);
  const waitBefore = runQueueWaitNs(before.workers.keys());
  const startedAt = Date.now();
  const r = await runLoad({ url: cluster.queryUrl, path: `/${LOADS[load].app}/predict`, connections: CONNECTIONS, durationSec: SECONDS, body: LOADS[load].body });
  const endedAt = Date.now();
  const after = frontendCpuTicks(cluster, workers);
  const waitAfter = runQueueWaitNs(after.workers.keys());
  const batch = load === "distinct" ? meanBatch(scrapeBefore, await scrape(cluster.queryUrl), "noop:1") : 0;
  const seconds = (endedAt - startedAt) / 1000;
  const cpu = (ticks: number) => ticks / USER_HZ / seconds;
  return {
    ...r, startedAt, endedAt, shares: [], meanBatch: batch,
    primaryCpu: cpu(after.primary - before.primary),
    workerCpu: [...after.workers].map(([pid, t]) => cpu(t - (before.workers.get(pid) ?? 0))).sort((a, b) => b - a),
    workerWaitMs: [...waitAfter].map(([pid, ns]) => (ns - (waitBefore.get(pid) ?? ns)) / 1e6 / seconds).sort((a, b) => b - a),
  };
}

/** Every worker's live-stats samples so far (the daemon keeps five minutes of them), merged by frontend and time. */
async function collectLiveStats(cluster: BenchCluster, into: Map<string, Map<number, Sample>>): Promise<void> {
  const stats = LiveStatsSchema.parse(await (await fetch(new URL(LIVE_STATS_PATH, cluster.managementUrl))).json());
  for (const frontend of stats.frontends) {
    const samples = into.get(frontend.frontend_id) ?? new Map();
    for (const sample of frontend.samples) samples.set(sample.at, sample);
    into.set(frontend.frontend_id, samples);
  }
}

/** Each worker's share of one round's answers: its samples that ended within the round's window. */
function sharesOf(round: Round, app: string, samples: Map<string, Map<number, Sample>>): number[] {
  const answered = [...samples.values()].map((byTime) => {
    let n = 0;
    for (const sample of byTime.values()) {
      // A sample that ended up to one interval after the round still counts the round's last answers.
      if (sample.at <= round.startedAt || sample.at > round.endedAt + sample.interval_ms) continue;
      const a = sample.apps.find((s) => s.app === app);
      if (a) n += (a.requests_per_s * sample.interval_ms) / 1000;
    }
    return n;
  });
  const total = answered.reduce((s, n) => s + n, 0);
  return total === 0 ? [] : answered.map((n) => n / total).sort((a, b) => b - a);
}

/** Fails when the answers are defaults rather than the model's (a replica not connected to a worker). */
async function checkAnswers(cluster: BenchCluster, workers: number): Promise<void> {
  for (let i = 0; i < 4 * workers; i++) {
    // A fresh connection each: the connections are spread over the workers.
    const res = await fetch(`${cluster.queryUrl}/hits/predict`, { method: "POST", body: JSON.stringify({ input: [i] }), headers: { connection: "close" } });
    const answer = (await res.json()) as { default?: boolean };
    if (res.status !== 200 || answer.default !== false) throw new Error(`N=${workers}: a query got ${res.status} ${JSON.stringify(answer)}`);
  }
}

const median = (values: Round[]) => [...values].sort((a, b) => a.rps - b.rps)[Math.floor(values.length / 2)]!;

type Sample = LiveStats["frontends"][number]["samples"][number];
/** Per variant: the cluster, its rounds per load, and its workers' live-stats samples by frontend and time. */
/** Frontend CPU (cores) of each variant while nothing queries it. */
const idleCpu = new Map<string, number>();
const IDLE_SECONDS = 10;
const runs = new Map<string, { variant: Variant; cluster: BenchCluster; rounds: Record<LoadName, Round[]>; samples: Map<string, Map<number, Sample>> }>();
try {
  for (const variant of VARIANTS) {
    const cluster = await startBenchCluster({
      frontendWorkers: variant.workers, ...(variant.sched ? { env: { NODE_CLUSTER_SCHED_POLICY: variant.sched } } : {}),
    });
    runs.set(variant.label, { variant, cluster, rounds: { hits: [], distinct: [] }, samples: new Map() });
    await cluster.pythonModel("noop", 1000, { name: "noop", version: "1", file: "noop_model.py:predict" });
    await cluster.conn.registerApplication({ name: "hits", inputType: "doubles", defaultOutput: "-1", sloMicros: 1_000_000 });
    await cluster.conn.linkModelToApp("hits", "noop");
    await checkAnswers(cluster, variant.workers);
  }
  // Warm-up: every worker's cache holds the input, JIT settled, on every cluster.
  for (const { cluster } of runs.values()) {
    for (const load of Object.values(LOADS)) {
      await warmUp({ url: cluster.queryUrl, path: `/${load.app}/predict`, connections: CONNECTIONS, durationSec: 3, body: load.body }, 3);
    }
  }
  const all = [...runs.values()];
  // What the workers cost with no query at all (config watch, live stats, heartbeats), all clusters idle.
  const idleBefore = all.map((run) => frontendCpuTicks(run.cluster, run.variant.workers));
  await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
  all.forEach((run, i) => {
    const after = frontendCpuTicks(run.cluster, run.variant.workers);
    const ticks = after.primary - idleBefore[i]!.primary + [...after.workers].reduce((sum, [pid, t]) => sum + t - (idleBefore[i]!.workers.get(pid) ?? 0), 0);
    idleCpu.set(run.variant.label, ticks / USER_HZ / IDLE_SECONDS);
  });
  for (let round = 0; round < ROUNDS; round++) {
    // Interleaved, and the order turns each round, so drift on a shared machine hits every variant alike.
    const order = all.map((_, i) => all[(i + round) % all.length]!);
    for (const load of Object.keys(LOADS) as LoadName[]) {
      for (const run of order) {
        const r = await measure(run.cluster, run.variant.workers, load);
        run.rounds[load].push(r);
        process.stdout.write(`round ${round + 1} ${load} N=${run.variant.label}: ${r.rps.toFixed(0)}/s, p99 ${r.p99.toFixed(1)} ms, ` +
          `cpu primary ${r.primaryCpu.toFixed(2)} workers ${r.workerCpu.map((c) => c.toFixed(2)).join("/")}` +
          ` run-queue wait ${r.workerWaitMs.map((w) => w.toFixed(0)).join("/")} ms/s` +
          `${load === "distinct" ? `, mean batch ${r.meanBatch.toFixed(1)}` : ""}, errors ${r.errors + r.non2xx}\n`);
      }
    }
    for (const run of all) await collectLiveStats(run.cluster, run.samples);
  }
  // The last samples reach the daemon within one live-stats interval.
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  for (const run of all) await collectLiveStats(run.cluster, run.samples);
} finally {
  for (const { cluster } of runs.values()) await cluster.stop();
}
for (const run of runs.values()) {
  for (const load of Object.keys(LOADS) as LoadName[]) {
    for (const r of run.rounds[load]) r.shares = sharesOf(r, LOADS[load].app, run.samples);
  }
}

const cores = availableParallelism();
const pct = (v: number) => `${Math.round(100 * v)}%`;
function table(load: LoadName): { text: string; results: Array<{ label: string; rps: number; ratio: number; p99: number }> } {
  const baseRounds = runs.get("1")!.rounds[load];
  const base = median(baseRounds).rps;
  const results = [...runs.values()].map(({ variant, rounds }) => {
    const list = rounds[load];
    const m = median(list);
    // Each round against N=1's round of the same number: the spread one median hides.
    const ratios = list.map((r, i) => r.rps / baseRounds[i]!.rps).sort((a, b) => a - b);
    const errors = list.reduce((s, r) => s + r.errors + r.non2xx, 0);
    return { variant, label: variant.label, m, ratios, errors, rps: m.rps, ratio: m.rps / base, p99: m.p99 };
  });
  const text = markdownTable(
    ["workers", "answers/s", "× N=1", "per-round × N=1 (min–median–max)", "target", "client p50 ms", "client p99 ms", "frontend CPU (primary + workers), cores", "workers' wait for a core, ms/s", "answers per worker",
      ...(load === "distinct" ? ["mean batch"] : []), "errors"],
    results.map(({ variant, m, rps, ratio, ratios, errors }) => {
      const n = variant.workers;
      return [variant.label, rps, ratio.toFixed(2),
        n === 1 ? "-" : [ratios[0]!, ratios[Math.floor(ratios.length / 2)]!, ratios.at(-1)!].map((x) => x.toFixed(2)).join("–"), target(n),
        m.p50, m.p99, `${n > 1 ? `${m.primaryCpu.toFixed(2)} + ` : ""}${m.workerCpu.map((c) => c.toFixed(2)).join(" + ")}`,
        m.workerWaitMs.map((w) => w.toFixed(0)).join(" / "),
        n === 1 ? "-" : m.shares.length === 0 ? "(no live stats)" : m.shares.map(pct).join(" / "),
        ...(load === "distinct" ? [m.meanBatch.toFixed(1)] : []), errors];
    }));
  return { text, results };
}
const hits = table("hits");
const distinct = table("distinct");

const settings = ["BENCH_ROUNDS", "BENCH_SECONDS", "BENCH_CONNECTIONS", "BENCH_WRK_THREADS", "BENCH_LOAD"]
  .filter((name) => process.env[name] !== undefined).map((name) => ` ${name}=${process.env[name]}`).join("");
const command = `npm run build && BENCH_WORKERS=${VARIANTS.map((v) => v.sched ? `${v.workers}:${v.sched}` : v.workers).join(",")}${settings} node dist/bench/workers.js`;
const generator = closedLoopGenerator();
writeReport("workers", [
  "# Frontend workers benchmark",
  "",
  runContext(command),
  "",
  `Closed loops of ${CONNECTIONS} connections (${generator}${generator === "wrk" ? `, ${closedLoopThreads()} threads` : ""}) against one cluster per worker count,`,
  `all started before the first round. ${ROUNDS} interleaved rounds of ${SECONDS} s (the order of the clusters turns each round)`,
  "after a warm-up that fills every worker's cache; each row is the round with the median throughput, and the",
  "ratio is against N=1's median in the same run; the per-round column divides each round by N=1's round of the",
  "same number. The frontend CPU is that row's round, from /proc; the answers per worker come from the workers' own",
  "live stats. The clients run on the same cores as the servers.",
  "",
  `## ${LOADS.hits.title}`,
  "",
  hits.text,
  "",
  `## ${LOADS.distinct.title}`,
  "",
  distinct.text,
  "",
  `With no query at all (config watch, live stats, heartbeats; ${IDLE_SECONDS} s, every cluster idle), the frontend used ` +
    [...idleCpu].map(([label, cpu]) => `${(100 * cpu).toFixed(1)}% of a core at N=${label}`).join(", ") + ".",
  "",
  `This machine has ${cores} cores, shared by the load generator and every cluster. The target is no regression`,
  "(≥ 1.0× N=1) where the workers outnumber the cores left over after the client, and ≥ 0.7×N beyond.",
  "",
  "![answers per second](workers.svg)",
  "",
].join("\n"), {
  "workers.svg": barChartSvg(`Answers/s at ${CONNECTIONS} connections`, "/s", [
    ...hits.results.map((r) => ({ label: `hits N=${r.label}`, value: r.rps, note: `${formatNumber(r.ratio)}×, p99 ${formatNumber(r.p99)} ms` })),
    ...distinct.results.map((r) => ({ label: `distinct N=${r.label}`, value: r.rps, note: `${formatNumber(r.ratio)}×, p99 ${formatNumber(r.p99)} ms` })),
  ]),
});

/** What N workers should reach on this machine: linear scaling needs a core per worker besides the client's threads. */
function target(n: number): string {
  if (n === 1) return "-";
  return n + closedLoopThreads() <= cores ? `≥ ${(0.7 * n).toFixed(1)}×` : "≥ 1.0×";
}
