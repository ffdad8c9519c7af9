import { describe, expect, it } from "vitest";
import { z } from "zod";
import { cloneData, dict, dictSchema, hasOwn, own } from "../../runtime/shared/dict.js";

describe("null-prototype records", () => {
  it("keeps __proto__ and constructor as ordinary keys when parsing", () => {
    const schema = z.object({ a: dictSchema(z.object({ n: z.number() })) });
    const parsed = schema.parse(JSON.parse('{"a":{"__proto__":{"n":1},"constructor":{"n":2}}}'));
    expect(Object.getPrototypeOf(parsed.a)).toBeNull();
    expect(Object.keys(parsed.a)).toEqual(["__proto__", "constructor"]);
    expect(JSON.parse(JSON.stringify(parsed))).toEqual(JSON.parse('{"a":{"__proto__":{"n":1},"constructor":{"n":2}}}'));
  });

  it("names the key and field of a bad entry", () => {
    const schema = z.object({ a: dictSchema(z.object({ n: z.number() })) });
    const bad = schema.safeParse({ a: { x: { n: "no" } } });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues[0]!.path).toEqual(["a", "x", "n"]);
    expect(schema.safeParse({ a: [1] }).success).toBe(false);
    const keyed = dictSchema(z.number(), { key: (k) => (k === "bad" ? "no bad keys" : undefined) }).safeParse({ bad: 1 });
    expect(keyed.error!.issues[0]!.message).toBe("no bad keys");
  });

  it("answers only own entries", () => {
    const d = dict<number>();
    expect(own(d, "constructor")).toBeUndefined();
    expect(own({} as Record<string, number>, "constructor")).toBeUndefined();
    expect(hasOwn({}, "toString")).toBe(false);
    d["__proto__"] = 1;
    expect(own(d, "__proto__")).toBe(1);
    expect(Object.getPrototypeOf(d)).toBeNull();
  });

  it("clones into null-prototype objects without touching prototypes", () => {
    const source = JSON.parse('{"x":{"__proto__":{"polluted":true}},"list":[{"constructor":1}]}');
    const copy = cloneData(source);
    expect(Object.getPrototypeOf(copy.x)).toBeNull();
    expect(Object.keys(copy.x)).toEqual(["__proto__"]);
    expect(copy.list[0].constructor).toBe(1);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(JSON.stringify(copy)).toBe(JSON.stringify(source));
  });
});
