/**
 * Python runtime benchmark: our model-container runtime (runtime/python/clipper_runtime) against a
 * stand-in of Clipper's container loop (containers/python/rpc.py; test/fixtures/foreign_container.py
 * works the way it does), both behind the same query frontend in the same run, serving the same
 * no-op model (bench/models/noop_model.py) with distinct inputs at the same number of connections.
 * Writes docs/bench/python-runtime.md and docs/bench/python-runtime.svg.
 *
 *   npm run build && node dist/bench/python-runtime.js   (needs /usr/bin/python3 with numpy and zmq)
 */
import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BENCH_MODELS, PYTHON, startBenchCluster } from "./lib/cluster.js";
import { distinctDoubles } from "./lib/body.js";
import { runLoad, warmUp, type LoadOptions, type LoadResult } from "./lib/load.js";
import { histogramQuantile, meanBatch, scrape } from "./lib/metrics.js";
import { barChartSvg, markdownTable, runContext, writeReport } from "./lib/report.js";

const CONNECTIONS = 32;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 11);
const SLO_MS = 1000;
const NOOP = "noop_model.py:predict";
const STAND_IN = fileURLToPath(new URL("../../test/fixtures/foreign_container.py", import.meta.url));
const TARGET = 1.5;

type Side = "ours" | "clipper";
const LABEL: Record<Side, string> = {
  ours: "our runtime (clipper_runtime)",
  clipper: "Clipper's rpc.py loop (stand-in)",
};

/** CPU time a process's threads (ZeroMQ's I/O thread too) have used so far, in ms (Linux schedstat: ns on a CPU). */
function cpuMs(pid: number): number {
  let ns = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]);
  }
  return ns / 1e6;
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Clipper's rpc.py cannot authenticate on the RPC port: the cluster runs --rpc-auth none, for both.
const cluster = await startBenchCluster({ rpcAuth: "none" });
const logDir = mkdtempSync(join(tmpdir(), "clipper-bench-standin-"));
let standIn: ReturnType<typeof spawn> | undefined;
const runs: Record<Side, LoadResult[]> = { ours: [], clipper: [] };
const cpuPerAnswerUs: Record<Side, number[]> = { ours: [], clipper: [] };
const batches: Record<Side, number> = { ours: 0, clipper: 0 };
const frontendMs: Record<Side, { p50: number; p99: number }> = { ours: { p50: 0, p99: 0 }, clipper: { p50: 0, p99: 0 } };
try {
  await cluster.pythonModel("ours", SLO_MS, { name: "ours", version: "1", file: NOOP });
  const { conn } = cluster;
  await conn.registerApplication({ name: "clipper", inputType: "doubles", defaultOutput: "-1", sloMicros: SLO_MS * 1000 });
  await conn.registerModel({ name: "clipper", version: "1", inputType: "doubles" });
  await conn.linkModelToApp("clipper", "clipper");
  const rpc = new URL(cluster.rpcAddress.replace(/^tcp:/, "http:"));
  // Its per-message prints go to a file, as our replica's log lines do (the local manager's logs/).
  const log = openSync(join(logDir, "clipper-standin.log"), "a");
  standIn = spawn(PYTHON, [STAND_IN, "--ip", rpc.hostname, "--port", rpc.port, "--name", "clipper", "--version", "1",
    "--predict", join(BENCH_MODELS, NOOP)], { stdio: ["ignore", log, log] });
  await until(async () => (await conn.getAllModelReplicas()).includes("clipper:1:0"), 30_000, "the stand-in to register")
    .catch((e: Error) => {
      throw new Error(`${e.message}; its log:\n${readFileSync(join(logDir, "clipper-standin.log"), "utf8")}`);
    });

  const oursPid = (await conn.inspectInstance()).replicas.find((r) => r.name === "ours")?.pid;
  if (!oursPid || !standIn.pid) throw new Error("no pid for a replica");
  const pids: Record<Side, number> = { ours: oursPid, clipper: standIn.pid };
  const loads: Record<Side, LoadOptions> = {
    ours: { url: cluster.queryUrl, path: "/ours/predict", connections: CONNECTIONS, durationSec: SECONDS, body: distinctDoubles() },
    clipper: { url: cluster.queryUrl, path: "/clipper/predict", connections: CONNECTIONS, durationSec: SECONDS, body: distinctDoubles() },
  };
  for (const load of Object.values(loads)) await warmUp(load, 3);
  const before = await scrape(cluster.queryUrl);
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which side goes first, so that drift over the run weighs on both alike.
    const order: Side[] = round % 2 === 0 ? ["ours", "clipper"] : ["clipper", "ours"];
    for (const side of order) {
      const cpuBefore = cpuMs(pids[side]);
      const r = await runLoad(loads[side]);
      const answers = r.modelRps * r.seconds;
      cpuPerAnswerUs[side].push(answers > 0 ? (1000 * (cpuMs(pids[side]) - cpuBefore)) / answers : NaN);
      runs[side].push(r);
      process.stdout.write(`round ${round + 1} ${side}: ${r.rps.toFixed(0)}/s (model ${r.modelRps.toFixed(0)}/s, ` +
        `${r.defaults} defaults, ${r.non2xx + r.errors} errors), p99 ${r.p99} ms\n`);
    }
  }
  const after = await scrape(cluster.queryUrl);
  for (const side of ["ours", "clipper"] as Side[]) {
    batches[side] = meanBatch(before, after, `${side}:1`);
    const q = (x: number) => 1000 * histogramQuantile(before, after, "clipper_app_request_latency_seconds", { app: side }, x);
    frontendMs[side] = { p50: q(0.5), p99: q(0.99) };
  }
} finally {
  standIn?.kill("SIGTERM");
  await cluster.stop();
  rmSync(logDir, { recursive: true, force: true });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const medianRun = (rs: LoadResult[]) => [...rs].sort((a, b) => a.modelRps - b.modelRps)[Math.floor(rs.length / 2)]!;
const ours = medianRun(runs.ours);
const clipper = medianRun(runs.clipper);
const ratio = ours.modelRps / clipper.modelRps;
const roundRatios = runs.ours.map((r, i) => r.modelRps / runs.clipper[i]!.modelRps);
const sides: Side[] = ["ours", "clipper"];

writeReport("python-runtime", [
  "# Python runtime benchmark",
  "",
  runContext("npm run build && node dist/bench/python-runtime.js"),
  "",
  `Two model containers behind one query frontend (local manager, \`--rpc-auth none\` because Clipper's`,
  "container code cannot authenticate), each serving the same no-op model (bench/models/noop_model.py)",
  `to its own application: our runtime, and a stand-in of Clipper's container loop`,
  "(test/fixtures/foreign_container.py: frame-by-frame receives, numpy parsing into reused buffers and",
  "per-message log lines as in Clipper's containers/python/rpc.py; without its Redis metrics, which",
  `would only slow it down). ${CONNECTIONS} concurrent clients (closed loop, autocannon) send distinct`,
  `inputs (8 random doubles) to one application at a time, in ${ROUNDS} interleaved rounds of ${SECONDS} s`,
  "after a 3 s warm-up of each, alternating which goes first; each row is its median round by model",
  "answers per second. Adaptive batching is on for both (the frontend's default).",
  "",
  markdownTable(["container", "model answers/s", "defaults", "errors", "client p50 ms", "client p99 ms",
    "frontend p50 ms", "frontend p99 ms", "mean batch", "container CPU µs / answer"],
  sides.map((side) => {
    const r = side === "ours" ? ours : clipper;
    return [LABEL[side], r.modelRps, r.defaults, r.non2xx + r.errors, r.p50, r.p99,
      frontendMs[side].p50, frontendMs[side].p99, batches[side], median(cpuPerAnswerUs[side])];
  })),
  "",
  `- our runtime / Clipper's loop, model answers per second (medians): **${ratio.toFixed(2)}×** (target ≥ ${TARGET}×)`,
  `- per round (each pair measured back to back): ${roundRatios.map((x) => `${x.toFixed(2)}×`).join(", ")}; their median ${median(roundRatios).toFixed(2)}×`,
  "",
  "Container CPU is the CPU time of the Python process's threads over the round (/proc/PID/task/*/schedstat,",
  "ZeroMQ's I/O thread included) divided by",
  "the answers it gave (median of the rounds); frontend latencies are from the frontend's",
  "`clipper_app_request_latency_seconds` histogram over all rounds; mean batch from",
  "`clipper_model_batch_size`.",
  "",
  "![model answers per second](python-runtime.svg)",
  "",
].join("\n"), {
  "python-runtime.svg": barChartSvg(`Model answers/s, no-op model, ${CONNECTIONS} connections`, "/s",
    sides.map((side) => {
      const r = side === "ours" ? ours : clipper;
      return { label: side === "ours" ? "our runtime" : "Clipper's rpc.py loop", value: r.modelRps, note: `p99 ${r.p99} ms` };
    })),
});
process.stdout.write(`ours / clipper: ${ratio.toFixed(2)}×\n`);
