/**
 * Deploying from code (docs/deploy-from-code.md): the closure check, the context and dependency
 * rules, test-predict (Node and Python, library and CLI), and on a real embedded-default cluster
 * started with the CLI: a function with context and a contextFile, an async function importing an
 * npm package, a TypeScript module with an npm package and a sibling file, createEndpoint, a
 * refused function that leaves nothing behind, and a user's script importing the package by name.
 */
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClipperConnection } from "../src/connection.js";
import { ClipperError } from "../src/errors.js";
import { checkFunction } from "../src/functions/closure-check.js";
import { contextFile, serializeContext } from "../src/functions/context-value.js";
import { parseDependency, resolveDependencies } from "../src/functions/dependencies.js";
import { functionModuleSource, writeFunctionModule } from "../src/functions/function-module.js";
import { PredictFailedError } from "../src/errors.js";
import { testPredictFunction } from "../src/functions/test-predict.js";
import { createEndpoint } from "../src/index.js";
import type { ContainerManager } from "../src/managers/container-manager.js";
import { runCli, type CliResult } from "./support/cli.js";
import { PYTHON, pythonSkipReason } from "./support/python.js";
import { batchAnswers } from "./support/answers.js";

const fixtures = fileURLToPath(new URL("./fixtures/deploy-from-code/", import.meta.url));
const e2eFixtures = fileURLToPath(new URL("./fixtures/e2e/", import.meta.url));
const root = fileURLToPath(new URL("..", import.meta.url));

/** A function made from source text, so that its toString() is exactly that text (no test-file transforms). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const fromSource = (source: string): ((...args: any[]) => any) => new Function(`return (${source});`)();

/** The names a refusal lists, or [] when the function is accepted. */
function freeNames(fn: unknown): string[] {
  try {
    checkFunction(fn);
    return [];
  } catch (err) {
    const m = /uses (.*?), defined outside the function/.exec((err as Error).message);
    if (!m) throw err;
    return [...m[1]!.matchAll(/`([^`]+)`/g)].map((x) => x[1]!);
  }
}

function refusal(fn: unknown): ClipperError {
  try {
    checkFunction(fn);
  } catch (err) {
    expect(err).toBeInstanceOf(ClipperError);
    expect((err as ClipperError).code).toBe("USAGE");
    return err as ClipperError;
  }
  throw new Error("the function was accepted");
}

describe("the closure check", () => {
  it("refuses a function that closes over outer variables, naming every one", () => {
    const weights = [0.5, 2];
    const scale = 3;
    const predict = (xs: number[][]) => xs.map((x) => x[0]! * weights[0]! * scale + weights[1]!);
    const err = refusal(predict);
    expect(err.message).toBe("predict uses `weights`, `scale`, defined outside the function: pass them in `context` or deploy a module (deployModule)");
    const one = refusal((xs: number[]) => xs.map(() => scale));
    expect(one.message).toBe("predict uses `scale`, defined outside the function: pass it in `context` or deploy a module (deployModule)");
  });

  it("accepts arrows, async functions, named function expressions and methods, and keeps their source", () => {
    const arrow = checkFunction((xs: number[][], ctx: { k: number }) => xs.map((x) => x.length * ctx.k));
    expect(arrow).toMatchObject({ kind: "arrow", async: false, imports: [], helpers: [] });
    const asyncFn = checkFunction(async function predict(xs: string[]): Promise<number[]> {
      return xs.length > 1 ? [...(await predict(xs.slice(0, 1))), ...(await predict(xs.slice(1)))] : xs.map((s) => s.length);
    });
    expect(asyncFn).toMatchObject({ kind: "function", async: true });
    const holder = { predict(xs: string[]) { return xs.map((s) => s.toUpperCase()); }, async other(xs: string[]) { return xs; } };
    expect(checkFunction(holder.predict)).toMatchObject({ kind: "method", async: false });
    expect(checkFunction(holder.other)).toMatchObject({ kind: "method", async: true });
    // A method's expression yields the function itself.
    expect(fromSource(checkFunction(holder.predict).expression)(["a"])).toEqual(["A"]);
  });

  it.each([
    ["a default parameter cannot see the body's declarations", "(xs) => { const f = (y = z) => { const z = 1; return y; }; return xs.map(f); }", ["z"]],
    ["let in an inner block is not visible after it", "(xs) => { { let q = 1; } return xs.map(() => q); }", ["q"]],
    ["var is hoisted to the function", "(xs) => { if (xs) { var v = 1; } return xs.map(() => v); }", []],
    ["function declarations are hoisted", "(xs) => { return xs.map(() => later()); function later() { return 1; } }", []],
    ["catch parameters are scoped to the catch block", "(xs) => { try { return xs; } catch (err) { return [err]; } finally { leak(err); } }", ["leak", "err"]],
    ["labels are not variables", "(xs) => { outer: for (const x of xs) { for (;;) { continue outer; } } return xs; }", []],
    ["object keys and member names are not references; computed keys are", "(xs) => xs.map((x) => ({ weights: x.weights, [key]: x?.scale }))", ["key"]],
    ["destructured and default parameters bind", "(xs, { a, b: [c, ...d] = [] } = {}, e = a) => xs.map(({ f = c }, i = e) => [a, c, d, e, f, i])", []],
    ["a class's name is visible in its methods; others are not", "(xs) => { class Model { static k = 1; run(x) { return Model.k + x + helper; } } return xs.map((x) => new Model().run(x)); }", ["helper"]],
    ["a named function expression sees its own name", "function self(xs) { return xs.length > 1 ? self(xs.slice(1)) : xs; }", []],
    ["a nested function has its own this and arguments", "(xs) => xs.map(function (x) { return this ? arguments.length : x; })", []],
    ["an arrow's arguments belong to the code around it", "(xs) => xs.map(() => arguments.length)", ["arguments"]],
    ["an assignment to an undeclared name is a free name", "(xs) => { total = xs.length; return xs; }", ["total"]],
    ["typeof does not make a name defined", "(xs) => (typeof maybe === 'undefined' ? xs : maybe)", ["maybe"]],
    ["shadowing a global defines it", "(xs) => { const weights = [1]; return xs.map(() => weights[0]); }", []],
    ["JavaScript and Node globals are allowed", "(xs) => xs.map((x) => [Math.max(...x), Number.EPSILON, process.env.N, Buffer.byteLength('a'), new URL('http://a'), structuredClone(x), globalThis, JSON, new TextEncoder(), setTimeout, performance.now(), crypto.randomUUID()])", []],
    ["a for-of binding is scoped to its loop", "(xs) => { for (const row of xs) { row; } return row; }", ["row"]],
    ["a class expression name is visible only inside it", "(xs) => { const K = class Inner { f() { return Inner; } }; return [K, Inner]; }", ["Inner"]],
  ])("%s", (_what, source, expected) => {
    expect(freeNames(fromSource(source)).sort()).toEqual([...expected].sort());
  });

  it("names what a test file imported when a function uses it", async () => {
    const { join: joinPath } = await import("node:path");
    const usesImport = (xs: string[]) => xs.map((x) => joinPath("a", x));
    // Vitest rewrites the binding; either way the function needs something from outside.
    expect(refusal(usesImport).message).toMatch(/^predict uses `(joinPath|join \(an import\))`, defined outside the function/);
  });

  it("refuses what cannot travel as source, saying why", () => {
    expect(refusal(((xs: number[]) => xs).bind(null)).message).toBe("predict is a bound function (made with .bind()), whose source is not available");
    expect(refusal(Math.max).message).toBe("predict is native code (max), whose source is not available");
    expect(refusal(class Model {}).message).toBe("predict is a class, not a function");
    expect(refusal(fromSource("function* (xs) { yield xs; }")).message).toMatch(/^predict is a generator function/);
    const holder = { k: 2, predict(xs: number[]) { return xs.map((x) => x * this.k); } };
    expect(refusal(holder.predict).message).toBe("predict uses `this` of the code around it, which is not carried with the function");
    expect(refusal(fromSource("({ predict(xs) { return super.toString(); } }).predict")).message).toMatch(/^predict uses `super` of the code around it/);
    expect(refusal(fromSource("(xs) => xs.map(() => require('fs'))")).message)
      .toBe("predict calls `require`, which ES modules do not have: use `await import(\"package\")` and list the package in `dependencies`");
    expect(refusal(fromSource("async (xs) => (await import('./helper.js')).run(xs)")).message).toMatch(/^predict imports `\.\/helper\.js`, a file of yours/);
    expect(refusal(fromSource("(xs) => xs.map(() => weights + require('fs'))")).message)
      .toBe("predict uses `weights`, defined outside the function: pass it in `context` or deploy a module (deployModule); " +
        "it calls `require`, which ES modules do not have: use `await import(\"package\")` and list the package in `dependencies`");
    expect(refusal("not a function").message).toBe("predict must be a function, got string");
  });

  it("finds the packages a function imports, and keeps the module's view of them", async () => {
    const checked = checkFunction(async (xs: string[]) => {
      const { parse } = await import("yaml");
      const { join: j } = await import("node:path");
      return xs.map((x) => parse(`v: ${j("a", x)}`).v);
    });
    expect(checked.imports).toEqual(["yaml"]);
    expect(checked.expression).toContain('import("yaml")');
    expect(checked.expression).not.toContain("__vite_ssr");
    expect(fromSource('async (xs) => [await import("@scope/pkg/sub"), await import(`lodash/fp`), await import("node:fs")]'))
      .toSatisfy((fn: unknown) => JSON.stringify(checkFunction(fn).imports) === '["@scope/pkg","lodash"]');
  });

  it("defines esbuild's __name helper (tsx, keepNames) in the generated module", () => {
    const checked = checkFunction(fromSource('(xs) => { const f = __name((x) => x * 2, "f"); return xs.map(f); }'));
    expect(checked.helpers).toEqual(["__name"]);
    expect(functionModuleSource(checked, "undefined")).toContain("const __name = (target, value) =>");
  });
});

describe("the context", () => {
  it("writes JSON data, typed arrays and files as source", () => {
    const file = join(fixtures, "scale.json");
    const { code, files } = serializeContext({
      a: [1, "two", null, true, { nested: -0 }], w: new Float32Array([0.5, 1.25]), ["__proto__"]: 7, skipped: undefined,
      file: contextFile(file), again: contextFile(file), dir: contextFile(fixtures),
    });
    expect(code).toBe('{["a"]:[1,"two",null,true,{["nested"]:-0}],["w"]:new Float32Array([0.5,1.25]),["__proto__"]:7,' +
      '["file"]:__file("./files/scale.json"),["again"]:__file("./files/scale.json"),["dir"]:__file("./files/deploy-from-code/")}');
    expect(files).toEqual([{ source: file, target: "scale.json" }, { source: fixtures.replace(/\/$/, ""), target: "deploy-from-code" }]);
    const value = new Function("__file", `return (${code});`)((p: string) => p);
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.keys(value)).toContain("__proto__");
    expect(serializeContext(undefined).code).toBe("undefined");
  });

  it.each([
    [{ f: () => 1 }, "context.f is a function"],
    [{ m: new Map() }, "context.m is a Map"],
    [{ when: new Date(0) }, "context.when is a Date"],
    [{ deep: [{ x: NaN }] }, "context.deep[0].x is NaN"],
    [{ big: 1n }, "context.big is a bigint"],
    [{ s: Symbol("s") }, "context.s is a symbol"],
    [{ list: [undefined] }, "context.list[0] is undefined"],
    [{ "odd key": new (class Weights {})() }, 'context["odd key"] is a Weights'],
  ])("refuses %o", (value, message) => {
    expect(() => serializeContext(value)).toThrow(message);
  });

  it("refuses cycles and missing files", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => serializeContext(cyclic)).toThrow("context.self is a reference back to an object that contains it (a cycle)");
    expect(() => serializeContext({ f: contextFile("/no/such/file.bin") })).toThrow("context.f: contextFile /no/such/file.bin does not exist");
  });
});

describe("dependencies", () => {
  it("parses names with scopes and versions, and refuses others", () => {
    expect(parseDependency("yaml")).toEqual({ spec: "yaml", name: "yaml" });
    expect(parseDependency("@scope/pkg@^1.2")).toEqual({ spec: "@scope/pkg@^1.2", name: "@scope/pkg", version: "^1.2" });
    expect(() => parseDependency("Bad Name")).toThrow("'Bad Name' is not an npm package name");
  });

  it("finds installed packages from the project directory, and says which are missing", () => {
    const [yaml] = resolveDependencies(["yaml"], [], fixtures, false);
    expect(yaml).toMatchObject({ name: "yaml", dir: join(root, "node_modules", "yaml") });
    expect(() => resolveDependencies([], ["clipper-no-such-package"], fixtures, false))
      .toThrow(`package \`clipper-no-such-package\` is not installed in ${fixtures}`);
    // An image manager leaves a named package that is not installed to npm in the image.
    expect(resolveDependencies(["clipper-no-such-package@1.0.0"], [], fixtures, true)).toEqual([
      { spec: "clipper-no-such-package@1.0.0", name: "clipper-no-such-package", version: "1.0.0" },
    ]);
    expect(() => resolveDependencies(["yaml@0.0.1"], [], fixtures, false)).toThrow(/dependency yaml@0\.0\.1: yaml \d+\.\d+\.\d+ is installed/);
  });
});

describe("the generated module", () => {
  it("links installed packages, copies files, and leaves the others to npm in the image", () => {
    const dir = mkdtempSync(join(tmpdir(), "clipper-fn-module-"));
    try {
      const checked = checkFunction(fromSource('async (xs, ctx) => { const y = await import("yaml"); return xs.map(() => ctx.n + typeof y.parse); }'));
      const deps = resolveDependencies(["clipper-no-such-package@2.0.0"], checked.imports, fixtures, true);
      const module = writeFunctionModule({ dir, checked, context: serializeContext({ n: 1, f: contextFile(join(fixtures, "scale.json")) }), dependencies: deps });
      expect(module).toEqual({ dir, file: join(dir, "predict.mjs"), exportName: "predict", npmDependencies: ["clipper-no-such-package@2.0.0"] });
      expect(readdirSync(dir).sort()).toEqual(["files", "node_modules", "predict.mjs"]);
      expect(realpathSync(join(dir, "node_modules", "yaml"))).toBe(realpathSync(join(root, "node_modules", "yaml")));
      expect(readFileSync(join(dir, "files", "scale.json"), "utf8")).toContain("factor");
      expect(readFileSync(module.file, "utf8")).toContain('const __context = {["n"]:1,["f"]:__file("./files/scale.json")};');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("deployFunction refuses before anything is built or started", () => {
  it("calls nothing on the manager or the cluster", async () => {
    const calls: string[] = [];
    const manager = new Proxy({} as ContainerManager, {
      get: (_t, prop) => (prop === "kind" ? "local" : prop === "then" ? undefined : (...args: unknown[]) => {
        calls.push(`${String(prop)}(${args.length})`);
        throw new Error(`manager.${String(prop)} called`);
      }),
    });
    const home = mkdtempSync(join(tmpdir(), "clipper-refuse-"));
    try {
      const conn = new ClipperConnection(manager, home);
      const weights = [1, 2];
      const err = await conn.deployFunction({
        name: "refused", version: "1", inputType: "doubles", predict: (xs: number[][]) => xs.map((x) => x[0]! * weights[1]!),
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ClipperError);
      expect((err as ClipperError).message).toContain("predict uses `weights`");
      const badContext = await conn.deployFunction({
        name: "refused", version: "1", inputType: "doubles", predict: (xs: number[][]) => xs, context: { when: new Date() },
      }).catch((e: unknown) => e);
      expect((badContext as ClipperError).message).toContain("context.when is a Date");
      const badWarmup = await conn.deployFunction({
        name: "refused", version: "1", inputType: "doubles", predict: (xs: number[][]) => xs, warmupInput: "one, two",
      }).catch((e: unknown) => e);
      expect(badWarmup).toMatchObject({ code: "USAGE", message: expect.stringContaining("does not fit input type doubles") });
      expect(calls).toEqual([]);
      expect(readdirSync(home)).toEqual([]);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});

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
