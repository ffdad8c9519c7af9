/**
 * A pickled Python closure on Docker: the .pkl that `python3 -m clipper_runtime.save` writes on the
 * host is deployed with `--manager docker` through the real CLI, its image built on the local test
 * base (Debian's python3-cloudpickle, the version the host's Python pickles with, so the pinning step
 * installs nothing offline), and answers through the published query port. A pickle whose header
 * records a cloudpickle version the base image lacks fails its build at that step, naming it.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerClient } from "../src/docker/client.js";
import { buildModelImage, ImageBuildError } from "../src/images/index.js";
import { readPickledFunctionHeader } from "../src/images/build-model-image.js";
import { cliFor, predictAt } from "./support/cli.js";
import { dockerSkipReason, removeDockerTestCluster, startDockerTestCluster, TEST_BASE_IMAGE } from "./support/docker.js";
import { assertPythonHas, PYTHON, pythonSkipReason } from "./support/python.js";

const REPO = resolve(fileURLToPath(new URL("..", import.meta.url)));
const FIXTURES = join(REPO, "test", "fixtures", "python-closures");
const MODULES = ["numpy", "cloudpickle"];
const skipReason = (await dockerSkipReason()) ?? pythonSkipReason(MODULES);
const CLUSTER = `closures${process.pid}`;

describe.skipIf(skipReason !== undefined)(`a pickled Python closure on Docker${skipReason ? ` (skipped: ${skipReason})` : ""}`, () => {
  const home = mkdtempSync(join(tmpdir(), "clipper-closures-docker-"));
  const work = mkdtempSync(join(tmpdir(), "clipper-closures-docker-model-"));
  const modelDir = join(work, "model");
  const pkl = join(modelDir, "func.pkl");
  const env = { CLIPPER_HOME: home };
  const docker = dockerClient();
  let queryUrl = "";

  const { ok } = cliFor(env, { cluster: CLUSTER, timeoutMs: 300_000 });
  const predict = (app: string, input: unknown): Promise<any> => predictAt(queryUrl, app, input);

  beforeAll(async () => {
    assertPythonHas(MODULES);
    const src = join(work, "src");
    cpSync(FIXTURES, src, { recursive: true });
    mkdirSync(modelDir);
    const saved = spawnSync(PYTHON, ["-m", "clipper_runtime.save", "closure_model.py:predict", pkl],
      { cwd: src, env: { ...process.env, PYTHONPATH: join(REPO, "runtime", "python") }, encoding: "utf8" });
    expect(saved.status, saved.stderr).toBe(0);
    rmSync(src, { recursive: true });
    queryUrl = (await startDockerTestCluster(env, CLUSTER)).queryUrl;
  }, 320_000);

  afterAll(async () => {
    await removeDockerTestCluster(docker, env, CLUSTER);
    rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it("deploys func.pkl with --manager docker and answers through the query port", async () => {
    const version = readPickledFunctionHeader(pkl)?.cloudpickle;
    expect(version).toMatch(/^\d+\.\d+/);
    await ok("register-app", "closure", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "5000");
    await ok("deploy-model", "closure-model", "--version", "1", "--input-type", "doubles", "--framework", "python",
      "--predict", pkl, "--base-image", TEST_BASE_IMAGE, "--ready-timeout-ms", "120000", "--link", "closure");
    // weights [0.5, -1, 2] captured in the closure, then scaling.scale (x10): both inside the pickle
    expect(await predict("closure", [1, 2, 3])).toMatchObject({ output: 45, default: false });
    expect(await predict("closure", [0, 0, 1])).toMatchObject({ output: 20, default: false });
    const batch = await fetch(`${queryUrl}/closure/predict`, { method: "POST", body: JSON.stringify({ input_batch: [[-1, 0.5, 2], [2, 1, 0]] }) });
    expect((await batch.json()).batch_predictions.map((p: any) => p.output)).toEqual([30, 0]);
    // The image pinned the cloudpickle that pickled it (the base image already has exactly it).
    const history = await docker.getImage(`${CLUSTER}-closure-model:1`).history();
    expect(history.map((h: { CreatedBy: string }) => h.CreatedBy).join("\n")).toContain(`cloudpickle==${version}`);
  }, 600_000);

  it("fails the build at the cloudpickle step when the base image lacks the version the pickle records", async () => {
    const mismatched = join(work, "mismatch");
    mkdirSync(mismatched);
    // The saved file with its header's version changed: the header is a pickled str of JSON after 7 bytes.
    const data = readFileSync(pkl);
    const length = data.readUInt32LE(3);
    const header = JSON.parse(data.subarray(7, 7 + length).toString("utf8"));
    const json = Buffer.from(JSON.stringify({ ...header, cloudpickle: "0.5.6" }));
    const size = Buffer.alloc(4);
    size.writeUInt32LE(json.length);
    writeFileSync(join(mismatched, "func.pkl"), Buffer.concat([data.subarray(0, 3), size, json, data.subarray(7 + length)]));
    let error: unknown;
    try {
      await buildModelImage(docker, {
        cluster: CLUSTER, name: "mismatch", version: "1", framework: "python", inputType: "doubles",
        predictFile: join(mismatched, "func.pkl"), predictFunction: "predict", baseImage: TEST_BASE_IMAGE,
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ImageBuildError);
    expect((error as Error).message).toMatch(/failed at step \d+\/\d+ \(cloudpickle 0\.5\.6, the version that pickled func\.pkl\)/);
    // The test base has no pip at all, which the build error's hint says before anything else.
    expect((error as ImageBuildError).hint).toMatch(/pip/);
  }, 180_000);
});
