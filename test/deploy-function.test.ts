/**
 * Deploying from code (docs/deploy-from-code.md): the closure check, the context and dependency
 * rules, test-predict (Node and Python, library and CLI), and on a real embedded-default cluster
 * started with the CLI: a function with context and a contextFile, an async function importing an
 * npm package, a TypeScript module with an npm package and a sibling file, createEndpoint, a
 * refused function that leaves nothing behind, and a user's script importing the package by name.
 * The parts that start nothing are in test/unit/deploy-function.test.ts.
 */
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClipperConnection } from "../src/connection.js";
import { ClipperError } from "../src/errors.js";
import { contextFile } from "../src/functions/context-value.js";
import { PredictFailedError } from "../src/errors.js";
import { testPredictFunction } from "../src/functions/test-predict.js";
import { createEndpoint } from "../src/index.js";
import { runCli, type CliResult } from "./support/cli.js";
import { PYTHON, pythonSkipReason } from "./support/python.js";
import { batchAnswers } from "./support/answers.js";

const fixtures = fileURLToPath(new URL("./fixtures/deploy-from-code/", import.meta.url));
const e2eFixtures = fileURLToPath(new URL("./fixtures/e2e/", import.meta.url));

describe("test-predict without a cluster", () => {
  it("runs a function value with its context and files through the runtime's encoding", async () => {
    const result = await testPredictFunction({
      inputType: "doubles",
      predict: (xs: number[][], ctx: { bias: number; w: Float64Array; scale: string }) => {
        const { factor } = JSON.parse(process.getBuiltinModule("node:fs").readFileSync(ctx.scale, "utf8")) as { factor: number };
        return xs.map((x) => ({ y: x.reduce((s, v, i) => s + v * (ctx.w[i] ?? 0), ctx.bias) * factor }));
      },
      context: { bias: 0.5, w: new Float64Array([1, 2]), scale: contextFile(join(fixtures, "scale.json")) },
      inputs: [[1, 1], [0.25, 0]],
    });
    expect(result.outputs).toEqual(['{"y":35}', '{"y":7.5}']);
    expect(result.answers).toEqual([{ y: 35 }, { y: 7.5 }]);
  });

  it("runs a TypeScript module with its npm package, sibling source and asset", async () => {
    const result = await testPredictFunction({ inputType: "strings", predict: join(fixtures, "model.ts"), inputs: ["Good, great!", "bad", "nothing"] });
    expect(result.outputs).toEqual(["5", "-2", "0"]);
  });

  it("raises PredictFailedError with the function's traceback, and what it printed", async () => {
    const err = await testPredictFunction({
      inputType: "integers",
      predict: (xs: number[][]) => {
        console.log("about to fail");
        if (xs.length > 0) throw new RangeError(`too many: ${xs.length}`);
        return [];
      },
      input: [1, 2],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PredictFailedError);
    const failed = err as PredictFailedError;
    expect(failed.code).toBe("PREDICT_FAILED");
    expect(failed.exitCode).toBe(9);
    expect(failed.message).toBe("predict threw RangeError: too many: 1");
    expect(failed.traceback).toMatch(/^RangeError: too many: 1\n\s+at __fn \(file:\/\/.*predict\.mjs:\d+:\d+\)/);
    expect(failed.log).toContain("about to fail");
    const count = await testPredictFunction({ inputType: "strings", predict: (xs: string[]) => xs.slice(1), inputs: ["a", "b"] }).catch((e: unknown) => e);
    expect((count as Error).message).toBe("predict returned 1 outputs for 2 inputs");
  });

  it("checks inputs as the query API does, before running anything", async () => {
    await expect(testPredictFunction({ inputType: "doubles", predict: (xs: unknown[]) => xs, input: "text" }))
      .rejects.toThrow("input of type doubles must be a JSON array of numbers");
    await expect(testPredictFunction({ inputType: "integers", predict: (xs: unknown[]) => xs, inputs: [[1], [1.5]] }))
      .rejects.toThrow("input 1: element 0 of the input is not a 32-bit integer (input type integers)");
    await expect(testPredictFunction({ inputType: "doubles", predict: (xs: unknown[]) => xs })).rejects.toThrow("give exactly one of input");
  });

  it("speaks the Python runner's protocol (a stand-in interpreter)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clipper-fake-python-"));
    try {
      const fake = join(dir, "python");
      writeFileSync(fake, `#!${process.execPath}
const args = process.argv.slice(2);
// The interpreter probe (src/python/interpreter.ts): a Python with numpy.
if (args[0] === "-c") { console.log("3.11.4 1.26.0"); process.exit(0); }
const input = require("node:fs").readFileSync(0, "utf8");
const mode = process.env.FAKE_MODE;
process.stderr.write("runtime log line\\n");
if (mode === "ok") { console.log("printed by predict"); console.log(JSON.stringify({ ok: true, outputs: JSON.parse(input).map((x) => JSON.stringify({ args, x })) })); }
else if (mode === "fail") { console.log(JSON.stringify({ ok: false, error: "predict raised ValueError: bad", traceback: "Traceback (most recent call last):\\n  File \\"p.py\\", line 2\\nValueError: bad\\n" })); process.exit(1); }
else if (mode === "usage") { console.log(JSON.stringify({ ok: false, error: "--input-type 'x' is not one of ...", traceback: "" })); process.exit(2); }
else { process.exit(3); }
`);
      chmodSync(fake, 0o755);
      const run = (mode: string) => {
        process.env.FAKE_MODE = mode;
        return testPredictFunction({ inputType: "doubles", predict: join(e2eFixtures, "sum_v1.py:predict"), python: fake, inputs: [[1], [2]] });
      };
      try {
        const ok = await run("ok");
        expect(ok.answers[0]).toEqual({
          args: ["-m", "clipper_runtime.test_predict", "--predict", join(e2eFixtures, "sum_v1.py:predict"), "--input-type", "doubles",
            "--model-path", e2eFixtures.replace(/\/$/, ""), "--framework", "python"],
          x: [1],
        });
        expect(ok.log).toBe("printed by predict\nruntime log line");
        const failed = await run("fail").catch((e: unknown) => e);
        expect(failed).toBeInstanceOf(PredictFailedError);
        expect((failed as PredictFailedError).traceback).toContain("ValueError: bad");
        await expect(run("usage")).rejects.toMatchObject({ code: "USAGE" });
        await expect(run("crash")).rejects.toThrow("the Python test runner exited with code 3 without an answer");
      } finally {
        delete process.env.FAKE_MODE;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const noNumpy = pythonSkipReason(["numpy"]);
  it.skipIf(noNumpy !== undefined)(`runs a Python file with the Python runtime${noNumpy ? ` (skipped: ${noNumpy})` : ""}`, async () => {
    const result = await testPredictFunction({ inputType: "doubles", predict: join(e2eFixtures, "sum_v1.py:predict"), python: PYTHON, inputs: [[1, 2, 3], [0.5]] });
    expect(result.answers).toEqual([6, 0.5]);
  });

  it("clipper test-predict prints outputs, --json, and a failure with its traceback (exit 9)", async () => {
    const env = { CLIPPER_HOME: mkdtempSync(join(tmpdir(), "clipper-tp-cli-")), FORCE_COLOR: "0" };
    try {
      const one = await runCli(["test-predict", "--predict", join(fixtures, "model.ts"), "--input-type", "strings", "--input", '"great great"'], env);
      expect(one.code, one.stderr).toBe(0);
      expect(one.stdout).toBe("6\n");
      const batch = await runCli(["test-predict", "--predict", `${join(fixtures, "model.ts")}:default`, "--input-type", "strings",
        "--input", '["good", "bad"]', "--batch", "--json"], env);
      expect(batch.json).toEqual({ outputs: ["2", "-2"], answers: [2, -2] });
      const failing = join(env.CLIPPER_HOME, "failing.mjs");
      writeFileSync(failing, "export function predict(xs) {\n  return xs.map((x) => x.missing.field);\n}\n");
      const failed = await runCli(["test-predict", "--predict", failing, "--input-type", "doubles", "--input", "[1]"], env);
      expect(failed.code).toBe(9);
      expect(failed.stderr).toMatch(/^error: predict threw TypeError: Cannot read properties of undefined \(reading 'field'\)\n {2}\| TypeError: .*\n {2}\| {5}at .*failing\.mjs:2:/);
      const json = await runCli(["test-predict", "--predict", failing, "--input-type", "doubles", "--input", "[1]", "--json"], env);
      expect(json.json).toMatchObject({ code: "PREDICT_FAILED", error: expect.stringContaining("TypeError"), details: expect.stringContaining("failing.mjs:2") });
      const bad = await runCli(["test-predict", "--predict", failing, "--input-type", "doubles", "--input", '"x"'], env);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toBe("error: input of type doubles must be a JSON array of numbers\n");
      const missing = await runCli(["test-predict", "--predict", "/no/such.ts", "--input-type", "doubles", "--input", "[1]"], env);
      expect(missing.code).toBe(2);
    } finally {
      rmSync(env.CLIPPER_HOME, { recursive: true, force: true });
    }
  });
});

describe("deploying from code on the embedded default", () => {
  const home = mkdtempSync(join(tmpdir(), "clipper-deploy-fn-"));
  const env = { CLIPPER_HOME: home, FORCE_COLOR: "0" };
  let conn: ClipperConnection;

  const cli = (...args: string[]): Promise<CliResult> => runCli(args, env);
  const answers = (app: string, inputs: unknown[]): Promise<unknown[]> => batchAnswers(conn, app, inputs);

  beforeAll(async () => {
    const started = await cli("start", "--query-port", "0", "--management-port", "0", "--rpc-port", "0", "--json");
    expect(started.code, started.stderr).toBe(0);
    conn = await ClipperConnection.connect({ home });
  }, 120_000);

  afterAll(async () => {
    await conn?.close();
    await cli("stop");
    rmSync(home, { recursive: true, force: true });
  }, 60_000);

  const linear = (xs: number[][], ctx: { bias: number; w: Float64Array; scale: string }) => {
    const { factor } = JSON.parse(process.getBuiltinModule("node:fs").readFileSync(ctx.scale, "utf8")) as { factor: number };
    return xs.map((x) => x.reduce((s, v, i) => s + v * (ctx.w[i] ?? 0), ctx.bias) * factor);
  };
  const linearContext = { bias: 0.5, w: new Float64Array([1, 2]), scale: contextFile(join(fixtures, "scale.json")) };

  it("serves an arrow function with context and a contextFile, as test-predict runs it", async () => {
    await conn.registerApplication({ name: "linear", inputType: "doubles", defaultOutput: "-1", sloMicros: 5_000_000 });
    await conn.deployFunction({ name: "linear-fn", version: "1", inputType: "doubles", predict: linear, context: linearContext, link: "linear" });
    const inputs = [[1, 1], [0.25, 0], [2, -1]];
    const served = await answers("linear", inputs);
    expect(served).toEqual([35, 7.5, 5]);
    const tested = await conn.testPredictFunction({ inputType: "doubles", predict: linear, context: linearContext, inputs });
    expect(tested.answers).toEqual(served);
    // The module and its file live in the cluster's directory, where the replica runs them from.
    const dir = join(home, "clusters", "default", "functions", "linear-fn", "1");
    expect(readdirSync(dir).sort()).toEqual(["files", "predict.mjs"]);
  });

  it("warms a function's replica up with warmupInput before it connects", async () => {
    const counting = (xs: number[][]) => {
      const g = globalThis as { calls?: number };
      g.calls = (g.calls ?? 0) + 1;
      return xs.map(() => g.calls);
    };
    await conn.registerApplication({ name: "counting", inputType: "doubles", defaultOutput: "-1", sloMicros: 5_000_000 });
    await conn.deployFunction({
      name: "counting-fn", version: "1", inputType: "doubles", predict: counting, link: "counting", warmupInput: [0], warmupBatches: 2,
    });
    // Two warm-up calls came before the first query's.
    expect(await answers("counting", [[1]])).toEqual([3]);
  });

  it("serves an async function that imports an npm package found in node_modules", async () => {
    const describeAll = async function describeAll(texts: string[], ctx: { prefix: string }): Promise<string[]> {
      const { stringify } = await import("yaml");
      return texts.map((text) => stringify({ [ctx.prefix]: text.split(" ").length }).trim());
    };
    await conn.registerApplication({ name: "describe", inputType: "strings", defaultOutput: "none", sloMicros: 5_000_000 });
    await conn.deployFunction({
      name: "describe-fn", version: "1", inputType: "strings", predict: describeAll, context: { prefix: "words" },
      dependencies: ["yaml"], projectDir: fixtures, link: "describe",
    });
    const inputs = ["a b c", "hello"];
    const served = await answers("describe", inputs);
    expect(served).toEqual(["words: 3", "words: 1"]);
    const tested = await conn.testPredictFunction({ inputType: "strings", predict: describeAll, context: { prefix: "words" }, projectDir: fixtures, inputs });
    expect(tested.answers).toEqual(served);
  });

  it("serves a TypeScript module with an npm package and a sibling file (deployModule), matching clipper test-predict", async () => {
    await conn.registerApplication({ name: "sentiment", inputType: "strings", defaultOutput: "0", sloMicros: 5_000_000 });
    await conn.deployModule({ name: "sentiment-ts", version: "1", inputType: "strings", entry: join(fixtures, "model.ts"), exportName: "predict", link: "sentiment" });
    const inputs = ["Good, great!", "bad", "nothing at all"];
    const served = await answers("sentiment", inputs);
    expect(served).toEqual([5, -2, 0]);
    const viaCli = await cli("test-predict", "--predict", `${join(fixtures, "model.ts")}:predict`, "--input-type", "strings",
      "--input", JSON.stringify(inputs), "--batch", "--json");
    expect(viaCli.code, viaCli.stderr).toBe(0);
    expect(viaCli.json.answers).toEqual(served);
  });

  it("createEndpoint registers, deploys and links in one call", async () => {
    await createEndpoint(conn, {
      name: "lengths", inputType: "strings", defaultOutput: "-1", sloMicros: 5_000_000,
      predict: (texts: string[], ctx: { unit: string }) => texts.map((t) => `${t.length} ${ctx.unit}`),
      context: { unit: "chars" },
    });
    expect(await conn.getLinkedModels("lengths")).toEqual(["lengths"]);
    expect(await conn.getCurrentModelVersion("lengths")).toBe("1");
    expect(await answers("lengths", ["abc", ""])).toEqual(["3 chars", "0 chars"]);
    // A refused function leaves no application behind either.
    const weights = [1];
    await expect(createEndpoint(conn, { name: "never", inputType: "doubles", predict: (xs: number[][]) => xs.map(() => weights[0]) }))
      .rejects.toThrow("predict uses `weights`");
    expect(await conn.getAppInfo("never")).toBeUndefined();
  });

  it("refuses a function that closes over a variable before anything is built or started", async () => {
    const before = { models: await conn.getAllModels(true), status: await conn.inspectInstance() };
    const threshold = 0.5;
    const err = await conn.deployFunction({
      name: "closure-fn", version: "1", inputType: "doubles", predict: (xs: number[][]) => xs.map((x) => (x[0]! > threshold ? 1 : 0)),
    }).catch((e: unknown) => e);
    expect((err as ClipperError).message).toBe("predict uses `threshold`, defined outside the function: pass it in `context` or deploy a module (deployModule)");
    expect(await conn.getAllModels(true)).toEqual(before.models);
    expect((await conn.inspectInstance()).replicas.map((r) => r.name)).toEqual(before.status.replicas.map((r) => r.name));
    expect(existsSync(join(home, "clusters", "default", "functions", "closure-fn"))).toBe(false);
  });

  it("runs a user's script that imports the package by name and attaches with connect()", async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [join(fixtures, "deploy-script.mjs")], { cwd: fixtures, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (err += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
      child.on("error", reject);
      child.on("close", (c) => {
        clearTimeout(timer);
        resolve({ code: c, stdout: out, stderr: err });
      });
    });
    expect(code, stderr).toBe(0);
    const result = JSON.parse(stdout.trim().split("\n").at(-1)!) as { reply: { status: number; body: { output: unknown; default: boolean } }; tested: unknown[] };
    expect(result.reply).toMatchObject({ status: 200, body: { output: 31, default: false } });
    expect(result.tested).toEqual([2]);
  }, 120_000);
});
