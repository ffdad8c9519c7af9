/**
 * The framework runtimes of the Python model container (runtime/python/clipper_runtime/frameworks):
 * CLIPPER_FRAMEWORK loads a model artifact from CLIPPER_MODEL_PATH, served by the framework's default
 * predict or wrapped by a user predict(inputs, model). Each test runs the real runtime process and
 * drives it over real ZeroMQ with a ROUTER playing the query frontend (frames from runtime/rpc/codec.ts).
 *
 * sklearn, xgboost and pytorch use real models, trained or set by test/fixtures/frameworks/make_models.py
 * in each suite's beforeAll. onnxruntime and tensorflow are not installable here: their loaders are
 * driven through fakes of the libraries' interfaces (test/fixtures/frameworks/fakes) on PYTHONPATH.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BATCH_ERROR_PREFIX } from "../runtime/rpc/codec.js";
import type { InputType } from "../runtime/shared/input-types.js";
import { pythonRuntimeDir } from "../runtime/shared/package-root.js";
import { PYTHON, assertPythonHas, cleanEnv, pythonHas, pythonRuntimeEnv, pythonSkipReason } from "./support/python.js";
import { freePort } from "./support/cli.js";
import { Frontend, sleep, testRpcEnv } from "./support/test-frontend.js";
import { within } from "./support/within.js";
import { readableLog } from "../src/log-lines.js";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const FIXTURES = join(REPO, "test", "fixtures", "frameworks");
const MAKE_MODELS = join(FIXTURES, "make_models.py");
const FAKES = join(FIXTURES, "fakes");

const BASE = ["numpy"];
const SKLEARN = [...BASE, "sklearn", "joblib"];
const XGBOOST = [...BASE, "xgboost", "joblib"];
const TORCH = [...BASE, "torch"];

const title = (name: string, modules: string[]) => {
  const reason = pythonSkipReason(modules);
  return { skip: reason !== undefined, name: reason ? `${name} (${reason})` : name };
};

// ---- a frontend, the runtime process, model directories ------------------------------------------


type Child = { proc: ChildProcess; stderr: () => string; exited: Promise<number | null> };

const children: ChildProcess[] = [];
const frontends: Frontend[] = [];
const tempDirs: string[] = [];

function tempDir(prefix = "clipper-fw-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** The process environment without the CLIPPER_* / FAKE_* settings of the machine running the tests. */
function startRuntime(env: Record<string, string | undefined>, opts: { fakes?: boolean } = {}): Child {
  const proc = spawn(PYTHON, ["-m", "clipper_runtime"], {
    env: pythonRuntimeEnv({ ...(opts.fakes ? { PYTHONPATH: `${pythonRuntimeDir()}${delimiter}${FAKES}` } : {}), PYTHONDONTWRITEBYTECODE: "1", ...env }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(proc);
  let err = "";
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  proc.stdout!.resume();
  const exited = new Promise<number | null>((res) => proc.once("close", (code) => res(code)));
  return { proc, stderr: () => err, exited };
}

function exitOf(child: Child, timeoutMs = 30_000): Promise<number | null> {
  return within(child.exited, timeoutMs, () => `the runtime to exit\n${child.stderr()}`);
}

/** The runtime's environment for a framework model in `dir` (CLIPPER_PREDICT unset unless given). */
function runtimeEnv(framework: string, dir: string, env: Record<string, string> = {}): Record<string, string> {
  return {
    CLIPPER_MODEL_NAME: "m",
    CLIPPER_MODEL_VERSION: "1",
    CLIPPER_FRAMEWORK: framework,
    CLIPPER_MODEL_PATH: dir,
    CLIPPER_READY_FILE: join(tempDir("clipper-fw-ready-"), "ready.check"),
    CLIPPER_HEARTBEAT_INTERVAL_MS: "500",
    ...env,
  };
}

/** A frontend on a free port and a runtime serving `framework` from `dir`, after the handshake. */
async function serve(framework: string, dir: string, opts: { env?: Record<string, string>; inputType?: InputType; fakes?: boolean } = {}) {
  const port = await freePort();
  let child: Child | undefined;
  const frontend = new Frontend(port, () => `--- runtime stderr ---\n${child?.stderr() ?? ""}`);
  frontends.push(frontend);
  await frontend.bind();
  child = startRuntime(
    runtimeEnv(framework, dir, {
      CLIPPER_IP: "127.0.0.1", CLIPPER_PORT: String(port), CLIPPER_INPUT_TYPE: opts.inputType ?? "doubles",
      ...testRpcEnv("m", "1", opts.inputType ?? "doubles"), ...opts.env,
    }),
    { fakes: opts.fakes },
  );
  // Loading a framework's model can take seconds: a generous handshake and answer.
  const { identity } = await frontend.handshake(30_000);
  const predict = (msgId: number, inputs: unknown[], inputType: InputType = opts.inputType ?? "doubles") =>
    frontend.predict(identity, msgId, inputType, inputs, 30_000);
  return { frontend, child, predict };
}

/** Starts the runtime expecting it to fail at start: returns its exit code and its stderr lines. */
async function failure(framework: string, dir: string, env: Record<string, string> = {}, opts: { fakes?: boolean } = {}) {
  const child = startRuntime(runtimeEnv(framework, dir, { CLIPPER_PORT: String(await freePort()), ...env }), opts);
  const code = await exitOf(child);
  return { code, lines: child.stderr().trim().split("\n"), stderr: child.stderr() };
}

/** Runs make_models.py for `kind` into a new directory; returns the directory and what it printed. */
function makeModels<T>(kind: string): { dir: string; info: T } {
  const dir = tempDir(`clipper-fw-${kind}-`);
  const r = spawnSync(PYTHON, [MAKE_MODELS, kind, dir], { encoding: "utf8", timeout: 110_000, env: { ...cleanEnv(), PYTHONDONTWRITEBYTECODE: "1" } });
  if (r.status !== 0) throw new Error(`make_models.py ${kind} failed (${r.status ?? r.signal}):\n${r.stderr}`);
  return { dir, info: JSON.parse(r.stdout.trim().split("\n").pop()!) as T };
}

const json = (outputs: string[]) => outputs.map((o) => JSON.parse(o) as unknown);

afterEach(() => {
  for (const f of frontends.splice(0)) f.close();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

afterAll(async () => {
  await sleep(50);
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

// ---- configuration errors (no framework library needed) ------------------------------------------

const base = title("framework selection", BASE);
describe.skipIf(base.skip)(base.name, () => {
  beforeAll(() => assertPythonHas(BASE));

  it("exits 2 for an unknown CLIPPER_FRAMEWORK, naming the known ones", async () => {
    const r = await failure("caffe", tempDir());
    expect(r.code).toBe(2);
    expect(r.lines).toHaveLength(1);
    expect(r.stderr).toMatch(/CLIPPER_FRAMEWORK 'caffe' is not one of python, pytorch, sklearn, xgboost, onnx, tensorflow/);
  });

  it("exits 1 when a predict(inputs, model) is served with CLIPPER_FRAMEWORK=python (no model to pass)", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "predict.py"), "def predict(inputs, model):\n    return list(inputs)\n");
    const r = await failure("python", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/predict\(inputs, model\) in .*predict\.py needs a model, but CLIPPER_FRAMEWORK is python/);
  });

  // Where the interpreter has the real library, there is nothing missing to report.
  it.skipIf(pythonHas(["onnxruntime"]))("exits 1 with one line when onnxruntime is missing", async () => {
    const onnx = await failure("onnx", tempDir());
    expect(onnx.code).toBe(1);
    expect(onnx.lines).toHaveLength(1);
    expect(onnx.stderr).toMatch(/CLIPPER_FRAMEWORK=onnx needs onnxruntime: No module named 'onnxruntime'/);
  });

  it.skipIf(pythonHas(["tensorflow"]))("exits 1 with one line when tensorflow is missing", async () => {
    const tf = await failure("tensorflow", tempDir());
    expect(tf.code).toBe(1);
    expect(tf.lines).toHaveLength(1);
    expect(tf.stderr).toMatch(/CLIPPER_FRAMEWORK=tensorflow needs tensorflow: No module named 'tensorflow'/);
  });
});

// ---- scikit-learn: a real LogisticRegression -----------------------------------------------------

type SklearnInfo = { classes: string[]; expected: string[]; proba: number[][] };
const sk = title("sklearn framework runtime", SKLEARN);
describe.skipIf(sk.skip)(sk.name, () => {
  let models: { dir: string; info: SklearnInfo };
  beforeAll(() => {
    assertPythonHas(SKLEARN);
    models = makeModels<SklearnInfo>("sklearn");
  });

  it("serves model.predict(X) when there is no predict function: the right labels, as plain strings", async () => {
    const { predict, child } = await serve("sklearn", models.dir);
    expect(models.info.expected).toEqual(["low", "high"]);
    expect(await predict(1, [[0.5, 0.5], [9.5, 9.5]])).toEqual(["low", "high"]);
    expect(await predict(2, [[10, 10], [0, 0], [0, 1]])).toEqual(["high", "low", "low"]);
    const log = readableLog(child.stderr());
    expect(log).toMatch(/INFO framework sklearn: loaded LogisticRegression from .*model\.joblib \(device: cpu\)/);
    expect(log).toMatch(/no predict function given: serving the sklearn default predict, model\.predict\(X\)/);
  });

  it("fails a batch the default predict cannot form into a 2-D array, and keeps serving", async () => {
    const { predict } = await serve("sklearn", models.dir);
    const outputs = await predict(1, [[1, 2], [3]]);
    expect(outputs).toHaveLength(2);
    expect(outputs[0]!.startsWith(BATCH_ERROR_PREFIX)).toBe(true);
    expect(outputs[0]).toMatch(/needs inputs of one length to form a 2-D batch, got lengths 1, 2/);
    expect(await predict(2, [[9, 9]])).toEqual(["high"]);
  });

  it("passes the model to a user predict(inputs, model) found as predict.py; clipper_runtime.model() is the same model", async () => {
    const dir = tempDir();
    copyFileSync(join(models.dir, "model.joblib"), join(dir, "model.joblib"));
    writeFileSync(
      join(dir, "predict.py"),
      [
        "import clipper_runtime",
        "",
        "def predict(inputs, model):",
        "    high = list(model.classes_).index('high')",
        "    return [{'label': label, 'p_high': round(float(p[high]), 6)}",
        "            for label, p in zip(model.predict(inputs), model.predict_proba(inputs))]",
        "",
        "def same(inputs):",
        "    return [clipper_runtime.model() is MODEL_AT_IMPORT and type(clipper_runtime.model()).__name__ for _ in inputs]",
        "",
        "MODEL_AT_IMPORT = clipper_runtime.model()  # set before the predict file is imported",
        "",
      ].join("\n"),
    );
    const first = await serve("sklearn", dir);
    const [low, high] = json(await first.predict(1, [[0.5, 0.5], [9.5, 9.5]])) as Array<{ label: string; p_high: number }>;
    expect(low!.label).toBe("low");
    expect(low!.p_high).toBeCloseTo(models.info.proba[0]![models.info.classes.indexOf("high")]!, 5);
    expect(high!.label).toBe("high");
    expect(high!.p_high).toBeGreaterThan(0.5);
    expect(first.child.stderr()).toMatch(/loaded predict\(inputs, model\) from .*predict\.py/);

    const second = await serve("sklearn", dir, { env: { CLIPPER_PREDICT: "predict.py:same" } });
    expect(await second.predict(1, [[1, 1]])).toEqual(["LogisticRegression"]); // a str output goes out as is
  });

  it("feeds string inputs to a text pipeline as a list of str (model.pkl)", async () => {
    const { predict, child } = await serve("sklearn", join(models.dir, "text"), { inputType: "strings" });
    expect(await predict(1, ["good great", "awful poor", "fine"])).toEqual(["1", "0", "1"]);
    expect(child.stderr()).toMatch(/loaded Pipeline from .*text\/model\.pkl/);
  });

  it("loads the artifact CLIPPER_MODEL_FILE names", async () => {
    const dir = tempDir();
    copyFileSync(join(models.dir, "model.joblib"), join(dir, "classifier.bin"));
    const { predict } = await serve("sklearn", dir, { env: { CLIPPER_MODEL_FILE: "classifier.bin" } });
    expect(await predict(1, [[9, 10]])).toEqual(["high"]);
  });

  it("exits 1 with one clear line when the artifact is missing", async () => {
    const dir = tempDir();
    const r = await failure("sklearn", dir);
    expect(r.code).toBe(1);
    expect(r.lines).toHaveLength(1);
    expect(r.stderr).toContain(`CLIPPER_FRAMEWORK=sklearn found no model artifact in ${dir} (looked for model.joblib, model.pkl; set CLIPPER_MODEL_FILE`);

    const named = await failure("sklearn", dir, { CLIPPER_MODEL_FILE: "nope.joblib" });
    expect(named.code).toBe(1);
    expect(named.stderr).toMatch(/CLIPPER_FRAMEWORK=sklearn: CLIPPER_MODEL_FILE=nope\.joblib: .*nope\.joblib is not a file/);

    writeFileSync(join(dir, "model.joblib"), "not a pickle");
    const corrupt = await failure("sklearn", dir);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toMatch(/CLIPPER_FRAMEWORK=sklearn could not load .*model\.joblib: /);
  });
});

// ---- xgboost: a real XGBClassifier and its Booster -----------------------------------------------

type XgbInfo = { expected: number[]; booster: number[] };
const xg = title("xgboost framework runtime", XGBOOST);
describe.skipIf(xg.skip)(xg.name, () => {
  let models: { dir: string; info: XgbInfo };
  beforeAll(() => {
    assertPythonHas(XGBOOST);
    models = makeModels<XgbInfo>("xgboost");
  });

  it("serves a joblib XGBClassifier with model.predict(X)", async () => {
    const { predict, child } = await serve("xgboost", models.dir);
    expect(json(await predict(1, [[0.5, 0.5], [9.5, 9.5]]))).toEqual(models.info.expected);
    expect(models.info.expected).toEqual([0, 1]);
    expect(child.stderr()).toMatch(/framework xgboost: loaded XGBClassifier from .*model\.joblib/);
  });

  it("serves a Booster saved as model.json with booster.predict(DMatrix(X))", async () => {
    const { predict, child } = await serve("xgboost", join(models.dir, "native"), { inputType: "floats" });
    const got = json(await predict(1, [[0.5, 0.5], [9.5, 9.5]])) as number[];
    got.forEach((p, i) => expect(p).toBeCloseTo(models.info.booster[i]!, 5));
    expect(child.stderr()).toMatch(/loaded Booster from .*native\/model\.json/);
  });
});

// ---- pytorch: TorchScript, and a pickled module + state dict -------------------------------------

type TorchInfo = { expected: number[][] };
const pt = title("pytorch framework runtime", TORCH);
describe.skipIf(pt.skip)(pt.name, () => {
  let models: { dir: string; info: TorchInfo };
  beforeAll(() => {
    assertPythonHas(TORCH);
    models = makeModels<TorchInfo>("pytorch");
  });

  it("serves a TorchScript model.pt: model(X) under no_grad, one row per input, on the CPU here", async () => {
    const { predict, child } = await serve("pytorch", join(models.dir, "script"));
    expect(models.info.expected).toEqual([[3.5, 6.5], [2.5, 5.5]]);
    expect(json(await predict(1, [[1, 1], [2, 0]]))).toEqual(models.info.expected);
    expect(child.stderr()).toMatch(/framework pytorch: loaded TorchScript module from .*script\/model\.pt \(device: cpu\)/);
  });

  it("loads a pickled module (its class in net.py next to it) and applies state_dict.pt", async () => {
    // The pickled module's weights are zero: the right answers come from the state dict.
    const { predict, child } = await serve("pytorch", join(models.dir, "pickled"), { inputType: "floats" });
    expect(json(await predict(1, [[1, 1], [2, 0]]))).toEqual(models.info.expected);
    expect(child.stderr()).toMatch(/loaded pickled Net from .*pickled\/model\.pkl \+ .*pickled\/state_dict\.pt \(device: cpu\)/);
  });

  it("passes the module to a user predict(inputs, model), with clipper_runtime.device()", async () => {
    const dir = tempDir();
    copyFileSync(join(models.dir, "script", "model.pt"), join(dir, "model.pt"));
    writeFileSync(
      join(dir, "serve.py"),
      [
        "import torch",
        "import clipper_runtime",
        "",
        "def argmax(inputs, model):",
        "    x = torch.as_tensor(inputs, dtype=torch.float32, device=clipper_runtime.device())",
        "    with torch.no_grad():",
        "        return model(x).argmax(dim=1).tolist()",
        "",
      ].join("\n"),
    );
    const { predict } = await serve("pytorch", dir, { env: { CLIPPER_PREDICT: "serve.py:argmax" } });
    expect(json(await predict(1, [[1, 1], [-1, -3]]))).toEqual([1, 0]);
  });

  it("exits 1 naming what a state-dict-only model.pt lacks", async () => {
    const dir = tempDir();
    copyFileSync(join(models.dir, "pickled", "state_dict.pt"), join(dir, "model.pt"));
    const r = await failure("pytorch", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/model\.pt holds a state dict, not a model; save TorchScript/);
  });
});

// ---- onnx: the loader driven through a fake onnxruntime ------------------------------------------

function onnxModel(dir: string, model: object): string {
  writeFileSync(join(dir, "model.onnx"), JSON.stringify(model));
  return dir;
}
const LINEAR = { op: "linear", weight: [[1, 2], [3, 4]], bias: [0.5, -0.5] };

const ox = title("onnx framework runtime (fake onnxruntime)", BASE);
describe.skipIf(ox.skip)(ox.name, () => {
  beforeAll(() => assertPythonHas(BASE));

  it("casts the batch to the input's element type, runs the session and answers output 0 by row, on the CPU provider", async () => {
    const dir = onnxModel(tempDir(), { input: { name: "features", type: "tensor(float)", shape: ["batch", 2] }, ...LINEAR });
    const { predict, child } = await serve("onnx", dir, { fakes: true });
    expect(json(await predict(1, [[1, 1], [2, 0]]))).toEqual([[3.5, 6.5], [2.5, 5.5]]);
    expect(child.stderr()).toMatch(
      /framework onnx: loaded InferenceSession \(input 'features', tensor\(float\)\) from .*model\.onnx \(device: providers CPUExecutionProvider\)/,
    );
  });

  it("asks for the CUDA provider first when onnxruntime offers it", async () => {
    const dir = onnxModel(tempDir(), { input: { name: "x", type: "tensor(double)", shape: [null, 2] }, ...LINEAR });
    const { predict, child } = await serve("onnx", dir, {
      fakes: true,
      env: { FAKE_ORT_PROVIDERS: "TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider" },
      inputType: "floats",
    });
    expect(json(await predict(1, [[1, 1]]))).toEqual([[3.5, 6.5]]);
    expect(child.stderr()).toMatch(/\(device: providers CUDAExecutionProvider, CPUExecutionProvider\)/);
  });

  it("reshapes flat rows to a static input shape, and feeds strings to a string input", async () => {
    const image = onnxModel(tempDir(), { input: { name: "image", type: "tensor(float)", shape: ["N", 1, 1, 2] }, ...LINEAR });
    const served = await serve("onnx", image, { fakes: true });
    expect(json(await served.predict(1, [[1, 1]]))).toEqual([[3.5, 6.5]]);

    const text = onnxModel(tempDir(), { input: { name: "text", type: "tensor(string)", shape: [null, 1] }, op: "length" });
    const strings = await serve("onnx", text, { fakes: true, inputType: "strings" });
    expect(json(await strings.predict(1, ["abc", ""]))).toEqual([[3], [0]]);
  });

  it("passes the InferenceSession to a user predict(inputs, model)", async () => {
    const dir = onnxModel(tempDir(), { input: { name: "x", type: "tensor(float)", shape: [null, 2] }, ...LINEAR });
    writeFileSync(
      join(dir, "predict.py"),
      "import numpy as np\n\ndef predict(inputs, session):\n" +
        "    name = session.get_inputs()[0].name\n" +
        "    return session.run(None, {name: np.asarray(inputs, dtype=np.float32)})[0].argmax(axis=1)\n",
    );
    const { predict } = await serve("onnx", dir, { fakes: true });
    expect(json(await predict(1, [[1, 1], [0, 0]]))).toEqual([1, 0]);
  });

  it("exits 1 when model.onnx is missing", async () => {
    const r = await failure("onnx", tempDir(), {}, { fakes: true });
    expect(r.code).toBe(1);
    expect(r.lines).toHaveLength(1);
    expect(r.stderr).toMatch(/CLIPPER_FRAMEWORK=onnx found no model artifact in .* \(looked for model\.onnx;/);
  });
});

// ---- tensorflow: the loader driven through a fake tensorflow -------------------------------------

function savedModel(dir: string, outputs: Record<string, string>, signature = "serving_default"): string {
  const model = {
    signatures: { [signature]: { input: { name: "inputs", dtype: "float32", shape: [null, 2] }, outputs } },
    weight: [[1, 2], [3, 4]],
    bias: [0.5, -0.5],
  };
  writeFileSync(join(dir, "saved_model.pb"), JSON.stringify(model));
  return dir;
}

const tf = title("tensorflow framework runtime (fake tensorflow)", BASE);
describe.skipIf(tf.skip)(tf.name, () => {
  beforeAll(() => assertPythonHas(BASE));

  it("calls the serving_default signature of saved_model/ with the batch as its input", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "saved_model"));
    savedModel(join(dir, "saved_model"), { output_0: "linear" });
    const { predict, child } = await serve("tensorflow", dir, { fakes: true });
    expect(json(await predict(1, [[1, 1], [2, 0]]))).toEqual([[3.5, 6.5], [2.5, 5.5]]);
    expect(child.stderr()).toMatch(
      /framework tensorflow: loaded SavedModel \(signature 'serving_default', input 'inputs'\) from .*saved_model \(device: CPU/,
    );
  });

  it("answers a dict of the named outputs per row, from a model directory that is the SavedModel, and logs the GPU", async () => {
    const dir = savedModel(tempDir(), { scores: "linear", total: "sum" });
    const { predict, child } = await serve("tensorflow", dir, { fakes: true, env: { FAKE_TF_GPUS: "1" } });
    expect(json(await predict(1, [[1, 1]]))).toEqual([{ scores: [3.5, 6.5], total: 2 }]);
    expect(child.stderr()).toMatch(/\(device: GPU \(1 visible to TensorFlow\)\)/);
  });

  it("passes the loaded SavedModel to a user predict(inputs, model)", async () => {
    const dir = savedModel(tempDir(), { output_0: "linear" });
    writeFileSync(
      join(dir, "predict.py"),
      "import tensorflow as tf\n\ndef predict(inputs, model):\n" +
        "    out = model.signatures['serving_default'](inputs=tf.constant(inputs, dtype=tf.float32))\n" +
        "    return [round(sum(row), 3) for row in out['output_0'].numpy().tolist()]\n",
    );
    const { predict } = await serve("tensorflow", dir, { fakes: true });
    expect(json(await predict(1, [[1, 1]]))).toEqual([10]);
  });

  it("exits 1 without a SavedModel, or without serving_default when no predict function is given", async () => {
    const none = await failure("tensorflow", tempDir(), {}, { fakes: true });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/CLIPPER_FRAMEWORK=tensorflow found no SavedModel in /);

    const other = savedModel(tempDir(), { output_0: "linear" }, "classify");
    const r = await failure("tensorflow", other, {}, { fakes: true });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the default predict cannot serve this model: the SavedModel has no 'serving_default' signature \(it has: classify\)/);
  });
});
