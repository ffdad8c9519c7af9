/**
 * The image builder with no daemon and no process: golden Dockerfile text per framework and the
 * build context's pieces. Bundling (esbuild runs as a process), the compiled runtime's file list and
 * real builds against the Docker daemon are in test/image-builder.test.ts.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ClipperError, ERROR_CODES } from "../../src/errors.js";
import {
  checkModelImageRequest,
  defaultBaseImage,
  ImageBuildError,
  modelDockerfile,
  modelImageTag,
  modelLayout,
  NO_PIP_HINT,
  runtimeDockerfile,
  type ModelImageRequest,
} from "../../src/images/index.js";
import { pickledPredict, readPickledFunctionHeader } from "../../src/images/build-model-image.js";
import { BuildContext } from "../../src/images/context.js";
import { modelLabels as modelDockerfileLabels } from "../../src/images/dockerfile.js";
import { builtImageTags } from "../../src/images/remove-images.js";
import { isForeignPlatformDir } from "../../src/images/node-runtime.js";

const HEADER_PY = `# Clipper model image: a Python predict function served by the RPC v3 runtime (clipper_runtime).
# Generated from templates/docker/python.Dockerfile; each step is a function in src/images/dockerfile.ts.`;

const BASE_REQUEST: ModelImageRequest = {
  cluster: "prod",
  name: "sum-model",
  version: "3",
  framework: "python",
  predictFile: "/home/user/sum/predict.py",
  predictFunction: "predict",
  inputType: "doubles",
};

/** A Python model's Dockerfile with only the base image and the framework step varying. */
function pythonGolden(from: string, frameworkLines: string, framework: string): string {
  return `${HEADER_PY}
FROM ${from}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_BREAK_SYSTEM_PACKAGES=1
# The runtime's dependency, installed only if the base image lacks it
RUN python3 -c "import numpy" 2>/dev/null || python3 -m pip install --no-cache-dir --retries 0 --timeout 5 numpy
${frameworkLines}# The Clipper Python runtime
COPY clipper/python /clipper/python
ENV PYTHONPATH=/clipper/python\${PYTHONPATH:+:$PYTHONPATH}
# The predict file, the modules beside it and the model's artifacts
COPY model /model
WORKDIR /model
ENV CLIPPER_MODEL_NAME="sum-model" CLIPPER_MODEL_VERSION="3" CLIPPER_INPUT_TYPE="doubles" CLIPPER_MODEL_PATH="/model" CLIPPER_PREDICT="/model/predict.py:predict" CLIPPER_FRAMEWORK="${framework}"
LABEL ai.clipper.model.name="sum-model" ai.clipper.model.version="3" ai.clipper.framework="${framework}" ai.clipper.cluster="prod"
CMD ["python3", "-m", "clipper_runtime"]
`;
}

const PIP = "python3 -m pip install --no-cache-dir --retries 0 --timeout 5";

describe("Dockerfiles (golden text, no daemon)", () => {
  const frameworks: [ModelImageRequest["framework"], boolean, string, string][] = [
    ["python", false, "python:3.11-slim", ""],
    ["python", true, "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime", ""],
    ["sklearn", false, "python:3.11-slim",
      `# sklearn: scikit-learn, joblib, installed only if the base image lacks them\nRUN python3 -c "import sklearn, joblib" 2>/dev/null || ${PIP} scikit-learn joblib\n`],
    ["pytorch", false, "python:3.11-slim",
      `# pytorch: torch, installed only if the base image lacks them\nRUN python3 -c "import torch" 2>/dev/null || ${PIP} --index-url https://download.pytorch.org/whl/cpu torch\n`],
    ["pytorch", true, "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
      `# pytorch: torch, installed only if the base image lacks them\nRUN python3 -c "import torch" 2>/dev/null || ${PIP} torch\n`],
    ["xgboost", false, "python:3.11-slim",
      `# xgboost: xgboost, installed only if the base image lacks them\nRUN python3 -c "import xgboost" 2>/dev/null || ${PIP} xgboost\n`],
    ["onnx", false, "python:3.11-slim",
      `# onnx: onnxruntime, installed only if the base image lacks them\nRUN python3 -c "import onnxruntime" 2>/dev/null || ${PIP} onnxruntime\n`],
    ["onnx", true, "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
      `# onnx: onnxruntime-gpu, installed only if the base image lacks them\nRUN python3 -c "import onnxruntime" 2>/dev/null || ${PIP} onnxruntime-gpu\n`],
    ["tensorflow", false, "tensorflow/tensorflow:2.17.0",
      `# tensorflow: tensorflow, installed only if the base image lacks them\nRUN python3 -c "import tensorflow" 2>/dev/null || ${PIP} tensorflow\n`],
    ["tensorflow", true, "tensorflow/tensorflow:2.17.0-gpu",
      `# tensorflow: tensorflow[and-cuda], installed only if the base image lacks them\nRUN python3 -c "import tensorflow" 2>/dev/null || ${PIP} 'tensorflow[and-cuda]'\n`],
  ];
  for (const [framework, gpu, from, frameworkLines] of frameworks) {
    it(`${framework}${gpu ? " with a GPU" : ""}: FROM ${from}`, () => {
      const rendered = modelDockerfile({ ...BASE_REQUEST, framework, gpu });
      expect(rendered.text).toBe(pythonGolden(from, frameworkLines, framework));
      expect(defaultBaseImage(framework, gpu)).toBe(from);
    });
  }

  it("python with a requirements file, packages and a base image of the user's", () => {
    const rendered = modelDockerfile({
      ...BASE_REQUEST,
      predictFunction: "score",
      requirementsFile: "/home/user/sum/requirements-prod.txt",
      packages: ["pandas>=2", "scipy"],
      baseImage: "registry.example.com/ml/python:3.12",
      inputType: "floats",
    });
    expect(rendered.text).toBe(`${HEADER_PY}
FROM registry.example.com/ml/python:3.12
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_BREAK_SYSTEM_PACKAGES=1
# The model's packages are installed with pip: stop here if the base image has none
RUN python3 -m pip --version >/dev/null 2>&1 || (echo 'the base image has no pip (python3 -m pip), needed to install the model packages' >&2; exit 1)
# The runtime's dependency, installed only if the base image lacks it
RUN python3 -c "import numpy" 2>/dev/null || python3 -m pip install --no-cache-dir --retries 0 --timeout 5 numpy
# The model's requirements (requirements-prod.txt)
COPY clipper/requirements.txt /clipper/requirements.txt
RUN ["python3", "-m", "pip", "install", "--no-cache-dir", "--retries", "0", "--timeout", "5", "-r", "/clipper/requirements.txt"]
# The model's packages
RUN ["python3", "-m", "pip", "install", "--no-cache-dir", "--retries", "0", "--timeout", "5", "pandas>=2", "scipy"]
# The Clipper Python runtime
COPY clipper/python /clipper/python
ENV PYTHONPATH=/clipper/python\${PYTHONPATH:+:$PYTHONPATH}
# The predict file, the modules beside it and the model's artifacts
COPY model /model
WORKDIR /model
ENV CLIPPER_MODEL_NAME="sum-model" CLIPPER_MODEL_VERSION="3" CLIPPER_INPUT_TYPE="floats" CLIPPER_MODEL_PATH="/model" CLIPPER_PREDICT="/model/predict.py:score" CLIPPER_FRAMEWORK="python"
LABEL ai.clipper.model.name="sum-model" ai.clipper.model.version="3" ai.clipper.framework="python" ai.clipper.cluster="prod"
CMD ["python3", "-m", "clipper_runtime"]
`);
    // The daemon's "Step N/M" maps onto our steps, so a failure can be named.
    expect(rendered.instructions.map((i) => i.step)).toEqual([
      "base image registry.example.com/ml/python:3.12",
      "Python environment",
      "pip in the base image, for the model's packages",
      "the runtime's Python dependency (numpy)",
      "the model's requirements (requirements-prod.txt, pip install -r)",
      "the model's requirements (requirements-prod.txt, pip install -r)",
      "the model's packages (pip install pandas>=2 scipy)",
      "the Clipper Python runtime",
      "the Clipper Python runtime",
      "model files",
      "model files",
      "model environment",
      "labels",
      "command",
    ]);
    // Without pip the build stops at the third step, in words, with what to do (not in pip's output steps later).
    expect(rendered.instructions[2]!.hint).toBe(NO_PIP_HINT);
    expect(NO_PIP_HINT).toMatch(/has pip \(--base-image.*apt-get install python3-pip/);
    // Only packages to install need pip: a base that has everything gets no such step.
    expect(modelDockerfile(BASE_REQUEST).text).not.toContain("pip --version");
    expect(modelDockerfile({ ...BASE_REQUEST, requirementsFile: "/r/requirements.txt" }).text).toContain("pip --version");
  });

  it("node: a TypeScript module in a subdirectory of the model path, with npm dependencies", () => {
    const rendered = modelDockerfile({
      ...BASE_REQUEST,
      framework: "node",
      predictFile: "/home/user/sum/src/model.ts",
      modelPath: "/home/user/sum",
      npmDependencies: ["sharp"],
    });
    expect(rendered.text).toBe(`# Clipper model image: a JavaScript/TypeScript predict module (bundled) served by the Node RPC v3 runtime.
# Generated from templates/docker/node.Dockerfile; each step is a function in src/images/dockerfile.ts.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
# The runtime needs Node.js 20 or newer
RUN node -e "process.exit(+process.versions.node.split('.')[0] >= 20 ? 0 : 1)" || (echo "the base image needs Node.js 20 or newer, found: $(node --version 2>&1)" >&2; exit 1)
# The Clipper Node runtime (compiled) and its production dependencies
COPY clipper /clipper
# The model's npm dependencies
WORKDIR /model
RUN ["npm", "install", "--omit=dev", "--no-audit", "--no-fund", "--no-package-lock", "sharp"]
# The predict file, the modules beside it and the model's artifacts
COPY model /model
WORKDIR /model
ENV CLIPPER_MODEL_NAME="sum-model" CLIPPER_MODEL_VERSION="3" CLIPPER_INPUT_TYPE="doubles" CLIPPER_MODEL_PATH="/model" CLIPPER_PREDICT="/model/src/model.clipper.mjs:predict" CLIPPER_FRAMEWORK="node"
LABEL ai.clipper.model.name="sum-model" ai.clipper.model.version="3" ai.clipper.framework="node" ai.clipper.cluster="prod"
CMD ["node", "/clipper/dist/runtime/container-node/main.js"]
`);
  });

  it("the runtime image", () => {
    expect(runtimeDockerfile({ version: "0.1.0", hash: "0123abcd" }).text).toBe(`# Clipper runtime image: the management daemon and the query frontend, from the bundled runtime.
# Generated from templates/docker/runtime.Dockerfile; each step is a function in src/images/dockerfile.ts.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
# The runtime needs Node.js 20 or newer
RUN node -e "process.exit(+process.versions.node.split('.')[0] >= 20 ? 0 : 1)" || (echo "the base image needs Node.js 20 or newer, found: $(node --version 2>&1)" >&2; exit 1)
# The Clipper Node runtime (compiled) and its production dependencies
COPY clipper /clipper
WORKDIR /clipper
LABEL ai.clipper.runtime.version="0.1.0" ai.clipper.runtime.hash="0123abcd"
CMD ["node", "/clipper/dist/runtime/management/main.js"]
`);
  });

  it("a pickled function (.pkl): cloudpickle pinned to the version its header records, after the framework's packages", () => {
    const request: ModelImageRequest = { ...BASE_REQUEST, predictFile: "/home/user/sum/func.pkl" };
    const pkl = (text: string) => text.replace("/model/predict.py:predict", "/model/func.pkl:predict");
    const pin = `# cloudpickle 2.2.0, the version that pickled func.pkl, installed unless the base image has exactly it
RUN python3 -c 'import cloudpickle, sys; sys.exit(cloudpickle.__version__ != "2.2.0")' 2>/dev/null || ${PIP} cloudpickle==2.2.0
`;
    const pinned = modelDockerfile(request, { file: "func.pkl", cloudpickle: "2.2.0" });
    expect(pinned.text).toBe(pkl(pythonGolden("python:3.11-slim", pin, "python")));
    expect(pinned.instructions[3]).toEqual({
      step: "cloudpickle 2.2.0, the version that pickled func.pkl",
      instruction: pinned.text.split("\n").find((l) => l.startsWith("RUN python3 -c 'import cloudpickle")),
      hint: "func.pkl was pickled with cloudpickle 2.2.0, which the base image lacks and pip could not install: let the Docker daemon reach PyPI, use a base image with cloudpickle 2.2.0 (--base-image), or re-save the function with the cloudpickle the base image has (python3 -m clipper_runtime.save)",
    });
    const sklearn = modelDockerfile({ ...request, framework: "sklearn" }, { file: "func.pkl", cloudpickle: "3.0.0" });
    expect(sklearn.text).toBe(pkl(pythonGolden("python:3.11-slim",
      `# sklearn: scikit-learn, joblib, installed only if the base image lacks them\nRUN python3 -c "import sklearn, joblib" 2>/dev/null || ${PIP} scikit-learn joblib\n${pin.replaceAll("2.2.0", "3.0.0")}`, "sklearn")));
    // A Clipper-era pickle records no version: cloudpickle only if the base image has none, and the step says so.
    const unpinned = modelDockerfile(request, { file: "func.pkl" });
    expect(unpinned.text).toBe(pkl(pythonGolden("python:3.11-slim",
      `# cloudpickle for the pickled predict function; func.pkl records no version (not saved with clipper_runtime.save), so none is pinned\nRUN python3 -c "import cloudpickle" 2>/dev/null || ${PIP} cloudpickle\n`, "python")));
    expect(unpinned.instructions[3]!.step).toBe("cloudpickle, not pinned: func.pkl records no cloudpickle version");
    // A .py predict file gets no cloudpickle step.
    expect(modelDockerfile(BASE_REQUEST).text).not.toContain("cloudpickle");
  });

  it("reads the cloudpickle version from a .pkl header without Python, and accepts .pkl predict files", () => {
    const dir = mkdtempSync(join(tmpdir(), "clipper-pkl-"));
    try {
      const json = Buffer.from(JSON.stringify({ format: "clipper-closure", format_version: 1, cloudpickle: "2.2.0", python: "3.11.2", function: "predict" }));
      const length = Buffer.alloc(4);
      length.writeUInt32LE(json.length);
      const header = Buffer.concat([Buffer.from([0x80, 0x02, 0x58]), length, json, Buffer.from(".")]);
      const payload = Buffer.from([0x80, 0x05, 0x95, 0x00]); // the pickled callable follows; not read here
      writeFileSync(join(dir, "func.pkl"), Buffer.concat([header, payload]));
      writeFileSync(join(dir, "plain.pkl"), payload);
      writeFileSync(join(dir, "odd.pkl"), Buffer.concat([header.subarray(0, 7), Buffer.from("{not json}.")]));
      expect(readPickledFunctionHeader(join(dir, "func.pkl"))).toMatchObject({ cloudpickle: "2.2.0", python: "3.11.2" });
      expect(pickledPredict({ framework: "python", predictFile: join(dir, "func.pkl") })).toEqual({ file: "func.pkl", cloudpickle: "2.2.0" });
      expect(pickledPredict({ framework: "sklearn", predictFile: join(dir, "plain.pkl") })).toEqual({ file: "plain.pkl" });
      expect(pickledPredict({ framework: "python", predictFile: join(dir, "odd.pkl") })).toEqual({ file: "odd.pkl" });
      expect(pickledPredict({ framework: "python", predictFile: "/m/predict.py" })).toBeUndefined();
      expect(() => checkModelImageRequest({ ...BASE_REQUEST, predictFile: join(dir, "func.pkl") })).not.toThrow();
      expect(() => checkModelImageRequest({ ...BASE_REQUEST, predictFile: join(dir, "func.txt") })).toThrow(/needs a .py predict file \(or a .pkl pickled function\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("escapes quotes, backslashes and $ in ENV and LABEL values", () => {
    const text = modelDockerfile({ ...BASE_REQUEST, predictFile: "/home/user/my $dir/\"odd\"\\predict.py", modelPath: "/home/user" }).text;
    expect(text).toContain('CLIPPER_PREDICT="/model/my \\$dir/\\"odd\\"\\\\predict.py:predict"');
  });
});

describe("image builder pieces (no daemon)", () => {
  it("places the predict file and the artifacts under /model", () => {
    expect(modelLayout({ framework: "python", predictFile: "/m/predict.py", predictFunction: "" }))
      .toMatchObject({ modelDir: "/m", predictDir: "/m", entry: "predict.py", predict: "/model/predict.py:predict" });
    // Artifacts elsewhere: the predict file goes to the root of /model, beside them.
    expect(modelLayout({ framework: "python", predictFile: "/src/app/predict.py", predictFunction: "f", modelPath: "/data/artifacts" }))
      .toMatchObject({ modelDir: "/data/artifacts", entry: "predict.py", predict: "/model/predict.py:f" });
    // Inside the model path: it keeps its place there; a Node module becomes a bundle beside it.
    expect(modelLayout({ framework: "node", predictFile: "/m/src/model.ts", predictFunction: "predict", modelPath: "/m" }))
      .toMatchObject({ entry: "src/model.clipper.mjs", predict: "/model/src/model.clipper.mjs:predict" });
  });

  it("tags <cluster>-<name>:<version>, prefixed with the registry when given", () => {
    expect(modelImageTag({ cluster: "default", name: "sum", version: "1" })).toBe("default-sum:1");
    expect(modelImageTag({ cluster: "default", name: "sum", version: "1", registry: "localhost:5000/team/" })).toBe("localhost:5000/team/default-sum:1");
  });

  it("rejects requests that cannot make an image, as usage errors", () => {
    const bad: [Partial<ModelImageRequest>, RegExp][] = [
      [{ name: "Sum" }, /model name 'Sum'/],
      [{ framework: "caffe" as never }, /unknown framework 'caffe'/],
      [{ framework: "node" }, /needs a .js\/.mjs\/.cjs\/.ts\/.mts predict module/],
      [{ predictFile: "/m/model.ts" }, /needs a .py predict file/],
      [{ npmDependencies: ["left-pad"] }, /npm dependencies apply to --framework node only/],
      [{ packages: ["--index-url=http://evil"] }, /is not a package specifier/],
      [{ registry: "http://registry" }, /is not a registry address/],
      [{ cluster: "My Cluster" }, /cannot be part of an image name/],
    ];
    for (const [change, message] of bad) {
      let error: unknown;
      try {
        checkModelImageRequest({ ...BASE_REQUEST, ...change });
      } catch (err) {
        error = err;
      }
      expect(error, JSON.stringify(change)).toBeInstanceOf(ClipperError);
      expect((error as ClipperError).code).toBe("USAGE");
      expect((error as Error).message).toMatch(message);
    }
  });

  it("stop --remove-images chooses exactly the tags the cluster's builds made", () => {
    const labels = (cluster: string, name = "m", version = "1") => modelDockerfileLabels({ ...BASE_REQUEST, cluster, name, version });
    const images = [
      // Built by cluster prod: its local tag and the same pushed under a registry.
      { id: "a", tags: ["prod-m:1", "registry.local:5000/team/prod-m:1"], labels: labels("prod") },
      // A user's image FROM a model image: Docker copied our labels, but the tag is the user's.
      { id: "b", tags: ["my-derived:latest"], labels: labels("prod") },
      // Our tag moved onto an image without our labels (docker tag): not ours.
      { id: "c", tags: ["prod-n:1"], labels: {} },
      // Another cluster's image, and one whose tag names another cluster.
      { id: "d", tags: ["staging-m:1"], labels: labels("staging") },
      { id: "e", tags: ["prod-m:2", "staging-m:2"], labels: labels("prod", "m", "2") },
      // Labels of another version than the tag: a tag moved between our own images is left alone.
      { id: "f", tags: ["prod-m:3"], labels: labels("prod", "m", "4") },
    ];
    expect(builtImageTags("prod", images)).toEqual(["prod-m:1", "prod-m:2", "registry.local:5000/team/prod-m:1"]);
    expect(builtImageTags("staging", images)).toEqual(["staging-m:1"]);
    expect(builtImageTags("nobody", images)).toEqual([]);
  });

  it("has an exit code for build failures", () => {
    expect(ERROR_CODES.BUILD_FAILED.exitCode).toBe(8);
    const err = new ImageBuildError("building x failed", "check y", "line 1\nline 2");
    expect(err).toBeInstanceOf(ClipperError);
    expect(err.exitCode).toBe(8);
  });

  it("prunes native binaries of other platforms only", () => {
    const linux = { os: "linux", arch: "x64" };
    expect(isForeignPlatformDir("build/darwin", linux)).toBe(true);
    expect(isForeignPlatformDir("build/linux/arm64", linux)).toBe(true);
    expect(isForeignPlatformDir("build/linux/x64/node/glibc-115-Release", linux)).toBe(false);
    expect(isForeignPlatformDir("prebuilds/win32-x64", linux)).toBe(true);
    expect(isForeignPlatformDir("prebuilds/linux-x64", linux)).toBe(false);
    expect(isForeignPlatformDir("lib/utils/darwin-helpers", linux)).toBe(false);
    expect(isForeignPlatformDir("src/linux", linux)).toBe(false);
  });

  it("packs the same files into the same tar and hash, whatever their times", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clipper-ctx-"));
    try {
      writeFileSync(join(dir, "a.txt"), "a");
      mkdirSync(join(dir, "__pycache__"));
      writeFileSync(join(dir, "__pycache__", "x.pyc"), "x");
      const pack = async (): Promise<{ hash: string; tar: Buffer; paths: string[] }> => {
        const ctx = new BuildContext();
        await ctx.addDirectory("model", dir, (p, isDir) => !(isDir && p.endsWith("__pycache__")));
        ctx.addData("Dockerfile", "FROM scratch\n");
        const chunks: Buffer[] = [];
        for await (const chunk of ctx.pack()) chunks.push(chunk as Buffer);
        return { hash: await ctx.hash(), tar: Buffer.concat(chunks), paths: ctx.paths() };
      };
      const first = await pack();
      writeFileSync(join(dir, "a.txt"), "a"); // a new mtime, the same content
      const second = await pack();
      expect(first.paths).toEqual(["Dockerfile", "model/a.txt"]);
      expect(second.hash).toBe(first.hash);
      expect(second.tar.equals(first.tar)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
