/**
 * `clipper start --frontend-workers 2` on the local manager, with the real CLI, supervisor, daemon,
 * frontend workers and a Node replica: queries on fresh connections reach both workers; the one
 * replica is connected to both (each worker's live stats show it); a link and an unlink reach both
 * (their applied revisions and their answers); one /metrics scrape, whichever worker takes it,
 * counts every worker's queries and the replica once; a killed worker is forked again and reconnected.
 * Then the frontend process alone: bad --workers flags, a worker that cannot bind its RPC port,
 * SIGTERM and SIGKILL of the primary; `clipper status` counting a primary's workers in its usage.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { cliCluster } from "./support/cli.js";
import { findFreePortRun } from "../src/managers/local/ports.js";
import { waitFor } from "./support/cluster-in-process.js";
import { processUsage } from "../src/managers/local/proc-usage.js";
import { LiveStatsSchema, LIVE_STATS_PATH } from "../runtime/shared/live-stats.js";
import { APPLIED_REVISIONS_PATH, AppliedRevisionsSchema } from "../runtime/shared/state.js";
import { parsePrometheusText } from "../src/frontend-metrics.js";
import { liveReplicasByWorker, predictOnNewConnection } from "./support/frontend-workers.js";

const FRONTEND_MAIN = join(fileURLToPath(new URL("..", import.meta.url)), "dist", "runtime", "frontend", "main.js");
const SUM = join(fileURLToPath(new URL("./fixtures/node-models/", import.meta.url)), "sum.mjs");

/** GET /metrics on its own connection (so the scrapes of a loop reach both workers in turn). */
async function scrapeOnNewConnection(queryUrl: string): Promise<(name: string, labels: Record<string, string>) => number | undefined> {
  const text = await new Promise<string>((resolve, reject) => {
    const req = request(`${queryUrl}/metrics`, { agent: false, headers: { connection: "close" } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics answered ${res.statusCode}: ${body}`))));
    });
    req.on("error", reject);
    req.end();
  });
  const samples = parsePrometheusText(text);
  return (name, labels) => samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

/** A frontend primary with two workers, on its own (no daemon answers), once both listen; with its worker pids. */
async function twoWorkerPrimary() {
  const rpcPort = await findFreePortRun("127.0.0.1", 2);
  const child = spawn(process.execPath, [FRONTEND_MAIN, "--management-url", "http://127.0.0.1:9", "--rpc-auth", "none",
    "--port", "0", "--rpc-port", String(rpcPort), "--workers", "2"], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
  await waitFor(() => output.includes("query frontend workers listening"), 20_000, "the workers to listen");
  const workers = execFileSync("ps", ["-o", "pid=", "--ppid", String(child.pid)], { encoding: "utf8" })
    .split("\n").map((l) => Number(l.trim())).filter((n) => n > 0);
  return { child, workers, exited, output: () => output };
}

describe("two frontend workers on the local manager", { timeout: 240_000 }, () => {
  const { home, ok, urls } = cliCluster("clipper-workers-e2e-", { startFlags: ["--frontend-workers", "2"], rpcPorts: 2 });

  const admin = async (path: string) => (await fetch(`${urls.managementUrl}${path}`)).json();
  /** Per worker frontend id: the replicas of sum:1 in its latest live stats sample, and when it was taken. */
  const liveReplicas = () => liveReplicasByWorker(urls.managementUrl, "sum", "1");
  const applied = async () => AppliedRevisionsSchema.parse(await admin(APPLIED_REVISIONS_PATH));
  /** The frontend primary's pid (the supervisor's children.json) and its worker pids. */
  const workerPids = (): number[] => {
    const children = JSON.parse(readFileSync(join(home, "clusters", "default", "children.json"), "utf8")) as {
      children: Array<{ component: string; pid: number }>;
    };
    const primary = children.children.find((c) => c.component === "frontend")!.pid;
    return execFileSync("ps", ["-o", "pid=", "--ppid", String(primary)], { encoding: "utf8" })
      .split("\n").map((l) => Number(l.trim())).filter((n) => n > 0).sort();
  };

  it("serves queries from both workers, each connected to the replica, and a link or unlink reaches both", async () => {
    await ok("register-app", "w", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "5000");
    await ok("deploy-model", "sum", "--version", "1", "--input-type", "doubles", "--framework", "node", "--predict", `${SUM}:predict`);
    // Two worker processes under the frontend primary, reporting as two frontends.
    expect(workerPids()).toHaveLength(2);
    await waitFor(async () => {
      const live = await liveReplicas();
      return [...live.values()].filter((w) => w.replicas === 1).length === 2;
    }, 30_000, "both workers' live stats to show the replica");
    const ids = [...(await liveReplicas()).keys()].sort();
    expect(ids).toHaveLength(2);
    expect(ids[0]).toMatch(/#w0$/);
    expect(ids[1]).toMatch(/#w1$/);

    // Not linked yet: the default output, on every connection (whichever worker takes it).
    for (let i = 0; i < 4; i++) expect((await predictOnNewConnection(urls.queryUrl, "w", [i])).body.default).toBe(true);
    const linked = await ok("link", "w", "sum");
    const linkRevision = (await applied()).revision;
    expect(linked).toBeDefined();
    await waitFor(async () => {
      const a = await applied();
      return a.frontends.length === 2 && a.frontends.every((f) => (f.revision ?? -1) >= linkRevision);
    }, 20_000, "both workers to apply the link");
    // Round-robin over new connections: eight queries reach both workers; all answered by the model.
    for (let i = 0; i < 8; i++) {
      const r = await predictOnNewConnection(urls.queryUrl, "w", [i, 1]);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ output: i + 1, default: false });
    }
    // Each worker answered some of them by the model (its own live stats count them).
    await waitFor(async () => {
      const stats = LiveStatsSchema.parse(await admin(LIVE_STATS_PATH));
      const answeredBy = stats.frontends.filter((f) =>
        f.samples.some((sample) => sample.apps.some((a) => a.app === "w" && a.answers.model > 0)));
      return answeredBy.length === 2;
    }, 10_000, "both workers' live stats to count model answers");

    // One scrape answers for the whole frontend, whichever worker takes it: all 12 queries sent to
    // "w" (4 default, 8 by the model), the 8 model answers' batches, and the one replica not doubled.
    for (let i = 0; i < 4; i++) {
      const metric = await scrapeOnNewConnection(urls.queryUrl);
      expect(metric("clipper_frontend_scraped_workers", { state: "answered" })).toBe(2);
      expect(metric("clipper_frontend_scraped_workers", { state: "missing" })).toBe(0);
      expect(metric("clipper_app_requests_total", { app: "w" })).toBe(12);
      expect(metric("clipper_app_request_latency_seconds_count", { app: "w" })).toBe(12);
      expect(metric("clipper_model_batch_size_sum", { model: "sum:1" })).toBe(8);
      expect(metric("clipper_model_replicas", { model: "sum:1" })).toBe(1);
    }

    await ok("unlink", "w", "sum");
    const unlinkRevision = (await applied()).revision;
    await waitFor(async () => (await applied()).frontends.every((f) => (f.revision ?? -1) >= unlinkRevision), 20_000, "both workers to apply the unlink");
    for (let i = 0; i < 4; i++) expect((await predictOnNewConnection(urls.queryUrl, "w", [i])).body.default).toBe(true);
    await ok("link", "w", "sum");
  });

  it("forks a killed worker again, which reconnects to the replica and answers", async () => {
    const before = workerPids();
    expect(before).toHaveLength(2);
    const killedAt = Date.now();
    process.kill(before[0]!, "SIGKILL");
    await waitFor(() => {
      const now = workerPids();
      return now.length === 2 && !now.includes(before[0]!);
    }, 20_000, "the primary to fork the worker again");
    // The new worker reports under the same frontend id, with the replica connected again.
    await waitFor(async () => {
      const live = await liveReplicas();
      return live.size === 2 && [...live.values()].every((w) => w.replicas === 1 && w.at > killedAt);
    }, 30_000, "the new worker's live stats to show the replica");
    for (let i = 0; i < 8; i++) {
      const r = await predictOnNewConnection(urls.queryUrl, "w", [i, 2]);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ output: i + 2, default: false });
    }
  });
});

describe("the frontend's --workers flag", { timeout: 60_000 }, () => {
  const frontend = (...args: string[]) =>
    spawnSync(process.execPath, [FRONTEND_MAIN, "--management-url", "http://127.0.0.1:9", "--rpc-auth", "none", ...args], {
      encoding: "utf8", timeout: 20_000,
    });

  it("refuses a bad count, and several workers without a fixed RPC port, with exit 2 and one line", () => {
    for (const [args, message] of [
      [["--workers", "0"], /--workers must be an integer from 1 to 8, got '0'/],
      [["--workers", "9"], /--workers must be an integer from 1 to 8, got '9'/],
      [["--workers", "two"], /--workers must be an integer from 1 to 8/],
      [["--workers", "2", "--rpc-port", "0"], /--rpc-port must be a fixed port with --workers 2/],
      [["--workers", "2", "--rpc-port", "65535"], /leaves no room for 2 workers/],
    ] as const) {
      const r = frontend(...args);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
  });

  it("exits 1, leaving no worker behind, when a worker cannot bind its RPC port", async () => {
    const rpcPort = await findFreePortRun("127.0.0.1", 2);
    // The second worker's port is taken: that worker fails at startup, so the whole start fails.
    const blocker = createServer();
    await new Promise<void>((resolve, reject) => blocker.once("error", reject).listen(rpcPort + 1, "127.0.0.1", resolve));
    try {
      const child = spawn(process.execPath, [FRONTEND_MAIN, "--management-url", "http://127.0.0.1:9", "--rpc-auth", "none",
        "--port", "0", "--rpc-port", String(rpcPort), "--workers", "2"], { stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout.on("data", (d) => (output += d));
      child.stderr.on("data", (d) => (output += d));
      const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
      expect(code, output).toBe(1);
      expect(output).toMatch(/frontend worker 1 exited during startup/);
      expect(execFileSync("ps", ["-eo", "ppid="], { encoding: "utf8" }).split("\n").map((l) => Number(l.trim()))).not.toContain(child.pid);
    } finally {
      blocker.close();
    }
  });

  it("stops every worker and exits 0 on SIGTERM", async () => {
    const { child, workers, exited, output } = await twoWorkerPrimary();
    expect(workers).toHaveLength(2);
    child.kill("SIGTERM");
    expect(await exited, output()).toBe(0);
    // The primary waited for each worker's exit: none is left.
    for (const pid of workers) expect(() => process.kill(pid, 0)).toThrow();
    expect(output()).not.toMatch(/worker died; restarting/);
  });

  it("leaves no worker behind when the primary is killed with SIGKILL (the supervisor's leftover cleanup kills only the primary)", async () => {
    const { child, workers } = await twoWorkerPrimary();
    expect(workers).toHaveLength(2);
    child.kill("SIGKILL");
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitFor(() => workers.every((pid) => !alive(pid)), 10_000, "the workers to exit with their primary");
  });

  it("counts a process's direct children in its CPU and memory (a frontend primary's workers)", async () => {
    // A child that keeps one core busy for the whole sample.
    const child = spawn(process.execPath, ["-e", "const end = Date.now() + 5000; while (Date.now() < end);"], { stdio: "ignore" });
    try {
      await new Promise((resolve) => child.once("spawn", resolve));
      await new Promise((resolve) => setTimeout(resolve, 150));
      const alone = (await processUsage([child.pid!], 300)).get(child.pid!)!;
      const withChild = (await processUsage([process.pid], 300)).get(process.pid)!;
      expect(alone.cpuPercent).toBeGreaterThan(20);
      // This process idles in the sample; its child's busy core is what shows.
      expect(withChild.cpuPercent).toBeGreaterThan(20);
      expect(withChild.memoryBytes!).toBeGreaterThan(alone.memoryBytes!);
    } finally {
      child.kill("SIGKILL");
    }
  });

});
