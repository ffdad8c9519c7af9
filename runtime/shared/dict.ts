/**
 * Records keyed by names that come from outside (applications, models, versions, uids, weights).
 *
 * A plain object answers inherited keys: `{}["constructor"]` is a function, `{}["__proto__"]` is
 * Object.prototype, and `o["__proto__"] = x` replaces the prototype instead of storing an entry. So
 * every such record here is a null-prototype object (built by `dict`, parsed by `dictSchema`,
 * copied by `cloneData`) and read with `own`, which answers only own entries. `constructor` and
 * friends are then ordinary keys, in memory and in JSON alike.
 */
import { z } from "zod";

/** A null-prototype record of name → value. */
export type Dict<V> = Record<string, V>;

/** A new null-prototype record, optionally filled from entries or another record's own entries. */
export function dict<V>(from?: Iterable<readonly [string, V]> | Readonly<Record<string, V>>): Dict<V> {
  const out = Object.create(null) as Dict<V>;
  if (from === undefined) return out;
  const entries = isIterable(from) ? from : Object.entries(from);
  for (const [key, value] of entries) out[key] = value;
  return out;
}

function isIterable<T>(value: unknown): value is Iterable<T> {
  return typeof (value as { [Symbol.iterator]?: unknown })[Symbol.iterator] === "function";
}

/** The record's own entry for `key`, never an inherited property. */
export function own<V>(record: Readonly<Record<string, V>> | undefined | null, key: string): V | undefined {
  return record != null && Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Whether `key` is an own entry of the record. */
export function hasOwn(record: Readonly<Record<string, unknown>> | undefined | null, key: string): boolean {
  return record != null && Object.hasOwn(record, key);
}

/**
 * A deep copy of JSON-like data in which every object is null-prototype (arrays stay arrays). Use it
 * instead of structuredClone, which hands back Object.prototype objects.
 */
export function cloneData<T>(value: T): T {
  if (Array.isArray(value)) return value.map((item) => cloneData(item)) as T;
  if (value !== null && typeof value === "object") {
    const out = Object.create(null) as Record<string, unknown>;
    for (const key of Object.keys(value)) out[key] = cloneData((value as Record<string, unknown>)[key]);
    return out as T;
  }
  return value;
}

/**
 * zod schema of a name → value record that keeps every key (zod's own `z.record` drops
 * `__proto__`) and returns a null-prototype record. `key` may refuse keys with a reason.
 */
export function dictSchema<V extends z.ZodType>(value: V, options: { key?: (key: string) => string | undefined; error?: string } = {}) {
  return z.unknown().transform((input, ctx): Dict<z.output<V>> => {
    if (input === null || typeof input !== "object" || Array.isArray(input)) {
      ctx.issues.push({ code: "custom", message: options.error ?? "expected an object of name → value", input });
      return z.NEVER;
    }
    const out = dict<z.output<V>>();
    for (const key of Object.keys(input)) {
      const keyProblem = options.key?.(key);
      if (keyProblem !== undefined) {
        ctx.issues.push({ code: "custom", message: keyProblem, input: key, path: [key] });
        continue;
      }
      const parsed = value.safeParse((input as Record<string, unknown>)[key]);
      if (parsed.success) {
        out[key] = parsed.data;
      } else {
        for (const issue of parsed.error.issues) {
          ctx.issues.push({ ...issue, path: [key, ...issue.path] } as z.core.$ZodRawIssue);
        }
      }
    }
    return out;
  });
}
