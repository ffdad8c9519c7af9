/**
 * Clipper's input types: canonical names, accepted aliases, RPC codes, and the conversion of a
 * JSON query input into the raw bytes a model container receives.
 */

export const INPUT_TYPES = ["bytes", "integers", "floats", "doubles", "strings"] as const;
export type InputType = (typeof INPUT_TYPES)[number];

/** A Map, not an object literal: `constructor` or `__proto__` must not find an inherited property. */
const ALIASES: ReadonlyMap<string, InputType> = new Map(Object.entries({
  bytes: "bytes", byte: "bytes", b: "bytes",
  integers: "integers", ints: "integers", integer: "integers", int: "integers", i: "integers",
  floats: "floats", float: "floats", f: "floats",
  doubles: "doubles", double: "doubles", d: "doubles",
  strings: "strings", string: "strings", str: "strings", strs: "strings", s: "strings",
} satisfies Record<string, InputType>));

/** RPC v3 input type codes. */
export const INPUT_TYPE_CODES: Record<InputType, number> = {
  bytes: 0, integers: 1, floats: 2, doubles: 3, strings: 4,
};

/** The canonical input type for a name or alias, or undefined when it is not one. */
export function canonicalInputType(name: string): InputType | undefined {
  return ALIASES.get(name.trim().toLowerCase());
}

export function inputTypeFromCode(code: number): InputType | undefined {
  return INPUT_TYPES.find((t) => INPUT_TYPE_CODES[t] === code);
}

/** Thrown when a query input does not match its application's input type. */
export class InputTypeError extends Error {}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function numberArray(value: unknown, type: InputType): number[] {
  if (!Array.isArray(value)) {
    throw new InputTypeError(`input of type ${type} must be a JSON array of numbers`);
  }
  // Plain loops here and below, not forEach: no closure per element (a third of an input's encoding).
  for (let i = 0; i < value.length; i++) {
    const x: unknown = value[i];
    if (typeof x !== "number" || !Number.isFinite(x)) {
      throw new InputTypeError(`element ${i} of the input is not a finite number (input type ${type})`);
    }
  }
  return value as number[];
}

/**
 * Encodes one JSON input into the raw bytes of one RPC input frame (ints int32, floats float32,
 * doubles float64, bytes raw, strings UTF-8), all little-endian. Number arrays are encoded into
 * Buffer.allocUnsafe (pooled for small inputs: one query's input costs no allocation of its own);
 * every byte is written, and who keeps an input longer (the prediction cache) copies it.
 */
export function encodeInput(type: InputType, value: unknown): Buffer {
  switch (type) {
    case "doubles": {
      const xs = numberArray(value, type);
      const buf = Buffer.allocUnsafe(xs.length * 8);
      for (let i = 0; i < xs.length; i++) buf.writeDoubleLE(xs[i]!, i * 8);
      return buf;
    }
    case "floats": {
      const xs = numberArray(value, type);
      const buf = Buffer.allocUnsafe(xs.length * 4);
      for (let i = 0; i < xs.length; i++) buf.writeFloatLE(xs[i]!, i * 4);
      return buf;
    }
    case "integers": {
      const xs = numberArray(value, type);
      const buf = Buffer.allocUnsafe(xs.length * 4);
      for (let i = 0; i < xs.length; i++) {
        const x = xs[i]!;
        if (!Number.isInteger(x) || x < INT32_MIN || x > INT32_MAX) {
          throw new InputTypeError(`element ${i} of the input is not a 32-bit integer (input type integers)`);
        }
        buf.writeInt32LE(x, i * 4);
      }
      return buf;
    }
    case "strings": {
      if (typeof value !== "string") throw new InputTypeError("input of type strings must be a JSON string");
      return Buffer.from(value, "utf8");
    }
    case "bytes": {
      if (typeof value !== "string" || value.length % 4 !== 0 || !BASE64.test(value)) {
        throw new InputTypeError("input of type bytes must be a base64-encoded JSON string");
      }
      return Buffer.from(value, "base64");
    }
  }
}

/** Decodes one RPC input frame back into a JS value (numbers array, string, or bytes). */
export function decodeInput(type: InputType, raw: Buffer): number[] | string | Buffer {
  switch (type) {
    case "doubles":
      return Array.from({ length: raw.length / 8 }, (_, i) => raw.readDoubleLE(i * 8));
    case "floats":
      return Array.from({ length: raw.length / 4 }, (_, i) => raw.readFloatLE(i * 4));
    case "integers":
      return Array.from({ length: raw.length / 4 }, (_, i) => raw.readInt32LE(i * 4));
    case "strings":
      return raw.toString("utf8");
    case "bytes":
      return raw;
  }
}

/** Bytes per element of an input type, for validating frame sizes. */
export const ELEMENT_SIZE: Record<InputType, number> = {
  bytes: 1, integers: 4, floats: 4, doubles: 8, strings: 1,
};
