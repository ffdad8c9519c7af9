/**
 * Python closures (Clipper's pickled functions): `python3 -m clipper_runtime.save` pickles a closure
 * over a numpy array by value, the real Python runtime loads the .pkl (with no predict.py beside it)
 * and answers a ROUTER playing the frontend; a version-mismatched envelope warns naming both
 * versions, and fails naming both when it cannot load; a plain `cloudpickle.dumps(fn)` (what
 * Clipper's deployers wrote) loads too; non-callables are refused. `python3 -m
 * clipper_runtime.test_predict` answers exactly what the runtime sends over RPC for the same inputs.
 * Last, the .pkl deployed through the real CLI on the embedded default answers `clipper predict`.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BATCH_ERROR_PREFIX } from "../runtime/rpc/codec.js";
import type { InputType } from "../runtime/shared/input-types.js";
import { pickledPredict, readPickledFunctionHeader } from "../src/images/build-model-image.js";
import { cliFor, freePort } from "./support/cli.js";
import { assertPythonHas, PYTHON, pythonRuntimeEnv, pythonSkipReason } from "./support/python.js";
import { Frontend, testRpcEnv } from "./support/test-frontend.js";
import { parseLogLine, readableLog } from "../src/log-lines.js";
import { duplicateKeys } from "./support/json-lines.js";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const FIXTURES = join(REPO, "test", "fixtures", "python-closures");
const MODULES = ["numpy", "cloudpickle"];
const skipReason = pythonSkipReason(MODULES);
const title = (what: string) => `${what}${skipReason ? ` (${skipReason})` : ""}`;

/** The line of closure_model.py that raises in `failing`. */
const FAILING_LINE = readFileSync(join(FIXTURES, "closure_model.py"), "utf8").split("\n").findIndex((l) => l.includes("# FAILING_LINE")) + 1;

/** The process environment without the machine's CLIPPER_* settings, with the runtime importable. */
function python(args: string[], options: { cwd?: string; input?: string } = {}) {
  const r = spawnSync(PYTHON, args, { cwd: options.cwd, input: options.input ?? "", env: pythonRuntimeEnv(), encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `python3 -m clipper_runtime.test_predict ...` with `inputs` on stdin: the exit code and the one JSON line. */
function testPredict(predict: string, inputType: string, inputs: unknown, extra: string[] = []) {
  const r = python(["-m", "clipper_runtime.test_predict", "--predict", predict, "--input-type", inputType, ...extra],
    { input: typeof inputs === "string" ? inputs : JSON.stringify(inputs) });
  const lines = r.stdout.trim().split("\n");
  expect(lines, `stdout must be one JSON line:\n${r.stdout}\n--- stderr ---\n${r.stderr}`).toHaveLength(1);
  return { code: r.code, answer: JSON.parse(lines[0]!) as { ok: boolean; outputs?: string[]; error?: string; traceback?: string }, stderr: r.stderr };
}

type Runtime = { proc: ChildProcess; stderr: () => string; exited: Promise<number | null> };
const runtimes: ChildProcess[] = [];
const frontends: Frontend[] = [];

function startRuntime(env: Record<string, string>): Runtime {
  const proc = spawn(PYTHON, ["-m", "clipper_runtime"], { env: pythonRuntimeEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  runtimes.push(proc);
  let err = "";
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  proc.stdout!.resume();
  const exited = new Promise<number | null>((res) => proc.once("close", (code) => res(code)));
  return { proc, stderr: () => err, exited };
}

/** A runtime serving `predict` (CLIPPER_PREDICT) from `modelPath`, connected to a fresh frontend stand-in. */
async function serve(predict: string, modelPath: string, inputType: InputType = "doubles") {
  const port = await freePort();
  let runtime: Runtime | undefined;
  const frontend = new Frontend(port, () => `--- runtime stderr ---\n${runtime?.stderr() ?? ""}`);
  frontends.push(frontend);
  await frontend.bind();
  runtime = startRuntime({
    CLIPPER_MODEL_NAME: "closure", CLIPPER_MODEL_VERSION: "1", CLIPPER_IP: "127.0.0.1", CLIPPER_PORT: String(port),
    CLIPPER_INPUT_TYPE: inputType, CLIPPER_MODEL_PATH: modelPath, CLIPPER_PREDICT: predict,
    CLIPPER_READY_FILE: join(modelPath, `ready-${port}.check`), CLIPPER_HEARTBEAT_INTERVAL_MS: "500",
    ...testRpcEnv("closure", "1", inputType),
  });
  const { identity } = await frontend.handshake(20_000);
  return { runtime, predict: (msgId: number, inputs: unknown[]) => frontend.predict(identity, msgId, inputType, inputs, 20_000) };
}

/** Runs the runtime on a predict file that must not load: its exit code and log. */
async function failsToLoad(predict: string, modelPath: string) {
  const runtime = startRuntime({
    CLIPPER_MODEL_NAME: "closure", CLIPPER_MODEL_VERSION: "1", CLIPPER_PORT: String(await freePort()),
    CLIPPER_MODEL_PATH: modelPath, CLIPPER_PREDICT: predict,
  });
  const timer = setTimeout(() => runtime.proc.kill("SIGKILL"), 20_000);
  const code = await runtime.exited.finally(() => clearTimeout(timer));
  return { code, stderr: runtime.stderr() };
}

const BATCH = [[1, 2, 3], [0, 0, 1], [-1, 0.5, 2]];
// weights [0.5, -1, 2], then scaling.scale (x10)
const EXPECTED = ["45.0", "20.0", "30.0"];

describe.skipIf(skipReason !== undefined)(title("Python closures saved with clipper_runtime.save, served by the runtime"), () => {
  const work = mkdtempSync(join(tmpdir(), "clipper-closures-"));
  /** Where the pickles are, with no Python source: what they need must be inside them. */
  const out = join(work, "out");
  const src = join(work, "src");
  const sourceFile = join(src, "closure_model.py");
  let saveOutput = "";

  beforeAll(() => {
    assertPythonHas(MODULES);
    mkdirSync(out);
    cpSync(FIXTURES, src, { recursive: true });
    const saved = python(["-m", "clipper_runtime.save", "closure_model.py:predict", join(out, "func.pkl")], { cwd: src });
    expect(saved.code, saved.stderr).toBe(0);
    saveOutput = saved.stdout;
    for (const fn of ["describe", "failing"]) {
      const r = python(["-m", "clipper_runtime.save", `${sourceFile}:${fn}`, join(out, `${fn}.pkl`)]);
      expect(r.code, r.stderr).toBe(0);
    }
    const variants = python([join(src, "make_variants.py"), join(out, "func.pkl"), out]);
    expect(variants.code, variants.stderr).toBe(0);
    // An importable save() from a script: a lambda over a numpy array, in __main__.
    const script = [
      "import numpy as np",
      "from clipper_runtime.save import save",
      "bias = np.array([100.0, 200.0])",
      `save(lambda xs: [float(np.sum(x + bias)) for x in xs], ${JSON.stringify(join(out, "lambda.pkl"))})`,
    ].join("\n");
    const r = python(["-c", script], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    // The model's source goes away: the pickles must not need it.
    rmSync(src, { recursive: true });
  });

  afterEach(() => {
    for (const f of frontends.splice(0)) f.close();
    for (const p of runtimes.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  });

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("save prints what it wrote, and the header records the versions (read by Python and by the image builder)", () => {
    expect(saveOutput).toMatch(/^wrote .*func\.pkl \(\d+ bytes\): predict from .*closure_model\.py, pickled with cloudpickle [\d.]+ on Python 3\.\d+\.\d+; by value: closure_model, scaling\n$/);
    const versions = python(["-c", "import cloudpickle, platform; print(cloudpickle.__version__, platform.python_version())"]);
    const [cloudpickle, pythonVersion] = versions.stdout.trim().split(" ");
    const inspected = python(["-m", "clipper_runtime.save", "--inspect", join(out, "func.pkl")]);
    expect(inspected.code).toBe(0);
    const header = JSON.parse(inspected.stdout);
    expect(header).toMatchObject({
      format: "clipper-closure", format_version: 1, cloudpickle, python: pythonVersion,
      function: "predict", module: "closure_model", by_value: ["closure_model", "scaling"],
    });
    expect(readPickledFunctionHeader(join(out, "func.pkl"))).toEqual(header);
    expect(pickledPredict({ framework: "python", predictFile: join(out, "func.pkl") })).toEqual({ file: "func.pkl", cloudpickle });
    // A Clipper-era pickle has no header: nothing to pin.
    expect(readPickledFunctionHeader(join(out, "plain.pkl"))).toBeUndefined();
    expect(pickledPredict({ framework: "python", predictFile: join(out, "plain.pkl") })).toEqual({ file: "plain.pkl" });
    expect(JSON.parse(python(["-m", "clipper_runtime.save", "--inspect", join(out, "plain.pkl")]).stdout)).toEqual({ format: null });
  });

  it("serves the closure over a numpy array from the .pkl alone (no predict.py or helper beside it)", async () => {
    const { runtime, predict } = await serve(join(out, "func.pkl"), out);
    expect(await predict(1, BATCH)).toEqual(EXPECTED);
    expect(await predict(2, [[2, 1, 0]])).toEqual(["0.0"]);
    expect(readableLog(runtime.stderr())).toMatch(/^INFO loaded predict from .*func\.pkl;/m);
    expect(readableLog(runtime.stderr())).not.toMatch(/^WARN/m);
  });

  it("ignores a :function part after the .pkl, and serves a lambda saved with the importable save()", async () => {
    const { predict } = await serve(`${join(out, "lambda.pkl")}:predict`, out);
    expect(await predict(1, [[1, 2], [0, 0]])).toEqual(["303.0", "300.0"]);
  });

  it("warns naming both versions when the pickle was saved with another cloudpickle and Python, and still serves it", async () => {
    const { runtime, predict } = await serve(join(out, "mismatch.pkl"), out);
    expect(await predict(1, BATCH)).toEqual(EXPECTED);
    const warnings = readableLog(runtime.stderr()).split("\n").filter((l) => l.startsWith("WARN "));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/mismatch\.pkl was saved with cloudpickle 3\.0\.0 on Python 3\.12\.1, but this runtime has cloudpickle [\d.]+ on Python 3\.\d+\.\d+: it may fail to load or misbehave; re-save it with cloudpickle [\d.]+ .*or pin cloudpickle==3\.0\.0 and Python 3\.12 where it runs/);
  });

  it("fails to start, naming both versions and what to do, when a mismatched pickle cannot load", async () => {
    const { code, stderr } = await failsToLoad(join(out, "mismatch-broken.pkl"), out);
    expect(code).toBe(1);
    const error = readableLog(stderr).split("\n").find((l) => l.startsWith("ERROR "));
    expect(error).toMatch(/ERROR cannot load the predict function: cannot unpickle the function in .*mismatch-broken\.pkl: (AttributeError|TypeError): .*; it was saved with cloudpickle 3\.0\.0 on Python 3\.12\.1 and this runtime has cloudpickle [\d.]+ on Python 3\.\d+\.\d+: re-save it with cloudpickle [\d.]+ on Python 3\.\d+ \(python3 -m clipper_runtime\.save .*\), or pin cloudpickle==3\.0\.0 and Python 3\.12 where it runs$/);
    expect(stderr).toMatch(/Traceback \(most recent call last\):/);
  });

  it("loads a plain cloudpickle.dumps(fn), as Clipper's deployers wrote it", async () => {
    const { runtime, predict } = await serve(join(out, "plain.pkl"), out);
    expect(await predict(1, [[1, 1], [0, 0]])).toEqual(["5.0", "3.0"]);
    expect(readableLog(runtime.stderr())).not.toMatch(/^WARN/m);
  });

  it("refuses non-callables: in save, and a pickled dict in the runtime", async () => {
    const again = join(work, "again");
    cpSync(FIXTURES, again, { recursive: true });
    const cli = python(["-m", "clipper_runtime.save", "closure_model.py:not_a_function", join(out, "nope.pkl")], { cwd: again });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/^error: '?not_a_function'? in .*closure_model\.py is an? int, not a (function|callable)/);
    const api = python(["-c", "from clipper_runtime.save import save\ntry:\n    save(42, 'x.pkl')\nexcept TypeError as e:\n    print(e)"], { cwd: work });
    expect(api.stdout.trim()).toBe("save() needs the predict function (a callable), got an int");
    const { code, stderr } = await failsToLoad(join(out, "dict.pkl"), out);
    expect(code).toBe(1);
    expect(readableLog(stderr)).toMatch(/^ERROR cannot load the predict function: the object pickled in .*dict\.pkl is a dict, not a callable/m);
    const usage = python(["-m", "clipper_runtime.save", "only-one-argument.py"]);
    expect(usage.code).toBe(2);
  });
});

describe.skipIf(skipReason !== undefined)(title("test_predict: one batch, locally, exactly as the runtime answers"), () => {
  const work = mkdtempSync(join(tmpdir(), "clipper-test-predict-"));
  const src = join(work, "src");
  const model = join(src, "closure_model.py");

  beforeAll(() => {
    assertPythonHas(MODULES);
    cpSync(FIXTURES, src, { recursive: true });
    writeFileSync(join(src, "more.py"), [
      "def shout(xs):",
      "    return [s.upper() + '!' for s in xs]",
      "",
      "def sizes(xs):",
      "    return [{'len': len(x), 'first': int(x[0]) if len(x) else None} for x in xs]",
      "",
      "def noisy(xs):",
      "    print('this goes to stderr, not into the JSON line')",
      "    return [1.5 for _ in xs]",
      "",
      "def short(xs):",
      "    return ['one']",
      "",
    ].join("\n"));
    const r = python(["-m", "clipper_runtime.save", `${model}:predict`, join(work, "func.pkl")]);
    expect(r.code, r.stderr).toBe(0);
    const f = python(["-m", "clipper_runtime.save", `${model}:failing`, join(work, "failing.pkl")]);
    expect(f.code, f.stderr).toBe(0);
  });

  afterEach(() => {
    for (const f of frontends.splice(0)) f.close();
    for (const p of runtimes.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  });

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const cases: Array<{ what: string; predict: () => string; inputType: InputType; inputs: unknown[]; expected?: string[] }> = [
    { what: "a pickled closure (doubles)", predict: () => join(work, "func.pkl"), inputType: "doubles", inputs: BATCH, expected: EXPECTED },
    { what: "JSON outputs for inputs of unequal length", predict: () => `${model}:describe`, inputType: "doubles", inputs: [[1, 2], [3], []] },
    { what: "strings", predict: () => `${join(src, "more.py")}:shout`, inputType: "strings", inputs: ["héllo ✓", "", "cat"] },
    { what: "bytes from base64", predict: () => `${join(src, "more.py")}:sizes`, inputType: "bytes", inputs: ["AQID", "", "/w=="] },
    { what: "integers", predict: () => `${model}:describe`, inputType: "integers", inputs: [[1, 2, 2147483647], [-5, 0, 3]] },
    { what: "floats", predict: () => `${model}:describe`, inputType: "floats", inputs: [[0.1, 0.2]] },
  ];
  for (const c of cases) {
    it(`outputs equal the runtime's over RPC: ${c.what}`, async () => {
      const local = testPredict(c.predict(), c.inputType, c.inputs);
      expect(local.code, local.stderr).toBe(0);
      expect(local.answer.ok).toBe(true);
      const { predict } = await serve(c.predict(), src, c.inputType);
      const remote = await predict(7, c.inputs);
      expect(local.answer.outputs).toEqual(remote);
      if (c.expected) expect(remote).toEqual(c.expected);
    });
  }

  it("keeps the function's prints off stdout", () => {
    const r = testPredict(`${join(src, "more.py")}:noisy`, "doubles", [[1], [2]]);
    expect(r.answer).toEqual({ ok: true, outputs: ["1.5", "1.5"] });
    expect(r.stderr).toContain("this goes to stderr, not into the JSON line");
  });

  it("an exception in predict: ok false, exit 1, the traceback naming the user's line (pickled by value too)", async () => {
    for (const predict of [`${model}:failing`, join(work, "failing.pkl")]) {
      const r = testPredict(predict, "doubles", [[1, 2], [3]]);
      expect(r.code).toBe(1);
      expect(r.answer.ok).toBe(false);
      expect(r.answer.error).toBe("predict raised ValueError: closure_model refuses a batch of 3 values");
      expect(r.answer.traceback).toMatch(/^Traceback \(most recent call last\):\n/);
      expect(r.answer.traceback).toContain(`closure_model.py", line ${FAILING_LINE}, in failing`);
    }
    // The runtime fails the same batch with the same reason.
    const { predict } = await serve(join(work, "failing.pkl"), work);
    expect(await predict(1, [[1, 2], [3]])).toEqual(Array(2).fill(`${BATCH_ERROR_PREFIX}predict raised ValueError: closure_model refuses a batch of 3 values`));
  });

  it("the runtime's batch checks: a wrong number of outputs fails as it would in the runtime", () => {
    const r = testPredict(`${join(src, "more.py")}:short`, "doubles", [[1], [2]]);
    expect(r.code).toBe(1);
    expect(r.answer).toEqual({ ok: false, error: "predict returned 1 outputs for a batch of 2 inputs", traceback: "" });
  });

  it("an empty batch answers no outputs without calling predict", () => {
    expect(testPredict(`${model}:failing`, "doubles", []).answer).toEqual({ ok: true, outputs: [] });
  });

  it("a predict file that cannot load: ok false, exit 1, with the loader's message", () => {
    const r = testPredict(join(work, "missing.pkl"), "doubles", [[1]]);
    expect(r.code).toBe(1);
    expect(r.answer.error).toMatch(/^cannot load the predict function: predict file .*missing\.pkl does not exist/);
  });

  it("usage errors exit 2: inputs the query API refuses, stdin not an array, a bad input type", () => {
    const refused: Array<[string, unknown, string]> = [
      ["doubles", [[1, "x"]], "input 0: element 1 of the input is not a finite number (input type doubles)"],
      ["doubles", ["abc"], "input 0: input of type doubles must be a JSON array of numbers"],
      ["integers", [[1], [1.5]], "input 1: element 0 of the input is not a 32-bit integer (input type integers)"],
      ["integers", [[2147483648]], "input 0: element 0 of the input is not a 32-bit integer (input type integers)"],
      ["strings", [1], "input 0: input of type strings must be a JSON string"],
      ["bytes", ["not base64!"], "input 0: input of type bytes must be a base64-encoded JSON string"],
      ["doubles", [[true]], "input 0: element 0 of the input is not a finite number (input type doubles)"],
    ];
    for (const [type, inputs, error] of refused) {
      const r = testPredict(`${model}:describe`, type, inputs);
      expect(r.code, error).toBe(2);
      expect(r.answer).toEqual({ ok: false, error, traceback: "" });
    }
    const notArray = testPredict(`${model}:describe`, "doubles", "{\"input\": [1]}");
    expect(notArray.code).toBe(2);
    expect(notArray.answer.error).toBe("stdin must be a JSON array of inputs (one batch), got a JSON dict");
    const badType = testPredict(`${model}:describe`, "tensors", [[1]]);
    expect(badType.code).toBe(2);
    expect(badType.answer.error).toMatch(/^--input-type 'tensors' is not one of bytes, integers, floats, doubles, strings/);
    const noArgs = python(["-m", "clipper_runtime.test_predict"], { input: "[]" });
    expect(noArgs.code).toBe(2);
    expect(JSON.parse(noArgs.stdout).error).toMatch(/required: --predict, --input-type/);
  });
});

describe.skipIf(skipReason !== undefined)(title("a pickled closure deployed through the CLI on the embedded default"), () => {
  const home = mkdtempSync(join(tmpdir(), "clipper-closures-e2e-"));
  const work = mkdtempSync(join(tmpdir(), "clipper-closures-model-"));
  const env = { CLIPPER_HOME: home, FORCE_COLOR: "0" };
  const { cli, ok } = cliFor(env);

  beforeAll(async () => {
    assertPythonHas(MODULES);
    const src = join(work, "src");
    cpSync(FIXTURES, src, { recursive: true });
    mkdirSync(join(work, "model"));
    // `clipper save-function` runs the same helper with the runtime on PYTHONPATH; --json shows the header.
    const saved = await ok("save-function", `${join(src, "closure_model.py")}:predict`, join(work, "model", "func.pkl"), "--python", PYTHON);
    expect(saved).toMatchObject({ file: join(work, "model", "func.pkl"), format: "clipper-closure", function: "predict", by_value: ["closure_model", "scaling"],
      interpreter: { path: PYTHON, source: "--python" } });
    expect(saved.interpreter.version.startsWith(`${saved.python.split(".").slice(0, 2).join(".")}.`)).toBe(true);
    rmSync(src, { recursive: true });
    const [q, m, r] = [await freePort(), await freePort(), await freePort()];
    await ok("start", "--query-port", String(q), "--management-port", String(m), "--rpc-port", String(r));
  }, 120_000);

  afterAll(async () => {
    await cli("stop");
    rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }, 60_000);

  it("save-function refuses, in one line with exit 9, a function the file does not define", async () => {
    const r = await cli("save-function", `${join(FIXTURES, "closure_model.py")}:nope`, join(work, "nope.pkl"), "--python", PYTHON);
    expect(r.code).toBe(9);
    expect(r.stderr.split("\n")[0]).toMatch(/^error: saving .*closure_model\.py:nope failed: .*defines no 'nope'/);
  });

  it("a replica that cannot load its predict file fails the deploy quoting what the runtime said (its msg, not its JSON)", async () => {
    const broken = join(work, "broken.py");
    writeFileSync(broken, "raise ImportError('the weights are gone')\n\ndef predict(inputs):\n    return inputs\n");
    const r = await cli("deploy-model", "broken", "--version", "1", "--input-type", "doubles", "--framework", "python",
      "--predict", broken, "--python", PYTHON, "--ready-timeout-ms", "60000");
    expect(r.code, r.stderr).toBe(6);
    const line = r.stderr.split("\n").find((l) => l.startsWith("error:"));
    expect(line).toMatch(/^error: replicas of broken:1 keep exiting before they connect \(last log line: cannot load the predict function: .*the weights are gone/);
    expect(line).not.toMatch(/"level"|supervisor/);
  }, 120_000);

  it("deploys func.pkl with --framework python and answers clipper predict, as test-predict does", async () => {
    const pkl = join(work, "model", "func.pkl");
    await ok("register-app", "closure", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "5000");
    const deployed = await ok("deploy-model", "closure-model", "--version", "1", "--input-type", "doubles", "--framework", "python",
      "--predict", pkl, "--python", PYTHON, "--link", "closure");
    // The interpreter the replicas run, and that the .pkl's header agrees with (save-function used it too).
    expect(deployed.interpreter).toMatchObject({ path: PYTHON, source: "--python" });
    const answers: unknown[] = [];
    for (const input of BATCH) {
      const reply = await ok("predict", "closure", JSON.stringify(input));
      expect(reply).toMatchObject({ default: false });
      answers.push(reply.output);
    }
    expect(answers).toEqual(EXPECTED.map(Number));
    // The frontend parses a JSON-looking output string; test-predict shows that string.
    const local = testPredict(pkl, "doubles", BATCH);
    expect(local.answer).toEqual({ ok: true, outputs: EXPECTED });
    expect(local.answer.outputs!.map((o) => JSON.parse(o))).toEqual(answers);
    // ... and so does `clipper test-predict`, which answers as the query API would.
    const tried = await ok("test-predict", "--framework", "python", "--predict", pkl, "--input-type", "doubles",
      "--input", JSON.stringify(BATCH), "--batch", "--python", PYTHON);
    expect(tried).toEqual({ outputs: EXPECTED, answers, interpreter: deployed.interpreter });
    // Without --json, the runtime's log lines (JSON on the child's stderr) are shown as a person reads them.
    const shown = await cli("test-predict", "--framework", "python", "--predict", pkl, "--input-type", "doubles",
      "--input", JSON.stringify(BATCH[0]), "--python", PYTHON);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stderr).toMatch(/^INFO loaded predict from .*func\.pkl/m);
    expect(shown.stderr).not.toContain('"level"');

    // `clipper logs` of the Python replica: JSON lines in the shape every process writes (the
    // supervisor's lines in it included), so they filter alike.
    const [log] = await ok("logs", "closure-model-1-0") as { component: string; lines: string[] }[];
    const records = log!.lines.map((line) => {
      expect(parseLogLine(line), line).toBeDefined();
      expect(duplicateKeys(line), line).toEqual([]);
      return JSON.parse(line) as Record<string, unknown>;
    });
    expect(new Set(records.map((r) => r.component))).toEqual(new Set(["supervisor", "container-python"]));
    expect(records).toContainEqual({ level: 30, time: expect.any(Number), component: "container-python", model: "closure-model:1",
      msg: expect.stringMatching(/^loaded predict from .*func\.pkl/) });
  }, 120_000);

  it("refuses, before any replica starts, a .pkl saved by another Python than the interpreter chosen to load it", async () => {
    // The header clipper_runtime.save writes (closure.py), recording a Python no interpreter here has.
    const json = Buffer.from(JSON.stringify({ format: "clipper-closure", format_version: 1, cloudpickle: "2.2.0", python: "2.7.18", function: "predict" }));
    const length = Buffer.alloc(4);
    length.writeUInt32LE(json.length);
    const file = join(work, "model", "old-python.pkl");
    writeFileSync(file, Buffer.concat([Buffer.from([0x80, 0x02, 0x58]), length, json, Buffer.from(".")]));
    const r = await cli("deploy-model", "old-python", "--version", "1", "--input-type", "doubles", "--framework", "python",
      "--predict", file, "--python", PYTHON);
    expect(r.code, r.stderr).toBe(2);
    const line = r.stderr.split("\n").find((l) => l.startsWith("error: ")) ?? r.stderr;
    expect(line.startsWith(`error: ${file} was saved by Python 2.7.18, but the interpreter chosen to load it, ${PYTHON}, is Python `), line).toBe(true);
    expect(line).toMatch(/is Python 3\.\d+\.\d+$/);
    expect((await ok("status")).replicas.filter((x: { name: string }) => x.name === "old-python")).toEqual([]);
  });
});
