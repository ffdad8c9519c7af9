/**
 * The image builder: golden Dockerfile text per framework and the build context's pieces (no
 * daemon), then real builds against the Docker daemon on the local test base image (no registry is
 * reachable here): a Python function model, an sklearn model, a Node model from TypeScript, the
 * runtime image (built once, then reused), and the failures a user meets (an uninstallable
 * requirement, a base image that cannot be pulled). Everything the builds create carries a per-run
 * label inherited from a labelled copy of the base image, and afterAll removes it all by that label.
 * The parts that start nothing are in test/unit/image-builder.test.ts.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerClient } from "../src/docker/client.js";
import {
  buildModelImage,
  buildRuntimeImage,
  ImageBuildError,
  modelImageTag,
  type BuildEvent,
  type ModelImageRequest,
} from "../src/images/index.js";
import { BuildContext } from "../src/images/context.js";
import { runDockerBuild } from "../src/images/docker-build.js";
import { bundleNodeModel } from "../src/images/node-bundle.js";
import { RUNTIME_IMAGE_EXTRA_ENTRIES } from "../src/images/build-runtime-image.js";
import { runtimeFiles } from "../src/images/node-runtime.js";
import { PYTHON, pythonHas } from "./support/python.js";
import { containerLogs, dockerSkipReason, IN_CI, removeByLabel, runInImage, TEST_BASE_IMAGE } from "./support/docker.js";

// ---------------------------------------------------------------------------------------------
// Against the daemon

const skipReason = await dockerSkipReason();
const RUN_LABEL = "ai.clipper.test.run";

describe.skipIf(skipReason !== undefined)(`building images with the Docker daemon${skipReason ? ` (skipped: ${skipReason})` : ""}`, () => {
  const docker = dockerClient();
  const runId = `image-builder-${randomBytes(4).toString("hex")}`;
  const labels = { [RUN_LABEL]: runId };
  /** The test base image plus this run's label (inherited by every image built on it), and pip when the host can lend it. */
  const base = `clipper-test-${runId}:base`;
  let work: string;
  let basePip = false;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "clipper-images-"));
    // The test base has no pip and there is no network; Debian's own pip (same Python, bookworm),
    // copied from the host, lets the failure test show pip's real error instead of "No module named pip".
    const hostPip = "/usr/lib/python3/dist-packages/pip";
    const hasPip = (await runInImage(docker, TEST_BASE_IMAGE, ["python3", "-m", "pip", "--version"], { labels })).exitCode === 0;
    const ctx = new BuildContext();
    const lines = [`FROM ${TEST_BASE_IMAGE}`, `LABEL ${RUN_LABEL}="${runId}"`];
    if (!hasPip && existsSync(hostPip) && TEST_BASE_IMAGE === "clipper-test-base:bookworm") {
      await ctx.addDirectory("pip", hostPip, (p, isDir) => !(isDir && p.endsWith("__pycache__")));
      lines.push("COPY pip /usr/lib/python3/dist-packages/pip");
      basePip = true;
    }
    const text = `${lines.join("\n")}\n`;
    await runDockerBuild(docker, { context: ctx, dockerfile: { text, instructions: [] }, tag: base });
  }, 60_000);

  afterAll(async () => {
    await removeByLabel(docker, RUN_LABEL, runId);
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  function request(overrides: Partial<ModelImageRequest>): ModelImageRequest {
    return { cluster: "test", name: runId, version: "1", framework: "python", predictFile: "", predictFunction: "predict", inputType: "doubles", baseImage: base, ...overrides };
  }

  /** Starts the image's own command (no frontend to reach) and waits until it logs `expected`. */
  async function startsAndLoads(image: string, expected: string): Promise<string> {
    const container = await docker.createContainer({ Image: image, Labels: labels, HostConfig: { NetworkMode: "none" } });
    try {
      await container.start();
      const deadline = Date.now() + 20_000;
      for (;;) {
        const { stdout, stderr } = await containerLogs(docker, container);
        const logs = stdout + stderr;
        const state = (await container.inspect()).State;
        if (logs.includes(expected) && state.Running) return logs;
        if (!state.Running || Date.now() > deadline) throw new Error(`the container ${state.Running ? "did not log" : "exited without logging"} '${expected}':\n${logs}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await container.remove({ force: true }).catch(() => undefined);
    }
  }

  const PY_CHECK = `
import importlib.util, json, os, sys
import numpy as np
import clipper_runtime
path, fn = os.environ["CLIPPER_PREDICT"].rsplit(":", 1)
sys.path.insert(0, os.path.dirname(path))
spec = importlib.util.spec_from_file_location("user_model", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
out = getattr(module, fn)([np.array([1.0, 2.0]), np.array([3.0, 4.0])])
env = {k: v for k, v in os.environ.items() if k.startswith("CLIPPER_")}
print(json.dumps({"out": [str(o) for o in out], "files": sorted(os.listdir("/model")), "env": env, "cwd": os.getcwd()}))
`;

  it("builds a Python function model: predict.py, its sibling module and an artifact under /model", async () => {
    const dir = join(work, "sum");
    mkdirSync(join(dir, "__pycache__"), { recursive: true });
    writeFileSync(join(dir, "helper.py"), "import os\n\ndef scale():\n    with open(os.path.join(os.environ['CLIPPER_MODEL_PATH'], 'weights.txt')) as f:\n        return float(f.read())\n");
    writeFileSync(join(dir, "predict.py"), "import helper\n\ndef predict(inputs):\n    s = helper.scale()\n    return [float(x.sum()) * s for x in inputs]\n");
    writeFileSync(join(dir, "weights.txt"), "2.0\n");
    writeFileSync(join(dir, "__pycache__", "helper.cpython-311.pyc"), "stale");
    const events: BuildEvent[] = [];
    const built = await buildModelImage(docker, request({ predictFile: join(dir, "predict.py") }), (e) => events.push(e));

    expect(built.tag).toBe(`test-${runId}:1`);
    expect(built.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    const steps = events.filter((e) => e.type === "step");
    expect(steps[0]).toMatchObject({ index: 1, instruction: `FROM ${base}` });
    expect(steps.map((s) => (s.type === "step" ? s.name : ""))).toContain("the Clipper Python runtime");
    expect(events.at(-1)).toEqual({ type: "built", tag: built.tag, imageId: built.imageId });

    const info = await docker.getImage(built.tag).inspect();
    expect(info.Config.Labels).toMatchObject({ "ai.clipper.model.name": runId, "ai.clipper.model.version": "1", "ai.clipper.framework": "python" });

    const run = await runInImage(docker, built.tag, ["python3", "-c", PY_CHECK], { labels });
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { out: string[]; files: string[]; env: Record<string, string>; cwd: string };
    expect(result.out).toEqual(["6.0", "14.0"]);
    expect(result.files).toEqual(["helper.py", "predict.py", "weights.txt"]);
    expect(result.cwd).toBe("/model");
    expect(result.env).toEqual({
      CLIPPER_MODEL_NAME: runId,
      CLIPPER_MODEL_VERSION: "1",
      CLIPPER_INPUT_TYPE: "doubles",
      CLIPPER_MODEL_PATH: "/model",
      CLIPPER_PREDICT: "/model/predict.py:predict",
      CLIPPER_FRAMEWORK: "python",
    });
    // The image's own command: the runtime loads the predict function and waits for a frontend.
    await startsAndLoads(built.tag, "/model/predict.py");
  }, 60_000);

  const sklearnSkip = !IN_CI && !pythonHas(["sklearn", "joblib"]) ? `${PYTHON} cannot import sklearn and joblib` : undefined;
  it.skipIf(sklearnSkip !== undefined)(`builds an sklearn model with a model.joblib artifact from another directory${sklearnSkip ? ` (skipped: ${sklearnSkip})` : ""}`, async () => {
    const src = join(work, "iris", "src");
    const artifacts = join(work, "iris", "artifacts");
    mkdirSync(src, { recursive: true });
    mkdirSync(artifacts, { recursive: true });
    const train = spawnSync(PYTHON, ["-c", `
import joblib, numpy as np
from sklearn.linear_model import LinearRegression
X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
joblib.dump(LinearRegression().fit(X, X @ np.array([2.0, 3.0]) + 1.0), ${JSON.stringify(join(artifacts, "model.joblib"))})
`], { encoding: "utf8", timeout: 60_000 });
    expect(train.status, train.stderr).toBe(0);
    writeFileSync(join(src, "features.py"), "import numpy as np\n\ndef matrix(inputs):\n    return np.stack(inputs)\n");
    writeFileSync(join(src, "predict.py"), [
      "import os, joblib",
      "from features import matrix",
      "_model = joblib.load(os.path.join(os.environ['CLIPPER_MODEL_PATH'], 'model.joblib'))",
      "",
      "def predict(inputs):",
      "    return [round(float(y), 6) for y in _model.predict(matrix(inputs))]",
      "",
    ].join("\n"));
    const built = await buildModelImage(docker, request({ framework: "sklearn", version: "2", predictFile: join(src, "predict.py"), modelPath: artifacts }));
    const run = await runInImage(docker, built.tag, ["python3", "-c", PY_CHECK], { labels });
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { out: string[]; files: string[]; env: Record<string, string> };
    expect(result.out).toEqual(["9.0", "19.0"]); // y = 2*x0 + 3*x1 + 1 on the batch [1, 2], [3, 4]
    expect(result.files).toEqual(["features.py", "model.joblib", "predict.py"]);
    expect(result.env.CLIPPER_FRAMEWORK).toBe("sklearn");
  }, 60_000);

  it("builds a Node model from a TypeScript entry importing a sibling .ts file", async () => {
    const dir = join(work, "node-model");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "scale.ts"), [
      'import { readFileSync } from "node:fs";',
      "export function scale(): number {",
      '  return Number(readFileSync(new URL("./weights.txt", import.meta.url), "utf8"));',
      "}",
      "",
    ].join("\n"));
    writeFileSync(join(dir, "model.ts"), [
      'import { scale } from "./scale.ts";',
      "export function predict(inputs: number[][]): string[] {",
      "  const s = scale();",
      "  return inputs.map((xs) => String(xs.reduce((a, b) => a + b, 0) * s));",
      "}",
      "",
    ].join("\n"));
    writeFileSync(join(dir, "weights.txt"), "3\n");
    const built = await buildModelImage(docker, request({ framework: "node", version: "3", predictFile: join(dir, "model.ts") }));
    const check = [
      "const [file, fn] = process.env.CLIPPER_PREDICT.split(':');",
      "const m = await import(file);",
      "const fs = await import('node:fs');",
      "console.log(JSON.stringify({ out: await m[fn]([[1, 2], [3, 4]]), files: fs.readdirSync('/model').sort(), predict: process.env.CLIPPER_PREDICT }));",
    ].join("\n");
    const run = await runInImage(docker, built.tag, ["node", "--input-type=module", "-e", check], { labels });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      out: ["9", "21"],
      files: ["model.clipper.mjs", "model.ts", "scale.ts", "weights.txt"],
      predict: "/model/model.clipper.mjs:predict",
    });
    // The Node runtime (zeromq, pino, zod copied from node_modules) starts and loads the bundle.
    await startsAndLoads(built.tag, "/model/model.clipper.mjs");
  }, 60_000);

  it("builds the runtime image once and reuses it while the runtime is unchanged", async () => {
    const events: BuildEvent[] = [];
    const tag = await buildRuntimeImage(docker, { baseImage: base }, (e) => events.push(e));
    expect(tag).toMatch(/^clipper-runtime:\d+\.\d+\.\d+[^-]*-[0-9a-f]{12}$/);
    expect(events.some((e) => e.type === "built")).toBe(true);
    for (const entry of ["management/main.js", "frontend/main.js"]) {
      const run = await runInImage(docker, tag, ["node", `/clipper/dist/runtime/${entry}`, "--help"], { labels });
      expect(run.exitCode, `${entry}: ${run.stderr}`).toBe(0);
    }
    const again: BuildEvent[] = [];
    const start = Date.now();
    expect(await buildRuntimeImage(docker, { baseImage: base }, (e) => again.push(e))).toBe(tag);
    expect(again.map((e) => e.type)).toEqual(["reused"]);
    expect(Date.now() - start).toBeLessThan(10_000);
  }, 60_000);

  it("fails in seconds on an uninstallable requirement, with pip's error and the step named, leaving no image tagged", async () => {
    const dir = join(work, "broken");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "predict.py"), "def predict(inputs):\n    return inputs\n");
    writeFileSync(join(dir, "requirements.txt"), "clipper-no-such-package==9.9.9\n");
    const req = request({ version: "4", predictFile: join(dir, "predict.py"), requirementsFile: join(dir, "requirements.txt") });
    const start = Date.now();
    const error = await buildModelImage(docker, req).then(() => undefined, (err: unknown) => err);
    const elapsed = Date.now() - start;

    expect(error).toBeInstanceOf(ImageBuildError);
    const e = error as ImageBuildError;
    expect(e.code).toBe("BUILD_FAILED");
    expect(e.exitCode).toBe(8);
    expect(e.message).toMatch(/^building model image test-image-builder-[0-9a-f]+:4 failed at step \d+\/\d+ \(the model's requirements \(requirements\.txt, pip install -r\)\): the command exited with code 1$/);
    expect(e.step?.instruction).toContain("-r");
    expect(e.hint).toMatch(/pip|PyPI/);
    if (basePip) {
      expect(e.details).toMatch(/clipper-no-such-package/);
      expect(e.hint).toMatch(/check the package names and versions in requirements\.txt/);
    } else {
      expect(e.details).toMatch(/pip/);
    }
    expect(elapsed).toBeLessThan(30_000);
    await expect(docker.getImage(modelImageTag(req)).inspect()).rejects.toThrow(/no such image/i);
  }, 60_000);

  it("pushes only when a registry is given, and says so when the push fails", async () => {
    const dir = join(work, "pushed");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "predict.py"), "def predict(inputs):\n    return inputs\n");
    const events: BuildEvent[] = [];
    // Nothing listens on port 1: the build succeeds, the push is refused.
    const req = request({ version: "6", predictFile: join(dir, "predict.py"), registry: "127.0.0.1:1/team" });
    const error = await buildModelImage(docker, req, (e) => events.push(e)).then(() => undefined, (err: unknown) => err);
    expect(events.some((e) => e.type === "built" && e.tag === `127.0.0.1:1/team/test-${runId}:6`)).toBe(true);
    expect(error).toBeInstanceOf(ImageBuildError);
    expect((error as ImageBuildError).message).toMatch(new RegExp(`^pushing 127\\.0\\.0\\.1:1/team/test-${runId}:6 failed: .*(refused|connect)`));
    expect((error as ImageBuildError).hint).toMatch(/registry/);
  }, 60_000);

  it("names the base image when it cannot be pulled", async () => {
    const dir = join(work, "nobase");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "predict.py"), "def predict(inputs):\n    return inputs\n");
    const req = request({ version: "5", predictFile: join(dir, "predict.py"), baseImage: "127.0.0.1:1/clipper-no-such-base:1" });
    const error = await buildModelImage(docker, req).then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(ImageBuildError);
    const e = error as ImageBuildError;
    expect(e.message).toContain("failed at step 1/");
    expect(e.message).toContain("base image 127.0.0.1:1/clipper-no-such-base:1");
    expect(e.hint).toContain("--base-image");
    expect(e.details).not.toBe("");
  }, 60_000);
});

describe("image builder pieces (no daemon)", () => {
  it("finds the Node runtime's files and packages from its imports, not a list", async () => {
    const found = await runtimeFiles(["container-node/main.js"]);
    expect(found.files).toContain("dist/runtime/container-node/main.js");
    expect(found.files.every((f) => !f.startsWith("dist/runtime/frontend/"))).toBe(true);
    const names = new Set(found.packages.values());
    for (const name of ["zeromq", "pino", "zod", "cmake-ts", "sonic-boom"]) expect(names, name).toContain(name);
    // esbuild is imported dynamically (TypeScript at run time) and the CLI's SDKs not at all.
    for (const name of ["esbuild", "dockerode", "commander", "prom-client"]) expect(names, name).not.toContain(name);
  });

  it("the runtime image's autoscaler entry brings the Docker and Kubernetes clients; the frontend and daemon load neither", async () => {
    const host = await runtimeFiles([], undefined, [...RUNTIME_IMAGE_EXTRA_ENTRIES]);
    expect(host.files).toContain("dist/src/autoscaler/host-main.js");
    const hostPackages = new Set(host.packages.values());
    for (const name of ["dockerode", "@kubernetes/client-node", "zod", "pino"]) expect(hostPackages, name).toContain(name);
    const servers = await runtimeFiles(["frontend/main.js", "management/main.js"]);
    expect(servers.files.filter((f) => f.startsWith("dist/src/"))).toEqual([]);
    const serverPackages = new Set(servers.packages.values());
    for (const name of ["dockerode", "@kubernetes/client-node", "kubernetes-models"]) expect(serverPackages, name).not.toContain(name);
  });

  it("bundles a Node module, keeping packages with native addons external; a missing package is a hint", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clipper-bundle-"));
    try {
      const pkg = (name: string, files: Record<string, string>): void => {
        for (const [file, text] of Object.entries(files)) {
          mkdirSync(join(dir, "node_modules", name, file, ".."), { recursive: true });
          writeFileSync(join(dir, "node_modules", name, file), text);
        }
      };
      pkg("pure-js", { "package.json": '{"name":"pure-js","version":"1.0.0","main":"index.js"}', "index.js": "exports.twice = (x) => 2 * x;\n" });
      pkg("fake-native", {
        "package.json": '{"name":"fake-native","version":"1.0.0","main":"index.js","dependencies":{"pure-js":"1"}}',
        "index.js": "module.exports = require('./build/Release/addon.node');\n",
        "build/Release/addon.node": "not really a shared object",
      });
      writeFileSync(join(dir, "model.ts"), [
        'import { twice } from "pure-js";',
        'import * as addon from "fake-native";',
        "export const predict = (xs: number[]) => xs.map(twice).concat(Object.keys(addon).length);",
        "",
      ].join("\n"));
      const bundle = await bundleNodeModel({ entry: join(dir, "model.ts"), outName: "model.clipper.mjs" });
      const code = Buffer.from(bundle.code).toString("utf8");
      expect(code).toContain("exports.twice = (x) => 2 * x"); // bundled in
      expect(code).toMatch(/from "fake-native"/); // left for /model/node_modules
      expect(bundle.nativePackages.map((p) => p.name)).toEqual(["fake-native"]);

      writeFileSync(join(dir, "broken.ts"), 'import { x } from "clipper-not-installed";\nexport const predict = () => x;\n');
      const error = await bundleNodeModel({ entry: join(dir, "broken.ts"), outName: "broken.clipper.mjs" }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ImageBuildError);
      expect((error as ImageBuildError).message).toContain('Could not resolve "clipper-not-installed"');
      expect((error as ImageBuildError).hint).toContain("npm install clipper-not-installed");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
