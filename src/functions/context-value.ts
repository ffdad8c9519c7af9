/**
 * The `context` a deployed function receives as its second argument: data written into the
 * generated module as JavaScript source, and files (contextFile) copied beside it and handed to the
 * function as absolute paths where the model finds them when it runs.
 */
import { existsSync, statSync } from "node:fs";
import { basename, resolve } from "node:path";
import { ClipperError } from "../errors.js";

const CONTEXT_FILE = Symbol.for("clipper.contextFile");

/** A file or directory to ship with a deployed function (see contextFile). */
export interface ContextFile {
  readonly [CONTEXT_FILE]: true;
  /** Absolute path on this machine. */
  readonly path: string;
}

/**
 * Marks a file or directory (relative paths from the current directory) to be copied with the
 * deployed function; the function receives, in its place in `context`, the absolute path where the
 * copy is when the model runs.
 */
export function contextFile(path: string): ContextFile {
  if (typeof path !== "string" || path === "") throw new ClipperError("USAGE", "contextFile needs a path");
  return Object.freeze({ [CONTEXT_FILE]: true as const, path: resolve(path) });
}

export function isContextFile(value: unknown): value is ContextFile {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[CONTEXT_FILE] === true;
}

/** The context as a JavaScript expression, and the files it names (copied to `files/<target>`). */
export interface SerializedContext {
  /** An expression; `__file("files/x")` stands for a copied file's absolute path at run time. */
  code: string;
  files: Array<{ source: string; target: string }>;
}

const TYPED_ARRAYS = [
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array,
] as const;

const RULE = "context values must be JSON data (plain objects, arrays, strings, finite numbers, booleans, null), " +
  "typed arrays such as Float32Array, or contextFile(path)";

/**
 * Writes a context value as source. Accepted: plain objects (prototype Object or null), arrays,
 * strings, finite numbers, booleans, null, typed arrays of numbers (Buffer too, as a Uint8Array),
 * contextFile(path); object properties that are undefined are left out, as JSON does. Refused,
 * naming where: functions, symbols, bigints, NaN and infinities, undefined in arrays, cycles, and
 * other objects (Date, Map, Set, RegExp, class instances).
 */
export function serializeContext(value: unknown): SerializedContext {
  const files: SerializedContext["files"] = [];
  const targets = new Map<string, string>();
  const taken = new Set<string>();
  const stack = new Set<object>();

  const fail = (where: string, what: string): never => {
    throw new ClipperError("USAGE", `${where} is ${what}: ${RULE}`, "put what cannot be written as data in a file (contextFile), or deploy a module (deployModule)");
  };

  const fileTarget = (file: ContextFile, where: string): string => {
    if (!existsSync(file.path)) throw new ClipperError("USAGE", `${where}: contextFile ${file.path} does not exist`);
    const known = targets.get(file.path);
    if (known) return known;
    const name = basename(file.path) || "file";
    let target = name;
    for (let i = 2; taken.has(target); i++) target = `${i}-${name}`;
    taken.add(target);
    targets.set(file.path, target);
    files.push({ source: file.path, target });
    return target;
  };

  const write = (v: unknown, where: string): string => {
    switch (typeof v) {
      case "string":
      case "boolean":
        return JSON.stringify(v);
      case "number":
        if (!Number.isFinite(v)) fail(where, String(v));
        return Object.is(v, -0) ? "-0" : JSON.stringify(v);
      case "undefined":
        return fail(where, "undefined");
      case "function":
        return fail(where, "a function");
      case "symbol":
        return fail(where, "a symbol");
      case "bigint":
        return fail(where, "a bigint");
    }
    if (v === null) return "null";
    const obj = v as object;
    if (isContextFile(obj)) {
      const target = fileTarget(obj, where);
      if (statSync(obj.path).isDirectory()) return `__file(${JSON.stringify(`./files/${target}/`)})`;
      return `__file(${JSON.stringify(`./files/${target}`)})`;
    }
    if (stack.has(obj)) fail(where, "a reference back to an object that contains it (a cycle)");
    const typed = TYPED_ARRAYS.find((T) => obj instanceof T);
    if (typed) {
      const ctor = obj instanceof Buffer ? "Uint8Array" : typed.name;
      const items = Array.from(obj as ArrayLike<number>, (x) => (Number.isFinite(x) ? (Object.is(x, -0) ? "-0" : String(x)) : x > 0 ? "Infinity" : x < 0 ? "-Infinity" : "NaN"));
      return `new ${ctor}([${items.join(",")}])`;
    }
    stack.add(obj);
    try {
      if (Array.isArray(obj)) {
        return `[${obj.map((item, i) => write(item, `${where}[${i}]`)).join(",")}]`;
      }
      const proto = Object.getPrototypeOf(obj) as unknown;
      if (proto !== Object.prototype && proto !== null) {
        const name = (obj as { constructor?: { name?: string } }).constructor?.name;
        fail(where, `${name ? `a ${name}` : "an object with a prototype"}`);
      }
      if (Object.getOwnPropertySymbols(obj).length > 0) fail(where, "an object with symbol keys");
      const parts: string[] = [];
      for (const [key, item] of Object.entries(obj)) {
        if (item === undefined) continue;
        const path = /^[A-Za-z_$][\w$]*$/.test(key) ? `${where}.${key}` : `${where}[${JSON.stringify(key)}]`;
        // A computed key defines an own property even for "__proto__".
        parts.push(`[${JSON.stringify(key)}]:${write(item, path)}`);
      }
      return `{${parts.join(",")}}`;
    } finally {
      stack.delete(obj);
    }
  };

  const code = value === undefined ? "undefined" : write(value, "context");
  return { code, files };
}
