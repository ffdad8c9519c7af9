/**
 * Python runtime benchmark: our model-container runtime (runtime/python/clipper_runtime) against a
 * stand-in of Clipper's container loop (containers/python/rpc.py; test/fixtures/foreign_container.py
 * works the way it does), with its metrics as shipped (Redis and a metric server beside it, five
 * reports per message: --collect-metrics) and without them (RPCService(collect_metrics=False)),
 * all behind the same query frontend in the same run, serving the same
 * no-op model (bench/models/noop_model.py) with distinct inputs at the same number of connections.
 * Each pair runs behind two frontends in the same run: one batch in flight per replica (Clipper's
 * way) and the frontend's default pipelining (--max-in-flight), so the lever's effect is measured
 * side by side too. Writes docs/bench/python-runtime.md and docs/bench/python-runtime.svg.
 *
 *   npm run build && node dist/bench/python-runtime.js   (needs /usr/bin/python3 with numpy and zmq)
 */
import { positiveEnv } from "./lib/env.js";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BENCH_MODELS, PYTHON, startBenchCluster, type BenchCluster } from "./lib/cluster.js";
import { DEFAULT_MAX_IN_FLIGHT } from "../runtime/shared/frontend-defaults.js";
import { distinctDoubles } from "./lib/body.js";
import { closedLoopGenerator, runLoad, warmUp, type LoadOptions, type LoadResult } from "./lib/load.js";
import { histogramQuantile, meanBatch, scrape } from "./lib/metrics.js";
import { barChartSvg, markdownTable, runContext, writeReport } from "./lib/report.js";
import { RpcDriver, type DriverRound } from "./lib/rpc-driver.js";
import { withPythonRuntimePath } from "../runtime/shared/package-root.js";

const CONNECTIONS = 32;
const SECONDS = positiveEnv("BENCH_SECONDS", 3);
const ROUNDS = positiveEnv("BENCH_ROUNDS", 9);
const SLO_MS = 1000;
const NOOP = "noop_model.py:predict";
const STAND_IN = fileURLToPath(new URL("../../test/fixtures/foreign_container.py", import.meta.url));
const TARGET = 1.5;
/** The container-bound rounds: batches of the mean size seen through the frontend, two queued at the container. */
const DRIVEN_BATCH = 8;
const DRIVEN_IN_FLIGHT = 4;
/** Batches in flight per replica: Clipper's one, and the frontend's default. */
const PIPELINES = [...new Set([1, DEFAULT_MAX_IN_FLIGHT])];

type Runtime = "ours" | "clipper" | "clipperMetrics";
const LABEL: Record<Runtime, string> = {
  ours: "our runtime (clipper_runtime)",
  clipper: "Clipper's rpc.py loop, metrics off (stand-in)",
  clipperMetrics: "Clipper's rpc.py loop as shipped, metrics on (stand-in)",
};
/** rpc.py's metrics need redis-server and Debian's python3-redis, -prometheus-client and -jsonschema; without them that side is left out. */
const METRICS_MISSING = spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status !== 0
  ? "redis-server is not on PATH"
  : spawnSync(PYTHON, ["-c", "import redis, prometheus_client, jsonschema"], { stdio: "ignore" }).status !== 0
    ? `${PYTHON} cannot import redis, prometheus_client and jsonschema`
    : undefined;
const STAND_INS: Runtime[] = METRICS_MISSING ? ["clipper"] : ["clipper", "clipperMetrics"];
/**
 * Container-bound rounds also drive our runtime over pyzmq (CLIPPER_RPC_TRANSPORT=pyzmq), beside its
 * default built-in ZMTP DEALER: the measure behind that default.
 */
type Driven = Runtime | "pyzmq";
const DRIVEN: Driven[] = ["ours", "pyzmq", ...STAND_INS];
const DRIVEN_LABEL: Record<Driven, string> = { ...LABEL, ours: `${LABEL.ours}, built-in ZMTP (the default)`, pyzmq: `${LABEL.ours}, pyzmq` };

/**
 * The applications behind each frontend: the two runtimes with adaptive batching, and our runtime
 * with a fixed batch size of FIXED_BATCH, where 32 clients keep more than one batch queued: the case
 * pipelining is for (a busy replica is only sent full batches, dispatcher.ts).
 */
type App = Runtime | "fixed";
const FIXED_BATCH = 4;
const APP_LABEL: Record<App, string> = { ...LABEL, fixed: `${LABEL.ours}, batch size ${FIXED_BATCH}` };
/** Each side's application and model name (names are lower case). */
const APP_NAME: Record<App, string> = { ours: "ours", clipper: "clipper", clipperMetrics: "clipper-metrics", fixed: "fixed" };

interface Side {
  app: App;
  runtime: Runtime;
  inFlight: number;
  cluster: BenchCluster;
  pid: number;
  load: LoadOptions;
  runs: LoadResult[];
  cpuPerAnswerUs: number[];
  batch: number;
  frontendMs: { p50: number; p99: number };
}

/**
 * CPU time a process's threads (ZeroMQ's I/O thread too) and its child processes' (the metrics'
 * redis-server and metric server) have used so far, in ms (Linux schedstat: ns on a CPU).
 */
function cpuMs(pid: number): number {
  let ns = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]);
    for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").split(" ").filter(Boolean)) {
      ns += 1e6 * cpuMs(Number(child));
    }
  }
  return ns / 1e6;
}

/** The stand-in's arguments: Clipper's loop serving the no-op model, with its metrics as shipped for clipperMetrics. */
function standInArgs(runtime: Runtime, host: string, port: string, name: string): string[] {
  const metrics = runtime === "clipperMetrics" ? ["--collect-metrics", mkdtempSync(join(logDir, "metrics-")), "--metrics-port", "0"] : [];
  return [STAND_IN, "--ip", host, "--port", port, "--name", name, "--version", "1", "--predict", join(BENCH_MODELS, NOOP), ...metrics];
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Starts one runtime's container against an RPC driver (no frontend, no HTTP): our runtime as the
 * local manager starts it, or the stand-in of Clipper's loop.
 */
function spawnContainer(runtime: Driven, port: number, logFile: string): ReturnType<typeof spawn> {
  const log = openSync(logFile, "a");
  if (runtime === "clipper" || runtime === "clipperMetrics") {
    return spawn(PYTHON, standInArgs(runtime, "127.0.0.1", String(port), "clipper"), { stdio: ["ignore", log, log] });
  }
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CLIPPER_")));
  return spawn(PYTHON, ["-m", "clipper_runtime"], {
    stdio: ["ignore", log, log],
    env: withPythonRuntimePath({
      ...env, CLIPPER_MODEL_NAME: "ours", CLIPPER_MODEL_VERSION: "1", CLIPPER_IP: "127.0.0.1", CLIPPER_PORT: String(port),
      CLIPPER_INPUT_TYPE: "doubles", CLIPPER_MODEL_PATH: BENCH_MODELS, CLIPPER_PREDICT: NOOP, CLIPPER_READY_FILE: `${logFile}.ready`,
      ...(runtime === "pyzmq" ? { CLIPPER_RPC_TRANSPORT: "pyzmq" } : {}),
    }),
  });
}

/** The runtimes driven over RPC at full speed, in interleaved rounds: answers/s and CPU per answer. */
async function containerBound(): Promise<Record<Driven, { rounds: DriverRound[]; cpuPerAnswerUs: number[] }>> {
  const result = Object.fromEntries(DRIVEN.map((d) => [d, { rounds: [], cpuPerAnswerUs: [] }])) as unknown as
    Record<Driven, { rounds: DriverRound[]; cpuPerAnswerUs: number[] }>;
  const driven: Array<{ runtime: Driven; driver: RpcDriver; child: ReturnType<typeof spawn> }> = [];
  try {
    for (const runtime of DRIVEN) {
      const driver = new RpcDriver({ model: runtime === "clipper" || runtime === "clipperMetrics" ? "clipper" : "ours", batchSize: DRIVEN_BATCH, inFlight: DRIVEN_IN_FLIGHT });
      const port = await driver.listen();
      const logFile = join(logDir, `driven-${runtime}.log`);
      const child = spawnContainer(runtime, port, logFile);
      driven.push({ runtime, driver, child });
      await driver.waitForContainer(30_000).catch((e: Error) => {
        throw new Error(`${e.message}; its log:\n${readFileSync(logFile, "utf8")}`);
      });
      await driver.run(2); // warm-up
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const { runtime, driver, child } of round % 2 === 0 ? driven : [...driven].reverse()) {
        const cpuBefore = cpuMs(child.pid!);
        const r = await driver.run(SECONDS);
        result[runtime].rounds.push(r);
        result[runtime].cpuPerAnswerUs.push((1000 * (cpuMs(child.pid!) - cpuBefore)) / r.answers);
        process.stdout.write(`driven round ${round + 1} ${runtime}: ${r.answersPerSec.toFixed(0)} answers/s\n`);
      }
    }
  } finally {
    for (const { driver, child } of driven) {
      // SIGTERM: the stand-in with metrics stops its redis-server and metric server on the way out.
      child.kill("SIGTERM");
      await driver.close();
    }
  }
  return result;
}

const clusters: BenchCluster[] = [];
const standIns: Array<ReturnType<typeof spawn>> = [];
const logDir = mkdtempSync(join(tmpdir(), "clipper-bench-standin-"));
const sides: Side[] = [];

/** One stand-in of Clipper's loop behind `cluster`, serving its own application named after `runtime`. */
async function startStandIn(cluster: BenchCluster, runtime: Runtime, inFlight: number): Promise<number> {
  const { conn } = cluster;
  const name = APP_NAME[runtime];
  await conn.registerApplication({ name, inputType: "doubles", defaultOutput: "-1", sloMicros: SLO_MS * 1000 });
  await conn.registerModel({ name, version: "1", inputType: "doubles" });
  await conn.linkModelToApp(name, name);
  const rpc = new URL(cluster.rpcAddress.replace(/^tcp:/, "http:"));
  // Its per-message prints go to a file, as our replica's log lines do (the local manager's logs/).
  const logFile = join(logDir, `${runtime}-standin-${inFlight}.log`);
  const log = openSync(logFile, "a");
  const standIn = spawn(PYTHON, standInArgs(runtime, rpc.hostname, rpc.port, name), { stdio: ["ignore", log, log] });
  standIns.push(standIn);
  await until(async () => (await conn.getAllModelReplicas()).includes(`${name}:1:0`), 30_000, `the stand-in ${name} to register`)
    .catch((e: Error) => {
      throw new Error(`${e.message}; its log:\n${readFileSync(logFile, "utf8")}`);
    });
  return standIn.pid!;
}

/** One frontend with every container behind it, each serving its own application. */
async function startPair(inFlight: number): Promise<void> {
  // Clipper's rpc.py cannot authenticate on the RPC port: the cluster runs --rpc-auth none, for both.
  const cluster = await startBenchCluster({ rpcAuth: "none", maxInFlight: inFlight });
  clusters.push(cluster);
  await cluster.pythonModel("ours", SLO_MS, { name: "ours", version: "1", file: NOOP });
  await cluster.pythonModel("fixed", SLO_MS, { name: "fixed", version: "1", file: NOOP, batchSize: FIXED_BATCH });
  const pids: Partial<Record<App, number>> = {};
  for (const runtime of STAND_INS) pids[runtime] = await startStandIn(cluster, runtime, inFlight);
  const replicas = (await cluster.conn.inspectInstance()).replicas;
  pids.ours = replicas.find((r) => r.name === "ours")?.pid;
  pids.fixed = replicas.find((r) => r.name === "fixed")?.pid;
  for (const app of ["ours", ...STAND_INS, "fixed"] as App[]) {
    const pid = pids[app];
    if (!pid) throw new Error(`no pid for the replica of ${app}`);
    sides.push({
      app, runtime: app === "fixed" ? "ours" : app, inFlight, cluster, pid,
      load: { url: cluster.queryUrl, path: `/${APP_NAME[app]}/predict`, connections: CONNECTIONS, durationSec: SECONDS, body: distinctDoubles() },
      runs: [], cpuPerAnswerUs: [], batch: 0, frontendMs: { p50: 0, p99: 0 },
    });
  }
}

try {
  for (const inFlight of PIPELINES) await startPair(inFlight);
  for (const side of sides) await warmUp(side.load, 3);
  const before = await Promise.all(clusters.map((c) => scrape(c.queryUrl)));
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order, so that drift over the run weighs on every side alike.
    const order = round % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      const cpuBefore = cpuMs(side.pid);
      const r = await runLoad(side.load);
      const answers = r.modelRps * r.seconds;
      side.cpuPerAnswerUs.push(answers > 0 ? (1000 * (cpuMs(side.pid) - cpuBefore)) / answers : NaN);
      side.runs.push(r);
      process.stdout.write(`round ${round + 1} ${side.app} (${side.inFlight} in flight): ${r.rps.toFixed(0)}/s ` +
        `(model ${r.modelRps.toFixed(0)}/s, ${r.defaults} defaults, ${r.non2xx + r.errors} errors), p99 ${r.p99} ms\n`);
    }
  }
  const after = await Promise.all(clusters.map((c) => scrape(c.queryUrl)));
  for (const side of sides) {
    const i = clusters.indexOf(side.cluster);
    side.batch = meanBatch(before[i]!, after[i]!, `${APP_NAME[side.app]}:1`);
    const q = (x: number) => 1000 * histogramQuantile(before[i]!, after[i]!, "clipper_app_request_latency_seconds", { app: APP_NAME[side.app] }, x);
    side.frontendMs = { p50: q(0.5), p99: q(0.99) };
  }
} finally {
  for (const standIn of standIns) standIn.kill("SIGTERM");
  for (const cluster of clusters) await cluster.stop();
}
// With the frontends gone, the containers alone: where the container is the bottleneck.
let driven: Awaited<ReturnType<typeof containerBound>>;
try {
  driven = await containerBound();
} finally {
  rmSync(logDir, { recursive: true, force: true });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const medianRun = (rs: LoadResult[]) => [...rs].sort((a, b) => a.modelRps - b.modelRps)[Math.floor(rs.length / 2)]!;
const side = (app: App, inFlight: number) => sides.find((s) => s.app === app && s.inFlight === inFlight)!;
/** Per round, one side's answers over another's (each pair measured in the same round). */
const roundRatios = (a: Side, b: Side) => a.runs.map((r, i) => r.modelRps / b.runs[i]!.modelRps);
const ratioLine = (what: string, a: Side, b: Side, target?: number) => {
  const ratio = medianRun(a.runs).modelRps / medianRun(b.runs).modelRps;
  const perRound = roundRatios(a, b);
  return `- ${what}, model answers per second (medians): **${ratio.toFixed(2)}×**${target ? ` (target ≥ ${target}×)` : ""}; ` +
    `per round ${perRound.map((x) => `${x.toFixed(2)}×`).join(", ")}, their median ${median(perRound).toFixed(2)}×`;
};
const deflt = DEFAULT_MAX_IN_FLIGHT;
/** Our runtime's model answers/s over a stand-in's, through the frontend at the default in flight. */
const headline = (standIn: Runtime) => medianRun(side("ours", deflt).runs).modelRps / medianRun(side(standIn, deflt).runs).modelRps;
const drivenRps = (runtime: Driven) => median(driven[runtime].rounds.map((r) => r.answersPerSec));
const drivenRatio = (standIn: Runtime) => drivenRps("ours") / drivenRps(standIn);
const drivenPerRound = (standIn: Runtime) => driven.ours.rounds.map((r, i) => r.answersPerSec / driven[standIn].rounds[i]!.answersPerSec);
const verdict = (ratio: number) => (ratio >= TARGET ? `meets the target (≥ ${TARGET}×)` : `misses the target (≥ ${TARGET}×)`);

writeReport("python-runtime", [
  "# Python runtime benchmark",
  "",
  runContext("npm run build && node dist/bench/python-runtime.js"),
  "",
  `Two model containers behind one query frontend (local manager, \`--rpc-auth none\` because Clipper's`,
  "container code cannot authenticate), each serving the same no-op model (bench/models/noop_model.py)",
  `to its own application: our runtime (its default built-in ZMTP DEALER), and a stand-in of Clipper's container loop`,
  "(test/fixtures/foreign_container.py: frame-by-frame receives, numpy parsing into reused buffers and",
  "per-message log lines as in Clipper's containers/python/rpc.py) twice: as shipped, collecting its metrics",
  "(`RPCService()`'s default: a redis-server and a stand-in of clipper_admin's metric server beside it, five",
  "reports published to Redis per message, each validated with jsonschema and logged by the metric server;",
  "their CPU counts as the container's), and with `collect_metrics=False`;",
  ...(METRICS_MISSING ? [`(as shipped left out of this run: ${METRICS_MISSING});`] : []),
  `and our runtime once more with a fixed batch size of ${FIXED_BATCH}, where the 32 clients keep`,
  "more than one batch queued. Two such frontends run side by side: one sends a replica its next batch",
  "only after its answer (`--max-in-flight 1`, Clipper's way), the other keeps the default",
  `${deflt} batches in flight per replica (pipelining). ${CONNECTIONS} concurrent clients`,
  `(closed loop, ${closedLoopGenerator()}, 2 threads) send distinct inputs (8 random doubles) to one application at a time, in`,
  `${ROUNDS} interleaved rounds of ${SECONDS} s after a 3 s warm-up of each, alternating the order; each row is its`,
  "median round by model answers per second. Adaptive batching is on for all (the frontend's default).",
  "",
  markdownTable(["container", "batches in flight per replica", "model answers/s", "defaults", "errors", "client p50 ms", "client p99 ms",
    "frontend p50 ms", "frontend p99 ms", "mean batch", "container CPU µs / answer"],
  sides.map((s) => {
    const r = medianRun(s.runs);
    return [APP_LABEL[s.app], s.inFlight, r.modelRps, r.defaults, r.non2xx + r.errors, r.p50, r.p99,
      s.frontendMs.p50, s.frontendMs.p99, s.batch, median(s.cpuPerAnswerUs)];
  })),
  "",
  ...STAND_INS.map((standIn) => ratioLine(`our runtime / ${LABEL[standIn]} at ${deflt} in flight (the default)`, side("ours", deflt), side(standIn, deflt), TARGET)),
  ...(PIPELINES.length === 1 ? [] : [
    ...STAND_INS.map((standIn) => ratioLine(`our runtime / ${LABEL[standIn]} at 1 in flight`, side("ours", 1), side(standIn, 1))),
    ratioLine(`our runtime, ${deflt} in flight / 1 in flight`, side("ours", deflt), side("ours", 1)),
    ratioLine(`Clipper's loop, ${deflt} in flight / 1 in flight`, side("clipper", deflt), side("clipper", 1)),
    ratioLine(`our runtime with batch size ${FIXED_BATCH}, ${deflt} in flight / 1 in flight`, side("fixed", deflt), side("fixed", 1)),
  ]),
  "",
  "## Container-bound: the RPC driven directly",
  "",
  "Through the frontend on this 2-core machine the frontend, wrk and the container share the cores, and the",
  "container's CPU is a small share of each answer: the HTTP rows mostly measure the frontend. Here each",
  "container is driven over RPC v3 at full speed without HTTP (bench/lib/rpc-driver.ts: the frontend's",
  `own RPC server, with ${DRIVEN_IN_FLIGHT} batches of ${DRIVEN_BATCH} distinct inputs always queued at the container, the next`,
  `one sent as each answer comes), our runtime over each of its transports (CLIPPER_RPC_TRANSPORT) and Clipper's loop`,
  `in ${ROUNDS} interleaved rounds of ${SECONDS} s after the HTTP rounds.`,
  "",
  markdownTable(["container", "answers/s (median round)", "container CPU µs / answer"],
    DRIVEN.map((r) => [DRIVEN_LABEL[r], drivenRps(r), median(driven[r].cpuPerAnswerUs)])),
  "",
  ...STAND_INS.map((standIn) => `- our runtime / ${LABEL[standIn]}, container-bound answers per second (medians): **${drivenRatio(standIn).toFixed(2)}×**; ` +
    `per round ${drivenPerRound(standIn).map((x) => `${x.toFixed(2)}×`).join(", ")}, their median ${median(drivenPerRound(standIn)).toFixed(2)}×`),
  `- our runtime, built-in ZMTP / pyzmq, container-bound answers per second (medians): **${(drivenRps("ours") / drivenRps("pyzmq")).toFixed(2)}×**; ` +
    `per round ${driven.ours.rounds.map((r, i) => `${(r.answersPerSec / driven.pyzmq.rounds[i]!.answersPerSec).toFixed(2)}×`).join(", ")}`,
  "",
  "## Against the target",
  "",
  ...STAND_INS.flatMap((standIn) => [
    `- Against ${LABEL[standIn]}, through the frontend (the issue's measure), at the default ${deflt} in flight: ${headline(standIn).toFixed(2)}×, which ${verdict(headline(standIn))}.`,
    `- Against ${LABEL[standIn]}, container-bound (the RPC driven directly): ${drivenRatio(standIn).toFixed(2)}×, which ${verdict(drivenRatio(standIn))}.`,
  ]),
  "",
  "Container CPU is the CPU time of the Python process's threads over the round (/proc/PID/task/*/schedstat,",
  "libzmq's I/O thread included where pyzmq is used, and of its child processes: the metrics' redis-server and metric server) divided by",
  "the answers it gave (median of the rounds); frontend latencies are from the frontend's",
  "`clipper_app_request_latency_seconds` histogram over all rounds; mean batch from",
  "`clipper_model_batch_size`.",
  "",
  "![model answers per second](python-runtime.svg)",
  "",
].join("\n"), {
  "python-runtime.svg": barChartSvg(`Model answers/s, no-op model, ${CONNECTIONS} connections`, "/s",
    sides.map((s) => {
      const r = medianRun(s.runs);
      const who = { ours: "our runtime", clipper: "Clipper's loop, metrics off", clipperMetrics: "Clipper's loop as shipped", fixed: `ours, batch ${FIXED_BATCH}` }[s.app];
      return { label: `${who}, ${s.inFlight} in flight`, value: r.modelRps, note: `p99 ${r.p99} ms` };
    })),
});
for (const standIn of STAND_INS) {
  process.stdout.write(`ours / ${standIn} at ${deflt} in flight: ${headline(standIn).toFixed(2)}×; container-bound ${drivenRatio(standIn).toFixed(2)}×\n`);
}
