/**
 * A container written for Clipper — straight from the RPC v3 frame layout, sharing no code with
 * our runtimes — registers with our query frontend and serves queries through the query API.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertPythonHas, IN_CI, PYTHON, pythonSkipReason } from "./support/python.js";
import { startInProcessCluster, waitFor, type InProcessCluster } from "./support/cluster-in-process.js";

const skipReason = pythonSkipReason(["zmq"]);
const script = fileURLToPath(new URL("./fixtures/foreign_container.py", import.meta.url));

describe.skipIf(skipReason !== undefined)(`a foreign RPC v3 container${skipReason ? ` (${skipReason})` : ""}`, () => {
  let c: InProcessCluster;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    assertPythonHas(["zmq"]);
    // Clipper's own container code cannot authenticate: the cluster runs --rpc-auth none.
    c = await startInProcessCluster({ rpcAuth: "none" });
  });
  afterAll(async () => {
    child?.kill("SIGKILL");
    await c?.close();
  });

  it("registers with our frontend and answers Clipper queries", async () => {
    await c.admin.postText("/admin/add_app", { name: "sum", input_type: "doubles", default_output: "-1.0", latency_slo_micros: 5_000_000 });
    await c.admin.postText("/admin/add_model", {
      model_name: "sum", model_version: "1", labels: [], input_type: "doubles",
      container_name: "NO_CONTAINER", model_data_path: "x", batch_size: -1,
    });
    await c.admin.postText("/admin/add_model_links", { app_name: "sum", model_names: ["sum"] });
    child = spawn(PYTHON, [script, "--ip", "127.0.0.1", "--port", String(c.frontend.rpcPort), "--name", "sum", "--version", "1"], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    await waitFor(async () => {
      const all = await c.admin.postJson<string[]>("/admin/get_all_containers", { verbose: false });
      return all.includes("sum:1:0");
    }, 15_000, "the foreign container to register");
    const reply = await c.predict("sum", { input: [1.0, 2.0, 3.0] });
    expect(reply.body).toEqual({ query_id: expect.any(Number), output: 6.0, default: false });
    const batch = await c.predict("sum", { input_batch: [[1, 2, 3], [2, 3]] });
    expect(batch.body.batch_predictions.map((p: { output: number }) => p.output)).toEqual([6, 5]);
  });
});

/** rpc.py's metrics as shipped need these Debian packages: python3-redis, python3-prometheus-client, python3-jsonschema, redis-server. */
const METRICS_MODULES = ["zmq", "redis", "prometheus_client", "jsonschema"];
const hasRedisServer = spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
const metricsSkipReason = pythonSkipReason(METRICS_MODULES) ?? (hasRedisServer || IN_CI ? undefined : "skipped: no redis-server on PATH");

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe.skipIf(metricsSkipReason !== undefined)(`the stand-in of Clipper's rpc.py with its metrics as shipped${metricsSkipReason ? ` (${metricsSkipReason})` : ""}`, () => {
  let c: InProcessCluster;
  let child: ChildProcess | undefined;
  const dir = mkdtempSync(join(tmpdir(), "clipper-metrics-standin-"));

  beforeAll(async () => {
    assertPythonHas(METRICS_MODULES);
    if (!hasRedisServer) throw new Error("redis-server is not on PATH; install Debian's redis-server");
    c = await startInProcessCluster({ rpcAuth: "none" });
  });
  afterAll(async () => {
    child?.kill("SIGTERM");
    if (child && child.exitCode === null) await new Promise((resolve) => child!.once("exit", resolve));
    await c?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers through our frontend and reports five metrics per message to its metric server over Redis", async () => {
    await c.admin.postText("/admin/add_app", { name: "sum", input_type: "doubles", default_output: "-1.0", latency_slo_micros: 5_000_000 });
    await c.admin.postText("/admin/add_model", {
      model_name: "sum", model_version: "1", labels: [], input_type: "doubles",
      container_name: "NO_CONTAINER", model_data_path: "x", batch_size: 1,
    });
    await c.admin.postText("/admin/add_model_links", { app_name: "sum", model_names: ["sum"] });
    const metricsPort = await freePort();
    child = spawn(PYTHON, [script, "--ip", "127.0.0.1", "--port", String(c.frontend.rpcPort), "--name", "sum", "--version", "1",
      "--collect-metrics", dir, "--metrics-port", String(metricsPort)], { stdio: ["ignore", "ignore", "inherit"] });
    await waitFor(async () => (await c.admin.postJson<string[]>("/admin/get_all_containers", { verbose: false })).includes("sum:1:0"),
      20_000, "the stand-in to register");
    for (const input of [[1, 2], [3, 4], [5, 6]]) {
      expect((await c.predict("sum", { input })).body.output).toBe(input[0]! + input[1]!);
    }
    // Batch size 1: three messages, so three of each report, once the metric server has read them.
    const value = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
    let text = "";
    await waitFor(async () => {
      text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return value(text, "clipper_mc_pred_total") === 3;
    }, 10_000, "the metric server to count three predictions");
    for (const histogram of ["end_to_end_latency_ms", "recv_time_ms", "parse_time_ms", "handle_time_ms"]) {
      expect(value(text, `clipper_mc_${histogram}_count`)).toBe(3);
    }
    const log = readFileSync(join(dir, "metric_server.log"), "utf8");
    expect(log.match(/"endpoint": "report"/g)).toHaveLength(15);
    expect(log).not.toMatch(/ERROR/);
    // Its Redis and metric server go with it.
    child.kill("SIGTERM");
    await new Promise((resolve) => child!.once("exit", resolve));
    await waitFor(() => spawnSync("pgrep", ["-f", `clipper_metric_server.py --redis-socket ${dir}`]).status === 1,
      5_000, "the metric server to exit");
    expect(existsSync(join(dir, "redis.sock"))).toBe(false);
  });
});
