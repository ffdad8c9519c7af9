/**
 * The autoscaler on Docker through the real CLI and a real daemon: `clipper start --manager docker`
 * runs the clipper-autoscaler container (the runtime image, the engine socket mounted), and a Node
 * model deployed with 1 replica then autoscaled to min 2 gets its second replica from that container
 * alone (nothing else scales here), with the decision in `clipper events` and the container's JSON
 * lines in `clipper logs autoscaler`. Needs a Docker daemon and the test base image; skipped without.
 */
import { fileURLToPath } from "node:url";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerClient } from "../src/docker/client.js";
import { cliFor } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";
import { dockerSkipReason, removeDockerTestCluster, startDockerTestCluster, TEST_BASE_IMAGE } from "./support/docker.js";

const skipReason = await dockerSkipReason();
const CLUSTER = `das${process.pid}`;
const SUM = fileURLToPath(new URL("./fixtures/node-models/sum.mjs", import.meta.url));

describe.skipIf(skipReason !== undefined)(`the autoscaler on Docker${skipReason ? ` (skipped: ${skipReason})` : ""}`, () => {
  const home = mkdtempSync(join(tmpdir(), "clipper-docker-autoscaler-"));
  const env = { CLIPPER_HOME: home, FORCE_COLOR: "0" };
  const docker = dockerClient();
  const { cli, ok } = cliFor(env, { cluster: CLUSTER, timeoutMs: 180_000 });
  const replicaContainers = async () => (await docker.listContainers({
    all: true, filters: JSON.stringify({ label: [`ai.clipper.container.label=${CLUSTER}`, "ai.clipper.model_container.label=sum-model_1"] }),
  })).filter((c) => c.State === "running");

  beforeAll(async () => {
    await removeDockerTestCluster(docker, env, CLUSTER);
    await startDockerTestCluster(env, CLUSTER);
  }, 300_000);
  afterAll(async () => {
    await removeDockerTestCluster(docker, env, CLUSTER);
    rmSync(home, { recursive: true, force: true });
  }, 120_000);

  it("runs the autoscaler container, which scales a version below its min up and records it", async () => {
    const [autoscaler] = await docker.listContainers({ filters: JSON.stringify({ label: [`ai.clipper.container.label=${CLUSTER}`, "ai.clipper.name=autoscaler"] }) });
    expect(autoscaler?.Names).toEqual([`/clipper-${CLUSTER}-autoscaler`]);
    expect(autoscaler?.Mounts.map((m) => [m.Type, m.Source, m.Destination])).toEqual([["bind", "/var/run/docker.sock", "/var/run/docker.sock"]]);

    await ok("deploy-model", "sum-model", "--version", "1", "--input-type", "doubles", "--framework", "node", "--predict", SUM,
      "--base-image", TEST_BASE_IMAGE, "--replicas", "1", "--ready-timeout-ms", "120000");
    expect(await replicaContainers()).toHaveLength(1);
    await ok("autoscale", "sum-model", "--min", "2", "--max", "3");
    // The loop moves a count below min into the bounds at once: within a few of its 1 s rounds.
    await waitFor(async () => (await replicaContainers()).length === 2, 60_000, "the autoscaler to start a second replica");

    const events = await ok("events");
    expect(events.events.find((e: any) => e.kind === "scale_up")).toMatchObject({ model_name: "sum-model", model_version: "1", from: 1, to: 2 });
    // The record the CLI reads replicas from says 2 too, so a stop --keep-state would bring back 2.
    expect((await ok("status")).replicas.filter((r: any) => r.name === "sum-model")).toHaveLength(2);
    const logs = await cli("logs", "autoscaler", "--cluster", CLUSTER);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toContain('"msg":"autoscaler running"');
    expect(logs.stdout).not.toContain("could not scale");

    // Stop removes the autoscaler first and leaves nothing of the cluster.
    await ok("stop");
    expect(await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`ai.clipper.container.label=${CLUSTER}`] }) })).toEqual([]);
  }, 240_000);
});
