/**
 * Checks that a predict function can travel as source text: parse `fn.toString()` with acorn, find
 * the names it uses without defining them (eslint-scope's scope analysis: hoisting, block scopes,
 * parameters with defaults and destructuring, catch clauses, class scopes, labels), and refuse a
 * function that needs anything from outside itself other than the globals every Node process has.
 * Nothing here runs the function.
 */
import { parse, type Node as AcornNode, type Program } from "acorn";
import { ancestor } from "acorn-walk";
import { analyze } from "eslint-scope";
import type * as ESTree from "estree";
import { isBuiltin } from "node:module";
import { ClipperError } from "../errors.js";

/**
 * The free names a predict function may use: the ECMAScript globals, and what Node 20 puts on the
 * global object for every module (console, process, Buffer, timers, the WHATWG web APIs). Anything
 * else it uses must be defined inside it, passed in `context`, or imported with `await import(...)`.
 */
export const ALLOWED_GLOBALS: ReadonlySet<string> = new Set([
  // ECMAScript: values and functions
  "globalThis", "Infinity", "NaN", "undefined", "eval", "isFinite", "isNaN", "parseFloat", "parseInt",
  "decodeURI", "decodeURIComponent", "encodeURI", "encodeURIComponent", "escape", "unescape",
  // ECMAScript: constructors and namespaces
  "AggregateError", "Array", "ArrayBuffer", "Atomics", "BigInt", "BigInt64Array", "BigUint64Array", "Boolean", "DataView",
  "Date", "Error", "EvalError", "FinalizationRegistry", "Float32Array", "Float64Array", "Function", "Int8Array",
  "Int16Array", "Int32Array", "Intl", "JSON", "Map", "Math", "Number", "Object", "Promise", "Proxy", "RangeError",
  "ReferenceError", "Reflect", "RegExp", "Set", "SharedArrayBuffer", "String", "Symbol", "SyntaxError", "TypeError",
  "Uint8Array", "Uint8ClampedArray", "Uint16Array", "Uint32Array", "URIError", "WeakMap", "WeakRef", "WeakSet", "WebAssembly",
  // Node: the process and its helpers
  "global", "console", "process", "Buffer", "setTimeout", "clearTimeout", "setInterval", "clearInterval",
  "setImmediate", "clearImmediate", "queueMicrotask", "structuredClone", "performance", "crypto",
  // Web APIs Node 20 provides globally
  "URL", "URLSearchParams", "TextEncoder", "TextDecoder", "atob", "btoa", "AbortController", "AbortSignal",
  "Event", "EventTarget", "MessageChannel", "MessagePort", "MessageEvent", "BroadcastChannel", "Blob", "DOMException",
  "fetch", "Request", "Response", "Headers", "FormData", "ReadableStream", "WritableStream", "TransformStream",
  "TextEncoderStream", "TextDecoderStream", "CompressionStream", "DecompressionStream",
]);

/**
 * Helpers that TypeScript runners put into the functions they compile, given a definition in the
 * generated module: `__name` (esbuild's keepNames, used by tsx) only sets a function's name.
 */
export const HELPER_GLOBALS: ReadonlySet<string> = new Set(["__name"]);

/** A function the check accepted, as an expression to put into a module. */
export interface CheckedFunction {
  /** An expression whose value is the function (wrapped in parentheses, or an object for a method). */
  expression: string;
  kind: "arrow" | "function" | "method";
  async: boolean;
  /** Bare package names it imports with a literal `import("...")` (Node built-ins left out). */
  imports: string[];
  /** Helper globals (HELPER_GLOBALS) it uses, which the module must define. */
  helpers: string[];
}

type AnyNode = AcornNode & Record<string, unknown>;

/** Vitest (vite-node) rewrites imports in the functions of a test file; these stand for `import`. */
const VITE_DYNAMIC_IMPORT = "__vite_ssr_dynamic_import__";
const VITE_IMPORT = /^__vite_ssr_import_\d+__$/;
const VITE_IMPORT_META = "__vite_ssr_import_meta__";

function refuse(what: string, message: string, hint?: string): never {
  throw new ClipperError("USAGE", `${what} ${message}`, hint);
}

function quoteList(names: string[]): string {
  return names.map((n) => `\`${n}\``).join(", ");
}

/** Parses a function's source as an expression: arrows and function expressions as they are, methods inside an object. */
function parseFunction(source: string, what: string): { program: Program; text: string; kind: CheckedFunction["kind"]; fn: AnyNode } {
  const attempts: Array<{ text: string; kind: "expression" | "method" }> = [
    { text: `(${source}\n)`, kind: "expression" },
    { text: `({${source}\n})`, kind: "method" },
  ];
  let firstError: Error | undefined;
  for (const attempt of attempts) {
    let program: Program;
    try {
      program = parse(attempt.text, { ecmaVersion: "latest", sourceType: "module", ranges: true });
    } catch (err) {
      firstError ??= err as Error;
      continue;
    }
    const statement = program.body[0] as AnyNode | undefined;
    if (program.body.length !== 1 || statement?.type !== "ExpressionStatement") continue;
    const expr = statement["expression"] as AnyNode;
    if (attempt.kind === "expression") {
      if (expr.type === "ClassExpression") refuse(what, "is a class, not a function", "deploy a function (inputs, context) => outputs, or a module whose export is one (deployModule)");
      if (expr.type === "ArrowFunctionExpression") return { program, text: attempt.text, kind: "arrow", fn: expr };
      if (expr.type === "FunctionExpression") return { program, text: attempt.text, kind: "function", fn: expr };
      continue;
    }
    const properties = expr["properties"] as AnyNode[] | undefined;
    const property = properties?.length === 1 ? properties[0] : undefined;
    if (expr.type !== "ObjectExpression" || !property || property.type !== "Property") continue;
    if (property["kind"] !== "init") refuse(what, `is a ${String(property["kind"])}ter, not a function`);
    if (property["computed"]) refuse(what, "is a method with a computed name, which cannot be taken apart from its object", "define it as a function expression or an arrow function");
    return { program, text: attempt.text, kind: "method", fn: property["value"] as AnyNode };
  }
  refuse(what, `has source that does not parse as a function in an ES module: ${firstError?.message ?? "not a function expression"}`,
    "deploy a plain function or arrow function, or a module (deployModule)");
}

/**
 * Checks a predict function and returns the expression to deploy. Throws ClipperError("USAGE")
 * naming every variable it closes over, or why its source cannot travel.
 */
export function checkFunction(fn: unknown, what = "predict"): CheckedFunction {
  if (typeof fn !== "function") refuse(what, `must be a function, got ${fn === null ? "null" : typeof fn}`);
  let source: string;
  try {
    source = Function.prototype.toString.call(fn);
  } catch (err) {
    refuse(what, `has no readable source: ${(err as Error).message}`);
  }
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
    if (fn.name.startsWith("bound ")) {
      refuse(what, "is a bound function (made with .bind()), whose source is not available",
        "deploy the original function and pass what it was bound to in `context`");
    }
    refuse(what, `is native code (${fn.name || "anonymous"}), whose source is not available`, "wrap it in a function of your own");
  }
  if (/^class\b/.test(source)) refuse(what, "is a class, not a function", "deploy a function (inputs, context) => outputs");

  const { program, text, kind, fn: node } = parseFunction(source, what);
  if (node["generator"]) refuse(what, "is a generator function; predict must return an array of outputs (or a promise of one)");

  const problems: string[] = [];
  const hints: string[] = [];
  const imports = new Set<string>();
  const files = new Set<string>();
  /** Vitest's rewrites of the function's imports, undone. */
  const edits: Array<{ start: number; end: number; text: string }> = [];
  let usesImportMeta = false;
  let usesRequire = false;
  const lexical: string[] = [];

  // `this`, `super`, `new.target` and `arguments` outside any function of its own belong to the
  // code around the function, which does not travel; so does import.meta (it would name the
  // generated module). Dynamic imports are collected.
  ancestor(program as unknown as AcornNode, {
    ThisExpression(_n, _s, ancestors) {
      if (!ownFunctionBetween(ancestors as AnyNode[], node)) lexical.push("this");
    },
    Super(_n, _s, ancestors) {
      if (!ownFunctionBetween(ancestors as AnyNode[], node)) lexical.push("super");
    },
    MetaProperty(n) {
      // (new.target outside a function does not parse in a module: it never gets here.)
      if ((n as unknown as ESTree.MetaProperty).meta.name === "import") usesImportMeta = true;
    },
    ImportExpression(n) {
      const specifier = literalSpecifier((n as unknown as ESTree.ImportExpression).source);
      if (specifier !== undefined) addImport(imports, files, specifier);
    },
    CallExpression(n) {
      const call = n as unknown as ESTree.CallExpression;
      if (call.callee.type === "Identifier" && call.callee.name === VITE_DYNAMIC_IMPORT) {
        const arg = call.arguments[0];
        let specifier = arg && arg.type !== "SpreadElement" ? literalSpecifier(arg) : undefined;
        // Vite resolved `import("pkg")` to the file, e.g. "/node_modules/pkg/dist/index.js": back to the package.
        const inPackage = specifier?.lastIndexOf("/node_modules/") ?? -1;
        if (specifier !== undefined && inPackage >= 0) {
          specifier = packageNameOf(specifier.slice(inPackage + "/node_modules/".length));
          const range = arg as unknown as { start: number; end: number };
          edits.push({ start: range.start, end: range.end, text: JSON.stringify(specifier) });
        }
        if (specifier !== undefined) addImport(imports, files, specifier);
      }
    },
  });

  const scopes = analyze(program as unknown as ESTree.Program, { ecmaVersion: 2022, sourceType: "module" });
  const free = new Map<string, string>();
  const helpers = new Set<string>();
  for (const ref of scopes.globalScope?.through ?? []) {
    const name = ref.identifier.name;
    if (ALLOWED_GLOBALS.has(name)) continue;
    if (HELPER_GLOBALS.has(name)) {
      helpers.add(name);
      continue;
    }
    if (name === VITE_DYNAMIC_IMPORT) {
      const at = ref.identifier as unknown as { start: number; end: number };
      edits.push({ start: at.start, end: at.end, text: "import" });
      continue;
    }
    if (name === VITE_IMPORT_META) {
      usesImportMeta = true;
      continue;
    }
    if (name === "require") {
      usesRequire = true;
      continue;
    }
    if (VITE_IMPORT.test(name)) {
      // `(0, __vite_ssr_import_1__.join)(...)`: the test file's import of `join`.
      const range = ref.identifier as unknown as { end: number };
      const member = /^\s*\.\s*([A-Za-z_$][\w$]*)/.exec(text.slice(range.end))?.[1];
      const shown = member ? `${member} (an import)` : "an imported module";
      free.set(shown, shown);
      continue;
    }
    free.set(name, name);
  }
  if (lexical.includes("this") || lexical.includes("super")) {
    const which = [...new Set(lexical)].map((n) => `\`${n}\``).join(" and ");
    problems.push(`uses ${which} of the code around it, which is not carried with the function`);
    hints.push("deploy a plain function or arrow function that does not use `this`; pass the values it needs in `context`");
  }
  if (free.size > 0) {
    const names = [...free.keys()];
    const one = names.length === 1;
    problems.push(`uses ${quoteList(names)}, defined outside the function: pass ${one ? "it" : "them"} in \`context\` or deploy a module (deployModule)`);
  }
  if (usesRequire) {
    problems.push("calls `require`, which ES modules do not have: use `await import(\"package\")` and list the package in `dependencies`");
  }
  if (files.size > 0) {
    problems.push(`imports ${quoteList([...files])}, a file of yours, which does not travel with the function: deploy a module (deployModule), which bundles what it imports`);
  }
  if (usesImportMeta) {
    problems.push("uses `import.meta`, which would describe the generated module, not yours: pass files with contextFile(path) in `context`");
  }
  if (problems.length > 0) {
    throw new ClipperError("USAGE", `${what} ${problems.join("; it ")}`, hints[0]);
  }

  let fixed = text;
  for (const edit of edits.sort((a, b) => b.start - a.start)) fixed = `${fixed.slice(0, edit.start)}${edit.text}${fixed.slice(edit.end)}`;
  const expression = kind === "method" ? `Object.values(${fixed})[0]` : fixed;
  return { expression, kind, async: Boolean(node["async"]), imports: [...imports].sort(), helpers: [...helpers].sort() };
}

/** Whether a non-arrow function (or a class field or static block) lies between the top function and the node. */
function ownFunctionBetween(ancestors: AnyNode[], top: AnyNode): boolean {
  const start = ancestors.indexOf(top);
  // The top function itself does not count: even when it binds `this`, the deployed function is
  // called without one, so a `this` there would be whatever it was bound to here, which is not carried.
  for (const a of ancestors.slice(start + 1, -1)) {
    if (a.type === "FunctionExpression" || a.type === "FunctionDeclaration") return true;
    if (a.type === "PropertyDefinition" || a.type === "StaticBlock") return true;
  }
  return false;
}

function literalSpecifier(node: ESTree.Node): string | undefined {
  if (node.type === "Literal" && typeof node.value === "string") return node.value;
  if (node.type === "TemplateLiteral" && node.expressions.length === 0) return node.quasis[0]?.value.cooked ?? undefined;
  return undefined;
}

function addImport(imports: Set<string>, files: Set<string>, specifier: string): void {
  if (isBuiltin(specifier)) return;
  if (specifier.startsWith(".") || specifier.startsWith("/") || specifier.startsWith("file:") || /^[A-Za-z]:[\\/]/.test(specifier)) {
    files.add(specifier);
    return;
  }
  imports.add(packageNameOf(specifier));
}

/** `@scope/name/sub` -> `@scope/name`; `name/sub` -> `name`. */
export function packageNameOf(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}
