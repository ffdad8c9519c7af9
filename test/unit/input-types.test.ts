/** encodeInput: the bytes of each number type, and the errors that name the offending element. */
import { describe, expect, it } from "vitest";
import { decodeInput, encodeInput, InputTypeError } from "../../runtime/shared/input-types.js";

describe("encodeInput", () => {
  it("writes numbers little-endian, each in its type's width, and decodes back", () => {
    const xs = [1.5, -2, 0, 1e300, -0, 3];
    const doubles = encodeInput("doubles", xs);
    expect(doubles.length).toBe(48);
    xs.forEach((x, i) => expect(doubles.readDoubleLE(i * 8)).toBe(x));
    const floats = encodeInput("floats", [1.5, -2]);
    expect([...floats]).toEqual([0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0]);
    const ints = encodeInput("integers", [1, -1, 2147483647, -2147483648]);
    expect([...ints.subarray(0, 8)]).toEqual([1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    expect(decodeInput("integers", ints)).toEqual([1, -1, 2147483647, -2147483648]);
    expect(encodeInput("doubles", []).length).toBe(0);
  });

  it("names the first element that is not a number of the type, and encodes nothing", () => {
    expect(() => encodeInput("doubles", [1, "2", 3])).toThrow(new InputTypeError("element 1 of the input is not a finite number (input type doubles)"));
    expect(() => encodeInput("floats", [1, 2, null])).toThrow("element 2 of the input is not a finite number (input type floats)");
    expect(() => encodeInput("integers", [1, 2.5])).toThrow("element 1 of the input is not a 32-bit integer (input type integers)");
    expect(() => encodeInput("integers", [2147483648])).toThrow("element 0 of the input is not a 32-bit integer (input type integers)");
    expect(() => encodeInput("doubles", [Number.NaN])).toThrow("element 0 of the input is not a finite number");
    // A hole (not from JSON, but from a library caller) is no number either.
    // eslint-disable-next-line no-sparse-arrays
    expect(() => encodeInput("doubles", [1, , 3])).toThrow("element 1 of the input is not a finite number");
    expect(() => encodeInput("doubles", { length: 1, 0: 1 })).toThrow("input of type doubles must be a JSON array of numbers");
  });
});
