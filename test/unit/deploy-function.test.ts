/**
 * Deploying from code without a cluster or a process (docs/deploy-from-code.md): the closure check,
 * the context and dependency rules, the generated module, and deployFunction refusing before
 * anything starts. test-predict and the embedded-default cluster are in test/deploy-function.test.ts.
 */
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ClipperConnection } from "../../src/connection.js";
import { ClipperError } from "../../src/errors.js";
import { checkFunction } from "../../src/functions/closure-check.js";
import { contextFile, serializeContext } from "../../src/functions/context-value.js";
import { parseDependency, resolveDependencies } from "../../src/functions/dependencies.js";
import { functionModuleSource, writeFunctionModule } from "../../src/functions/function-module.js";
import type { ContainerManager } from "../../src/managers/container-manager.js";

const fixtures = fileURLToPath(new URL("../fixtures/deploy-from-code/", import.meta.url));
const root = fileURLToPath(new URL("../..", import.meta.url));

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
