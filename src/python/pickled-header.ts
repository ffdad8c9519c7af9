/**
 * The header of a `.pkl` predict file written by `python3 -m clipper_runtime.save`
 * (runtime/python/clipper_runtime/closure.py), read without Python: the image builder pins the
 * cloudpickle it records, and the local manager checks the Python it records against the
 * interpreter chosen to load it.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { extname } from "node:path";
import { ClipperError } from "../errors.js";
import type { PythonInterpreter } from "./interpreter.js";

/** What the header of a pickled predict function written by clipper_runtime.save records. */
export interface PickledFunctionHeader {
  format: "clipper-closure";
  format_version: number;
  cloudpickle?: string;
  python?: string;
  function?: string;
  [key: string]: unknown;
}

const HEADER_MAGIC = Buffer.from([0x80, 0x02, 0x58]); // pickle PROTO 2, BINUNICODE
const HEADER_MAX_BYTES = 1 << 20;

/**
 * The header at the start of a `.pkl` saved by `python3 -m clipper_runtime.save` (a protocol-2
 * pickled str of JSON: 0x80 0x02 'X', a little-endian u32 length, the JSON, '.'), read without
 * Python; undefined for a pickle without one (Clipper's deployers wrote plain cloudpickle.dumps).
 */
export function readPickledFunctionHeader(file: string): PickledFunctionHeader | undefined {
  const fd = openSync(file, "r");
  try {
    const head = Buffer.alloc(7);
    if (readSync(fd, head, 0, 7, 0) !== 7 || !head.subarray(0, 3).equals(HEADER_MAGIC)) return undefined;
    const length = head.readUInt32LE(3);
    if (length > HEADER_MAX_BYTES) return undefined;
    const body = Buffer.alloc(length + 1);
    if (readSync(fd, body, 0, length + 1, 7) !== length + 1 || body[length] !== 0x2e) return undefined;
    const header: unknown = JSON.parse(body.subarray(0, length).toString("utf8"));
    if (typeof header !== "object" || header === null || (header as { format?: unknown }).format !== "clipper-closure") return undefined;
    return header as PickledFunctionHeader;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Throws when `predictFile` is a .pkl whose header records another Python (major.minor) than
 * `python`'s: cloudpickle stores a function's bytecode, which another Python version cannot load,
 * so the replica would only crash-loop. A pickle without a header (or a .py) passes.
 */
export function checkPickledPython(predictFile: string, python: PythonInterpreter): void {
  if (extname(predictFile).toLowerCase() !== ".pkl") return;
  const saved = readPickledFunctionHeader(predictFile)?.python;
  if (typeof saved !== "string" || majorMinor(saved) === majorMinor(python.version)) return;
  throw new ClipperError(
    "USAGE",
    `${predictFile} was saved by Python ${saved}, but the interpreter chosen to load it, ${python.path}, is Python ${python.version}`,
    `pass --python naming the interpreter that ran save-function, or save it again with this one (clipper save-function --python ${python.path})`,
  );
}

function majorMinor(version: string): string {
  return version.split(".").slice(0, 2).join(".");
}
