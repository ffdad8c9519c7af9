/**
 * The user's path with `--manager docker`, through the real CLI and a real Docker daemon: the cluster
 * in containers, model images built from a Python function, an sklearn model and a TypeScript module,
 * predictions through the published port, scaling under load, a version rolled forward and back, and
 * a stop that leaves nothing of the cluster behind. Images build on the local test base image (no
 * registry is reachable here); users get the official base images by default.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerClient } from "../src/docker/client.js";
import { cliFor, predictAt } from "./support/cli.js";
import { dockerSkipReason, removeDockerTestCluster, startDockerTestCluster, TEST_BASE_IMAGE } from "./support/docker.js";
import { PYTHON } from "./support/python.js";
import { waitFor } from "./support/cluster-in-process.js";

const skipReason = await dockerSkipReason();
const fixtures = fileURLToPath(new URL("./fixtures/e2e/", import.meta.url));
const CLUSTER = `e2e${process.pid}`;
/** The test base under a name of this run's own, for a runtime image that must be built. */
const RETAGGED_BASE = `clipper-test-base:${CLUSTER}`; // tagged in the test that builds on it

describe.skipIf(skipReason !== undefined)(`end to end on Docker${skipReason ? ` (skipped: ${skipReason})` : ""}`, () => {
  const home = mkdtempSync(join(tmpdir(), "clipper-e2e-docker-"));
  const sklearnDir = mkdtempSync(join(tmpdir(), "clipper-sklearn-"));
  const env = { CLIPPER_HOME: home };
  const docker = dockerClient();
  let queryUrl = "";
  /** Images a test built beyond the cluster's own (removed after the cluster). */
  const extraImages: string[] = [];

  const { cli, ok } = cliFor(env, { cluster: CLUSTER, timeoutMs: 300_000 });
  const predict = (app: string, input: unknown): Promise<any> => predictAt(queryUrl, app, input);
  const owned = async () => {
    const filters = JSON.stringify({ label: [`ai.clipper.container.label=${CLUSTER}`] });
    return {
      containers: await docker.listContainers({ all: true, filters }),
      networks: await docker.listNetworks({ filters }),
      volumes: (await docker.listVolumes({ filters })).Volumes ?? [],
    };
  };
  const deployPython = (name: string, version: string, file: string, ...extra: string[]) =>
    ok("deploy-model", name, "--version", version, "--input-type", "doubles", "--framework", "python",
      "--predict", join(fixtures, file), "--base-image", TEST_BASE_IMAGE, "--ready-timeout-ms", "120000", ...extra);

  beforeAll(async () => {
    execFileSync(PYTHON, [join(fixtures, "make_sklearn.py"), sklearnDir]);
    queryUrl = (await startDockerTestCluster(env, CLUSTER)).queryUrl;
  }, 320_000);

  afterAll(async () => {
    await removeDockerTestCluster(docker, env, CLUSTER);
    for (const image of [...extraImages, RETAGGED_BASE]) await docker.getImage(image).remove().catch(() => undefined);
    rmSync(home, { recursive: true, force: true });
    rmSync(sklearnDir, { recursive: true, force: true });
  }, 120_000);

  it("builds and serves a Python function, an sklearn model and a TypeScript model", async () => {
    await ok("register-app", "sum", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "3000");
    await deployPython("sum-model", "1", "sum_v1.py:predict", "--link", "sum");
    expect(await predict("sum", [1, 2, 3])).toMatchObject({ output: 6, default: false });

    await ok("register-app", "iris", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "3000");
    await ok("deploy-model", "clf", "--version", "1", "--input-type", "doubles", "--framework", "sklearn",
      "--predict", join(fixtures, "sklearn_predict.py"), "--model-path", sklearnDir, "--base-image", TEST_BASE_IMAGE,
      "--ready-timeout-ms", "120000", "--link", "iris");
    expect(await predict("iris", [0.95, 0.9])).toMatchObject({ output: 1, default: false });
    expect(await predict("iris", [0.05, 0.1])).toMatchObject({ output: 0, default: false });

    await ok("register-app", "words", "--input-type", "strings", "--default-output", "0", "--slo-ms", "3000");
    await ok("deploy-model", "word-count", "--version", "1", "--input-type", "strings", "--framework", "node",
      "--predict", join(fixtures, "words.ts:predict"), "--base-image", TEST_BASE_IMAGE, "--ready-timeout-ms", "120000", "--link", "words");
    expect(await predict("words", "to be or not")).toMatchObject({ output: 4, default: false });

    const { containers } = await owned();
    const models = containers.filter((c) => c.Labels["ai.clipper.name"] === "model");
    expect(models.map((c) => c.Labels["ai.clipper.model_container.label"]).sort()).toEqual(["clf_1", "sum-model_1", "word-count_1"]);
  }, 600_000);

  it("scales to 3 replicas and back to 1 with no failed query", async () => {
    let running = true;
    const replies: any[] = [];
    const traffic = (async () => {
      while (running) replies.push(await predict("sum", [2, 2]));
    })();
    await ok("replicas", "sum-model", "3");
    expect((await owned()).containers.filter((c) => c.Labels["ai.clipper.model_container.label"] === "sum-model_1")).toHaveLength(3);
    await ok("replicas", "sum-model", "1");
    running = false;
    await traffic;
    expect(replies.length).toBeGreaterThan(5);
    for (const r of replies) expect(r).toMatchObject({ output: 4, default: false });
  }, 300_000);

  it("rolls version 2 forward and back to 1", async () => {
    await deployPython("sum-model", "2", "sum_v2.py:predict");
    await waitFor(async () => (await predict("sum", [1, 2])).output === 30, 30_000, "version 2 to serve");
    await ok("set-version", "sum-model", "1");
    await waitFor(async () => (await predict("sum", [1, 2])).output === 3, 30_000, "version 1 to serve again");
  }, 300_000);

  // The test base has no pip, so the build stops at the pip check before the requirements (with pip, test/image-builder.test.ts).
  it("fails a build with a requirement on a base without pip in seconds, showing the step's output, starting nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clipper-req-"));
    try {
      writeFileSync(join(dir, "requirements.txt"), "definitely-not-a-package-clipper-test==9.9.9\n");
      const started = Date.now();
      const r = await cli("deploy-model", "broken", "--cluster", CLUSTER, "--version", "1", "--input-type", "doubles", "--framework", "python",
        "--predict", join(fixtures, "sum_v1.py"), "--requirements", join(dir, "requirements.txt"), "--base-image", TEST_BASE_IMAGE);
      expect(r.code).toBe(8);
      expect(r.stderr).toMatch(/error: building model image .*broken:1 failed at step 3\/\d+ \(pip in the base image, for the model's packages\)/);
      expect(r.stderr).toMatch(/\| the base image has no pip/);
      expect(r.stderr).toMatch(/hint: use a base image that has pip \(--base-image/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(Date.now() - started).toBeLessThan(60_000);
      const { containers } = await owned();
      expect(containers.some((c) => c.Labels["ai.clipper.model_container.label"] === "broken_1")).toBe(false);
      expect((await ok("models")).some((m: any) => m.model_name === "broken")).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  // The lifecycle with no dead ends (issue 11 §3), on one model of its own so it runs alone too (`-t lifecycle`).
  const lifeReplicas = async () => (await owned()).containers
    .filter((c) => c.Labels["ai.clipper.model_container.label"] === "life_1" && c.State === "running").length;
  const answersLife = () => waitFor(async () => (await predict("life", [1, 2])).output === 3, 60_000, "model life to answer");
  /** Stops with --keep-state (only the deployment records stay), then starts with `args`; returns start's stderr. */
  const restart = async (...args: string[]): Promise<string> => {
    const stopped = await cli("stop", "--cluster", CLUSTER, "--keep-state");
    expect(stopped.code, stopped.stderr).toBe(0);
    const kept = (await owned()).containers;
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.every((c) => c.Labels["ai.clipper.name"] === "model_deployment" && c.State === "created")).toBe(true);
    const started = await cli("start", "--manager", "docker", "--cluster", CLUSTER, "--query-port", "0", "--management-port", "0", ...args);
    expect(started.code, `${started.stdout}\n${started.stderr}`).toBe(0);
    queryUrl = (await ok("status")).addresses.queryUrl;
    return started.stderr;
  };
  const frontendImage = async () => (await docker.getContainer(`clipper-${CLUSTER}-query-frontend`).inspect()).Config.Image;

  it("lifecycle: stop-models keeps the deployment, and `replicas N --version V` brings it back", async () => {
    await ok("register-app", "life", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "3000");
    await deployPython("life", "1", "sum_v1.py:predict", "--link", "life");
    await answersLife();
    await ok("stop-models", "life");
    expect(await lifeReplicas()).toBe(0);
    await ok("replicas", "life", "2", "--version", "1");
    expect(await lifeReplicas()).toBe(2);
    await answersLife();
  }, 300_000);

  it("lifecycle: stop --keep-state, then start --runtime-image brings the replicas back and the app answers", async () => {
    const image = await frontendImage();
    const stderr = await restart("--runtime-image", image);
    expect(stderr).not.toMatch(/building the runtime image/);
    expect(await frontendImage()).toBe(image);
    expect(await lifeReplicas()).toBe(2);
    await answersLife();
  }, 300_000);

  it("lifecycle: start builds the runtime image on a new base, showing the build's steps", async () => {
    const before = await frontendImage();
    // Another name for the test base changes the Dockerfile, so the runtime image is built, not reused.
    await docker.getImage(TEST_BASE_IMAGE).tag({ repo: "clipper-test-base", tag: CLUSTER });
    const stderr = await restart("--runtime-base-image", RETAGGED_BASE);
    expect(stderr).toMatch(/building the runtime image, step 1\/\d+: FROM clipper-test-base:/);
    expect(stderr).toMatch(/built the runtime image clipper-runtime:/);
    const built = await frontendImage();
    expect(built).not.toBe(before);
    extraImages.push(built);
    expect(await lifeReplicas()).toBe(2);
    await answersLife();
  }, 600_000);

  it("stops leaving no container, network or volume of the cluster", async () => {
    const stopped = await cli("stop", "--cluster", CLUSTER);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(await owned()).toEqual({ containers: [], networks: [], volumes: [] });
  }, 120_000);
});
