/**
 * Open Inference Protocol tensors ⇄ Clipper inputs and outputs. Pure functions, no I/O.
 *
 * In: the first dimension is the batch. A numeric tensor of shape [n, d...] becomes n Clipper
 * inputs of d... elements (flattened row-major); shape [d] (or []) is one input. A BYTES tensor for a
 * strings or bytes model holds one input per element: shape [n] or [n, 1]. `data` may be flat or
 * nested; either way its elements must fill the shape exactly.
 * Out: Clipper outputs are strings. When every output is a JSON number the tensor is FP64 [n]; when
 * every output is a JSON array of k numbers, FP64 [n, k]; otherwise BYTES [n] with the strings.
 */
import type { InputType } from "../../shared/input-types.js";
import { OipError } from "./errors.js";

export const OIP_DATATYPES = [
  "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES",
] as const;
export type OipDatatype = (typeof OIP_DATATYPES)[number];

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface InputTensor extends TensorMetadata {
  datatype: OipDatatype;
  data: unknown;
  parameters: Record<string, unknown>;
}

export interface OutputTensor {
  name: string;
  datatype: "FP64" | "BYTES";
  shape: number[];
  data: Array<number | string>;
}

/** The one input and the one output every Clipper model has. */
export const INPUT_NAME = "input";
export const OUTPUT_NAME = "output";

/** [min, max] of each integer datatype (max exclusive where it is not a double: 2^63, 2^64). */
const INTEGER_RANGES: Partial<Record<OipDatatype, { min: number; max: number; maxExclusive?: boolean }>> = {
  UINT8: { min: 0, max: 255 },
  UINT16: { min: 0, max: 65_535 },
  UINT32: { min: 0, max: 4_294_967_295 },
  UINT64: { min: 0, max: 2 ** 64, maxExclusive: true },
  INT8: { min: -128, max: 127 },
  INT16: { min: -32_768, max: 32_767 },
  INT32: { min: -2_147_483_648, max: 2_147_483_647 },
  INT64: { min: -(2 ** 63), max: 2 ** 63, maxExclusive: true },
};
const FLOAT_LIMITS: Partial<Record<OipDatatype, number>> = { FP16: 65_504, FP32: 3.4028234663852886e38 };
const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const isInteger = (d: OipDatatype) => d in INTEGER_RANGES;

/** Tensor metadata of a model's input, derived from its Clipper input type. */
export function inputMetadata(type: InputType): TensorMetadata {
  switch (type) {
    case "doubles": return { name: INPUT_NAME, datatype: "FP64", shape: [-1, -1] };
    case "floats": return { name: INPUT_NAME, datatype: "FP32", shape: [-1, -1] };
    case "integers": return { name: INPUT_NAME, datatype: "INT32", shape: [-1, -1] };
    case "strings":
    case "bytes": return { name: INPUT_NAME, datatype: "BYTES", shape: [-1] };
  }
}

/**
 * Tensor metadata of a model's output. A Clipper model answers strings, so BYTES is what it
 * produces; an inference answer turns all-numeric outputs into FP64 (see `outputsToTensor`).
 */
export function outputMetadata(): TensorMetadata {
  return { name: OUTPUT_NAME, datatype: "BYTES", shape: [-1] };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Validates one element of `inputs` (its form, not yet its data against the model). */
export function parseInputTensor(value: unknown, where: string): InputTensor {
  if (!isRecord(value)) throw new OipError(400, `${where} must be a JSON object with name, shape, datatype and data`);
  const { name, shape, datatype, data } = value;
  if (typeof name !== "string" || name === "") throw new OipError(400, `${where}.name must be a non-empty string`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new OipError(400, `${where}.shape must be an array of non-negative integers`);
  }
  if (typeof datatype !== "string" || !(OIP_DATATYPES as readonly string[]).includes(datatype)) {
    throw new OipError(400, `${where}.datatype must be one of ${OIP_DATATYPES.join(", ")}; got ${JSON.stringify(datatype)}`);
  }
  const parameters = value.parameters ?? {};
  if (!isRecord(parameters)) throw new OipError(400, `${where}.parameters must be a JSON object`);
  if ("binary_data_size" in parameters) {
    throw new OipError(400, `${where} uses the binary tensor data extension, which this server does not support: send the data as JSON`);
  }
  if ("shared_memory_region" in parameters) {
    throw new OipError(400, `${where} uses the shared memory extension, which this server does not support: send the data as JSON`);
  }
  if (data === undefined) throw new OipError(400, `${where}.data is missing`);
  return { name, shape: shape as number[], datatype: datatype as OipDatatype, data, parameters };
}

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
const showShape = (shape: readonly number[]) => `[${shape.join(", ")}]`;

/**
 * The elements of `data` in row-major order, checked against the shape. Flat data must hold exactly
 * the shape's element count; nested data must follow the shape's dimensions down to its innermost
 * arrays, each of which holds the product of the remaining dimensions (so [[1, 2, 3, 4]] fills [1, 2, 2]).
 */
export function flattenData(tensor: InputTensor, where: string): unknown[] {
  const { shape, data } = tensor;
  const total = product(shape);
  if (!Array.isArray(data)) {
    if (total !== 1) throw new OipError(400, `${where}.data must be an array of ${total} elements for shape ${showShape(shape)}`);
    return [data];
  }
  const out: unknown[] = [];
  const walk = (node: unknown[], depth: number, path: string): void => {
    const arrays = node.filter(Array.isArray).length;
    if (arrays > 0 && arrays < node.length) {
      throw new OipError(400, `${where}.data${path} mixes arrays and values: nested data must be regular`);
    }
    if (arrays === 0 || node.length === 0) {
      const want = product(shape.slice(depth));
      if (node.length !== want) {
        throw new OipError(400, depth === 0
          ? `${where}.data has ${node.length} elements but shape ${showShape(shape)} needs ${total}`
          : `${where}.data${path} has ${node.length} elements but shape ${showShape(shape)} needs ${want} there`);
      }
      for (const x of node) out.push(x);
      return;
    }
    if (depth >= shape.length - 1) {
      throw new OipError(400, `${where}.data${path} is nested deeper than shape ${showShape(shape)} allows`);
    }
    if (node.length !== shape[depth]) {
      throw new OipError(400, `${where}.data${path} has ${node.length} entries but dimension ${depth} of shape ${showShape(shape)} is ${shape[depth]}`);
    }
    node.forEach((child, i) => walk(child as unknown[], depth + 1, `${path}[${i}]`));
  };
  walk(data, 0, "");
  return out;
}

/** How a tensor divides into Clipper inputs: `rows` inputs of `perRow` elements each. */
function rowsOf(shape: readonly number[], textModel: boolean): { rows: number; perRow: number } {
  if (shape.length === 0) return { rows: 1, perRow: 1 };
  if (shape.length === 1 && !textModel) return { rows: 1, perRow: shape[0]! };
  return { rows: shape[0]!, perRow: product(shape.slice(1)) };
}

function elementProblem(datatype: OipDatatype, x: unknown): string | undefined {
  if (datatype === "BOOL") return typeof x === "boolean" ? undefined : "is not a JSON boolean";
  if (datatype === "BYTES") return typeof x === "string" ? undefined : "is not a JSON string";
  if (typeof x !== "number" || !Number.isFinite(x)) return "is not a finite JSON number";
  const range = INTEGER_RANGES[datatype];
  if (range) {
    if (!Number.isInteger(x)) return `is not an integer (datatype ${datatype})`;
    if (x < range.min || x > range.max || (range.maxExclusive && x === range.max)) return `is out of the range of ${datatype}`;
  }
  const limit = FLOAT_LIMITS[datatype];
  if (limit !== undefined && Math.abs(x) > limit) return `is out of the range of ${datatype}`;
  return undefined;
}

function describe(x: unknown): string {
  const text = JSON.stringify(x) ?? String(x);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/** Which datatypes a model of each input type accepts, for messages. */
function acceptedFor(type: InputType): string {
  switch (type) {
    case "doubles":
    case "floats": return "BOOL, integer (INT*, UINT*) or floating-point (FP16, FP32, FP64) tensors";
    case "integers": return "BOOL or integer (INT8/16/32/64, UINT8/16/32/64) tensors with values in the int32 range";
    case "strings":
    case "bytes": return "BYTES tensors";
  }
}

/** The bytes of one BYTES element, honouring the input's `content_type` parameter ("str" or "base64"). */
function textBytes(x: string, base64: boolean, where: string, index: number): Buffer {
  if (!base64) return Buffer.from(x, "utf8");
  if (x.length % 4 !== 0 || !BASE64.test(x)) {
    throw new OipError(400, `${where}.data element ${index} is not valid base64 (content_type "base64")`);
  }
  return Buffer.from(x, "base64");
}

/**
 * A request's input tensor as Clipper inputs for a model of `type`: the raw bytes of each RPC input
 * frame (ints int32, floats float32, doubles float64, strings UTF-8, bytes raw).
 */
export function tensorToInputs(tensor: InputTensor, type: InputType, where = "inputs[0]"): Buffer[] {
  const textModel = type === "strings" || type === "bytes";
  const { datatype } = tensor;
  const typeOk = textModel
    ? datatype === "BYTES"
    : type === "integers"
      ? datatype === "BOOL" || isInteger(datatype)
      : datatype !== "BYTES";
  if (!typeOk) {
    throw new OipError(400, `${where} has datatype ${datatype}, but the model takes ${type}: send ${acceptedFor(type)}`);
  }
  const contentType = tensor.parameters.content_type;
  if (contentType !== undefined && contentType !== "str" && !(contentType === "base64" && datatype === "BYTES")) {
    throw new OipError(400, `${where}.parameters.content_type ${describe(contentType)} is not supported (BYTES tensors take "str" or "base64")`);
  }
  const elements = flattenData(tensor, where);
  elements.forEach((x, i) => {
    const problem = elementProblem(datatype, x);
    if (problem) throw new OipError(400, `${where}.data element ${i} (${describe(x)}) ${problem}`);
  });
  const { rows, perRow } = rowsOf(tensor.shape, textModel);
  if (rows === 0 || perRow === 0) throw new OipError(400, `${where} has shape ${showShape(tensor.shape)}: no elements to predict on`);

  if (textModel) {
    if (perRow !== 1) {
      throw new OipError(400, `${where} has shape ${showShape(tensor.shape)}, but a ${type} model takes one string per input: send shape [n] or [n, 1]`);
    }
    const base64 = contentType === "base64";
    return (elements as string[]).map((x, i) => {
      const bytes = textBytes(x, base64, where, i);
      if (type === "strings" && base64) {
        try {
          new TextDecoder("utf-8", { fatal: true }).decode(bytes);
        } catch {
          throw new OipError(400, `${where}.data element ${i} does not decode to UTF-8 text, which a strings model needs`);
        }
      }
      return bytes;
    });
  }

  const numbers = elements.map((x) => (typeof x === "boolean" ? (x ? 1 : 0) : (x as number)));
  const size = type === "doubles" ? 8 : 4;
  const inputs: Buffer[] = [];
  for (let r = 0; r < rows; r++) {
    const buf = Buffer.alloc(perRow * size);
    for (let j = 0; j < perRow; j++) {
      const index = r * perRow + j;
      const x = numbers[index]!;
      if (type === "doubles") buf.writeDoubleLE(x, j * 8);
      else if (type === "floats") {
        if (Math.abs(x) > FLOAT_LIMITS.FP32!) throw new OipError(400, `${where}.data element ${index} (${x}) is out of the range of the model's floats (float32)`);
        buf.writeFloatLE(x, j * 4);
      } else {
        if (x < INT32_MIN || x > INT32_MAX) {
          throw new OipError(400, `${where}.data element ${index} (${describe(x)}) is out of the range of the model's integers (int32)`);
        }
        buf.writeInt32LE(x, j * 4);
      }
    }
    inputs.push(buf);
  }
  return inputs;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The model's outputs (one string per input) as one output tensor: FP64 [n] when all are JSON
 * numbers, FP64 [n, k] when all are JSON arrays of k numbers (k ≥ 1), else BYTES [n]. `asText`
 * forces BYTES (a request's output parameter `content_type: "str"`).
 */
export function outputsToTensor(outputs: readonly string[], asText = false): OutputTensor {
  const n = outputs.length;
  const text: OutputTensor = { name: OUTPUT_NAME, datatype: "BYTES", shape: [n], data: [...outputs] };
  if (asText || n === 0) return text;
  const parsed = outputs.map(parseJson);
  if (parsed.every((x) => typeof x === "number")) {
    return { name: OUTPUT_NAME, datatype: "FP64", shape: [n], data: parsed as number[] };
  }
  const first = parsed[0];
  if (!Array.isArray(first) || first.length === 0) return text;
  const k = first.length;
  const regular = parsed.every((x) => Array.isArray(x) && x.length === k && x.every((v) => typeof v === "number"));
  if (!regular) return text;
  return { name: OUTPUT_NAME, datatype: "FP64", shape: [n, k], data: (parsed as number[][]).flat() };
}
