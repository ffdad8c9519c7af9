/**
 * testPredictFunction / `clipper test-predict`: run a predict function (a JS function value, a
 * Node module, a Python file) on one input or a batch, here, before deploying it, through the same
 * input encoding, decoding and output serialization as the runtime. Each run is a child process
 * speaking one protocol (see test-predict-child.ts): the Node runtime's code for Node, the Python
 * runtime's `clipper_runtime.test_predict` for Python, so a module is loaded fresh every time and a
 * hung or crashing function cannot take the caller with it.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { packageRoot, pythonRuntimeDir, withPythonRuntimePath } from "../../runtime/shared/package-root.js";
import { canonicalInputType, encodeInput, type InputType } from "../../runtime/shared/input-types.js";
import { ClipperError, PredictFailedError } from "../errors.js";
import { parsePredictSpec } from "../predict-spec.js";
import { findPython, type PythonInterpreter } from "../python/interpreter.js";
import { readableLog } from "../log-lines.js";
import type { ModelFramework } from "../managers/container-manager.js";
import { checkFunction } from "./closure-check.js";
import { serializeContext } from "./context-value.js";
import { resolveDependencies } from "./dependencies.js";
import { writeFunctionModule } from "./function-module.js";

/** A predict function value: a batch in, an array of outputs (or a promise of one) out. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type PredictFunctionValue = (inputs: any[], context?: any) => unknown;

export interface TestPredictOptions {
  inputType: string;
  /** A function value (Node), or `path/to/file[:function]` (Node module or Python file). */
  predict: PredictFunctionValue | string;
  /** Default: node for a function or a .js/.ts file, python for a .py file. */
  framework?: ModelFramework;
  /** One input ... */
  input?: unknown;
  /** ... or a batch (exactly one of the two). */
  inputs?: unknown[];
  /** Function values: its second argument, as deployFunction would ship it. */
  context?: unknown;
  /** Function values: npm packages it uses, found in node_modules from projectDir. */
  dependencies?: string[];
  /** Function values: where its packages are installed (default: the current directory). */
  projectDir?: string;
  /** CLIPPER_MODEL_PATH (default: the predict file's directory). */
  modelPath?: string;
  /** Python interpreter (default: $CLIPPER_PYTHON, else the first of python3 on PATH and /usr/bin/python3 that imports numpy; src/python/interpreter.ts). */
  python?: string;
  /** Default 120000. */
  timeoutMs?: number;
}

export interface TestPredictResult {
  /** Each output exactly as the runtime sends it over RPC (strings; other values as JSON). */
  outputs: string[];
  /** Each output as the query API answers it in `output` (JSON when it parses as JSON, else the string). */
  answers: unknown[];
  /** What the function printed (stdout and stderr). */
  log: string;
  /** Python functions: the interpreter that ran it, the one a local deployment in this environment would run. */
  interpreter?: PythonInterpreter;
}

/** The built child that runs Node modules (dist/src/functions/test-predict-child.js). */
function nodeRunner(): string {
  const sibling = new URL("./test-predict-child.js", import.meta.url);
  if (sibling.protocol === "file:" && existsSync(sibling)) return fileURLToPath(sibling);
  const built = join(packageRoot(), "dist", "src", "functions", "test-predict-child.js");
  if (!existsSync(built)) throw new ClipperError("USAGE", `the Node test runner is not built (missing ${built})`, "run `npm run build`");
  return built;
}

export async function testPredictFunction(options: TestPredictOptions): Promise<TestPredictResult> {
  const inputType = canonicalInputType(options.inputType ?? "");
  if (!inputType) throw new ClipperError("USAGE", `unknown input type '${options.inputType}' (use one of bytes, integers, floats, doubles, strings)`);
  const inputs = batchOf(options, inputType);

  let cleanup: string | undefined;
  try {
    let file: string;
    let fn: string;
    let framework: ModelFramework;
    let modelPath: string | undefined = options.modelPath ? resolve(options.modelPath) : undefined;
    if (typeof options.predict === "function") {
      if (options.framework && options.framework !== "node") {
        throw new ClipperError("USAGE", `a function value runs on the Node runtime, not --framework ${options.framework}`, "pass a Python file as `predict` to test Python code");
      }
      const checked = checkFunction(options.predict);
      const context = serializeContext(options.context);
      const projectDir = resolve(options.projectDir ?? process.cwd());
      const dependencies = resolveDependencies(options.dependencies ?? [], checked.imports, projectDir, false);
      cleanup = mkdtempSync(join(tmpdir(), "clipper-test-predict-"));
      const module = writeFunctionModule({ dir: cleanup, checked, context, dependencies, origin: "testPredictFunction" });
      file = module.file;
      fn = module.exportName;
      framework = "node";
      modelPath ??= module.dir;
    } else if (typeof options.predict === "string") {
      if (options.context !== undefined || options.dependencies !== undefined) {
        throw new ClipperError("USAGE", "context and dependencies apply to function values; a module reads its own files and imports");
      }
      ({ file, fn, framework } = parsePredictSpec(options.predict, options.framework));
      modelPath ??= dirname(file);
    } else {
      throw new ClipperError("USAGE", "predict must be a function or `path/to/file[:function]`");
    }
    return await runChild({ framework, file, fn, inputType, inputs, modelPath, python: options.python, timeoutMs: options.timeoutMs ?? 120_000 });
  } finally {
    if (cleanup) rmSync(cleanup, { recursive: true, force: true });
  }
}

/** The inputs as a batch, each checked against the input type as the query frontend checks it. */
function batchOf(options: TestPredictOptions, inputType: InputType): unknown[] {
  const hasOne = "input" in options && options.input !== undefined;
  const hasMany = options.inputs !== undefined;
  if (hasOne === hasMany) throw new ClipperError("USAGE", "give exactly one of input (one input) or inputs (a batch)");
  const inputs = hasOne ? [options.input] : options.inputs!;
  if (!Array.isArray(inputs) || inputs.length === 0) throw new ClipperError("USAGE", "inputs must be a non-empty array of inputs");
  inputs.forEach((input, i) => {
    try {
      encodeInput(inputType, input);
    } catch (err) {
      throw new ClipperError("USAGE", `${inputs.length > 1 ? `input ${i}: ` : ""}${(err as Error).message}`);
    }
  });
  return inputs;
}

interface ChildRun {
  framework: ModelFramework;
  file: string;
  fn: string;
  inputType: InputType;
  inputs: unknown[];
  modelPath: string;
  python?: string;
  timeoutMs: number;
}

interface ChildAnswer {
  ok: boolean;
  outputs?: unknown;
  error?: unknown;
  traceback?: unknown;
}

async function runChild(run: ChildRun): Promise<TestPredictResult> {
  const flags = ["--predict", `${run.file}:${run.fn}`, "--input-type", run.inputType, "--model-path", run.modelPath];
  const env: NodeJS.ProcessEnv = { ...process.env, CLIPPER_MODEL_PATH: run.modelPath };
  let argv: string[];
  let interpreter: PythonInterpreter | undefined;
  if (run.framework === "node") {
    argv = [process.execPath, nodeRunner(), ...flags];
  } else {
    interpreter = await findPython({ python: run.python });
    argv = [interpreter.path, "-m", "clipper_runtime.test_predict", ...flags, "--framework", run.framework];
    Object.assign(env, withPythonRuntimePath(env));
    env.PYTHONUNBUFFERED = "1";
  }
  const { code, stdout, stderr, timedOut, spawnError } = await new Promise<{
    code: number | null; stdout: string; stderr: string; timedOut: boolean; spawnError?: Error;
  }>((done) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: run.modelPath, env, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let timedOut = false;
    let spawnError: Error | undefined;
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.stdin.on("error", () => undefined);
    child.stdin.end(JSON.stringify(run.inputs));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, run.timeoutMs);
    child.on("error", (e) => (spawnError = e));
    child.on("close", (c) => {
      clearTimeout(timer);
      done({ code: c, stdout: out, stderr: err, timedOut, ...(spawnError ? { spawnError } : {}) });
    });
  });
  if (spawnError) {
    const what = run.framework === "node" ? "node" : `the Python interpreter ${argv[0]}`;
    throw new ClipperError("USAGE", `cannot run ${what}: ${spawnError.message}`, run.framework === "node" ? undefined : "pass --python PATH (or set CLIPPER_PYTHON)");
  }
  // The answer is the last JSON line with "ok"; anything else on stdout is the model's.
  const lines = stdout.split("\n");
  let answer: ChildAnswer | undefined;
  let at = -1;
  for (let i = lines.length - 1; i >= 0 && !answer; i--) {
    try {
      const parsed = JSON.parse(lines[i]!) as unknown;
      if (typeof parsed === "object" && parsed !== null && typeof (parsed as ChildAnswer).ok === "boolean") {
        answer = parsed as ChildAnswer;
        at = i;
      }
    } catch {
      // not the answer
    }
  }
  // The runtime's own log lines (JSON, as a replica writes them) shown as a person reads them.
  const log = [...lines.filter((_, i) => i !== at), readableLog(stderr)].join("\n").replace(/\n{2,}/g, "\n").trim();
  if (timedOut) throw new PredictFailedError(`predict did not finish within ${run.timeoutMs} ms`, log || undefined, log);
  if (!answer) {
    const noModule = /No module named '?clipper_runtime.test_predict/.test(stderr);
    throw new PredictFailedError(
      noModule
        ? `the Python runtime at ${pythonRuntimeDir()} has no clipper_runtime.test_predict`
        : `the ${run.framework === "node" ? "Node" : "Python"} test runner exited with code ${code ?? "(signal)"} without an answer`,
      log || undefined, log);
  }
  if (!answer.ok) {
    const message = typeof answer.error === "string" ? answer.error : "predict failed";
    const traceback = typeof answer.traceback === "string" && answer.traceback.trim() ? answer.traceback.trimEnd() : undefined;
    if (code === 2) throw new ClipperError("USAGE", message);
    throw new PredictFailedError(message, traceback, log);
  }
  const outputs = answer.outputs;
  if (!Array.isArray(outputs) || outputs.some((o) => typeof o !== "string") || outputs.length !== run.inputs.length) {
    throw new PredictFailedError(`the test runner answered ${JSON.stringify(outputs)?.slice(0, 200)}, not ${run.inputs.length} output strings`, undefined, log);
  }
  const { embedOutput } = await import("../../runtime/frontend/query-processor.js");
  return { outputs: outputs as string[], answers: (outputs as string[]).map(embedOutput), log, ...(interpreter ? { interpreter } : {}) };
}
