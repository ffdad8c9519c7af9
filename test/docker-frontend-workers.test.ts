/**
 * `clipper start --manager docker --frontend-workers 2`, through the real CLI and a real Docker
 * daemon: the frontend container runs a primary and two workers on the query port, with the two RPC
 * ports exposed on the cluster's network (not published); a Python model built from a function gets
 * both ports in CLIPPER_PORT, and each worker reports the replica connected in its own live stats;
 * queries on fresh connections are answered by the model whichever worker takes them, and one
 * /metrics scrape holds both workers. Skipped without a daemon and the test base image (not in CI).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerClient } from "../src/docker/client.js";
import { parsePrometheusText } from "../src/frontend-metrics.js";
import { LABEL, names } from "../src/managers/docker/labels.js";
import { cliFor } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";
import { dockerSkipReason, removeDockerTestCluster, startDockerTestCluster, TEST_BASE_IMAGE } from "./support/docker.js";
import { liveReplicasByWorker, predictOnNewConnection } from "./support/frontend-workers.js";

const skipReason = await dockerSkipReason();
const fixtures = fileURLToPath(new URL("./fixtures/e2e/", import.meta.url));
const CLUSTER = `dfw${process.pid}`;

describe.skipIf(skipReason !== undefined)(`two frontend workers on Docker${skipReason ? ` (skipped: ${skipReason})` : ""}`, () => {
  const home = mkdtempSync(join(tmpdir(), "clipper-docker-workers-"));
  const env = { CLIPPER_HOME: home };
  const docker = dockerClient();
  const { ok } = cliFor(env, { cluster: CLUSTER, timeoutMs: 300_000 });
  let started: { queryUrl: string; managementUrl: string };

  beforeAll(async () => {
    started = await startDockerTestCluster(env, CLUSTER, ["--frontend-workers", "2"]);
  }, 320_000);

  afterAll(async () => {
    await removeDockerTestCluster(docker, env, CLUSTER);
    rmSync(home, { recursive: true, force: true });
  }, 120_000);

  it("runs two workers in the frontend container, each connected to the replica, and answers from both", async () => {
    const frontend = docker.getContainer(names.frontend(CLUSTER));
    const info = await frontend.inspect();
    const cmd = info.Config.Cmd;
    expect(cmd.slice(cmd.indexOf("--rpc-port"), cmd.indexOf("--rpc-port") + 4)).toEqual(["--rpc-port", "7000", "--workers", "2"]);
    expect(info.Config.Labels[LABEL.frontendWorkers]).toBe("2");
    // Both RPC ports are exposed on the cluster's network; only the query port is published.
    expect(Object.keys(info.Config.ExposedPorts ?? {}).sort()).toEqual(["1337/tcp", "7000/tcp", "7001/tcp"]);
    const published = Object.entries(info.NetworkSettings.Ports ?? {}).filter(([, bindings]) => bindings?.length).map(([port]) => port);
    expect(published).toEqual(["1337/tcp"]);
    // A primary and its two workers, all running the frontend's entry.
    const top = await frontend.top({ ps_args: "-o pid,ppid,args" });
    expect(top.Processes.filter((p: string[]) => p.join(" ").includes("dist/runtime/frontend/main.js"))).toHaveLength(3);

    await ok("register-app", "sum", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "5000");
    await ok("deploy-model", "sum-model", "--version", "1", "--input-type", "doubles", "--framework", "python",
      "--predict", join(fixtures, "sum_v1.py:predict"), "--base-image", TEST_BASE_IMAGE, "--ready-timeout-ms", "120000", "--link", "sum");
    const replica = await docker.getContainer(names.replica(CLUSTER, "sum-model", "1", 0)).inspect();
    expect(replica.Config.Env).toContain("CLIPPER_PORT=7000,7001");

    // Each worker reports as a frontend of its own (#w0, #w1), and each shows the replica connected.
    await waitFor(async () => {
      const live = await liveReplicasByWorker(started.managementUrl, "sum-model", "1");
      return live.size === 2 && [...live.values()].every((w) => w.replicas === 1);
    }, 60_000, "both workers' live stats to show the replica");
    const ids = [...(await liveReplicasByWorker(started.managementUrl, "sum-model", "1")).keys()].sort();
    expect(ids[0]).toMatch(/#w0$/);
    expect(ids[1]).toMatch(/#w1$/);

    // Fresh connections are spread over both workers; every answer comes from the model.
    for (let i = 0; i < 8; i++) {
      const r = await predictOnNewConnection(started.queryUrl, "sum", [i, 1]);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ output: i + 1, default: false });
    }
    // One scrape holds both workers' registries: all eight queries, the one replica once.
    const samples = parsePrometheusText(await (await fetch(`${started.queryUrl}/metrics`)).text());
    const metric = (name: string, labels: Record<string, string>) =>
      samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    expect(metric("clipper_frontend_scraped_workers", { state: "answered" })).toBe(2);
    expect(metric("clipper_app_requests_total", { app: "sum" })).toBe(8);
    expect(metric("clipper_model_replicas", { model: "sum-model:1" })).toBe(1);
  }, 600_000);
});
