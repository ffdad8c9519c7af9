/**
 * The warm-up spec (runtime/shared/warmup.ts, src/deployment-env.ts): what deploy-model puts in a
 * deployment's replica env, what the runtimes read back, and that the Python runtime encodes the
 * warm-up input byte for byte as the query API (and so the Node runtime) does.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { encodeInput, INPUT_TYPES, type InputType } from "../runtime/shared/input-types.js";
import {
  DEFAULT_WARMUP_BATCHES, MAX_WARMUP_INPUT_CHARS, MAX_WARMUP_INPUTS, WarmupSpecError, warmupEnv, warmupFromEnv,
} from "../runtime/shared/warmup.js";
import { deploymentEnv } from "../src/deployment-env.js";
import { ClipperError } from "../src/errors.js";
import { PYTHON, pythonRuntimeEnv, pythonSkipReason } from "./support/python.js";

const SAMPLES: Array<[InputType, unknown]> = [
  ["doubles", [1, -2.5, 1e300]],
  ["floats", [0.1, 3, 1e39]],
  ["integers", [0, -1, 2147483647, 2.0]],
  ["strings", "héllo \u2603 \u{1F600}"],
  ["strings", "lone \ud800 surrogate"],
  ["bytes", "AAEC/w=="],
];

describe("warm-up spec", () => {
  it("round-trips every input type through the replica env into the bytes a query would carry", () => {
    for (const [type, input] of SAMPLES) {
      const env = warmupEnv(type, input, undefined);
      expect(env.CLIPPER_WARMUP_BATCHES).toBe(String(DEFAULT_WARMUP_BATCHES));
      expect(warmupFromEnv(type, env)).toEqual({ inputs: [encodeInput(type, input)], batches: DEFAULT_WARMUP_BATCHES });
    }
    expect(warmupEnv("doubles", undefined, undefined)).toEqual({});
    expect(warmupFromEnv("doubles", {})).toBeUndefined();
  });

  it("carries recorded inputs as one batch of them all, bounded in count and size", () => {
    for (const type of INPUT_TYPES) {
      const inputs = SAMPLES.filter(([t]) => t === type).map(([, input]) => input);
      const env = warmupEnv(type, undefined, 2, inputs);
      expect(Object.keys(env).sort()).toEqual(["CLIPPER_WARMUP_BATCHES", "CLIPPER_WARMUP_INPUTS"]);
      expect(warmupFromEnv(type, env)).toEqual({ inputs: inputs.map((x) => encodeInput(type, x)), batches: 2 });
    }
    expect(() => warmupEnv("doubles", [1], undefined, [[1]])).toThrow(/either as one input or as recorded inputs/);
    expect(() => warmupEnv("doubles", undefined, undefined, [])).toThrow(/1 to 256 recorded inputs, got 0/);
    expect(() => warmupEnv("doubles", undefined, undefined, Array.from({ length: MAX_WARMUP_INPUTS + 1 }, () => [1]))).toThrow(/got 257/);
    expect(() => warmupEnv("doubles", undefined, undefined, [[1], "x"])).toThrow(/does not fit input type doubles/);
    expect(() => warmupEnv("strings", undefined, 1, ["x".repeat(MAX_WARMUP_INPUT_CHARS / 2), "y".repeat(MAX_WARMUP_INPUT_CHARS / 2)]))
      .toThrow(/the warm-up inputs are \d+ characters of JSON; at most 65536/);
    expect(() => warmupFromEnv("doubles", { CLIPPER_WARMUP_INPUT: "[1]", CLIPPER_WARMUP_INPUTS: "[[1]]" })).toThrow(/are both set/);
    expect(() => warmupFromEnv("doubles", { CLIPPER_WARMUP_INPUTS: "[1]" })).toThrow(/does not fit input type doubles/);
    expect(() => warmupFromEnv("doubles", { CLIPPER_WARMUP_INPUTS: "{}" })).toThrow(/must be a JSON array of 1 to 256 inputs/);
    expect(() => warmupFromEnv("doubles", { CLIPPER_WARMUP_INPUTS: "[" })).toThrow(/CLIPPER_WARMUP_INPUTS is not JSON/);
    // A variable set by hand beside the recorded inputs would make the runtime refuse both: refused at deploy.
    expect(() => deploymentEnv("doubles", { env: { CLIPPER_WARMUP_INPUT: "[2]" }, warmupInputs: [[1]] })).toThrow(/--env CLIPPER_WARMUP_INPUT, not both/);
  });

  it("refuses inputs of the wrong type, batch counts out of range, batches alone, and oversized inputs", () => {
    expect(() => warmupEnv("doubles", "1,2", undefined)).toThrow(/does not fit input type doubles: input of type doubles must be a JSON array/);
    expect(() => warmupEnv("integers", [1.5], 3)).toThrow(/not a 32-bit integer/);
    expect(() => warmupEnv("bytes", "not base64!", 3)).toThrow(/base64/);
    expect(() => warmupEnv("doubles", [1], 0)).toThrow(/from 1 to 1000, got 0/);
    expect(() => warmupEnv("doubles", [1], 1.5)).toThrow(WarmupSpecError);
    expect(() => warmupEnv("doubles", undefined, 2)).toThrow(/need a warm-up input/);
    expect(() => warmupEnv("strings", "x".repeat(MAX_WARMUP_INPUT_CHARS), 1)).toThrow(/at most 65536/);
    expect(() => warmupFromEnv("doubles", { CLIPPER_WARMUP_INPUT: "[1]", CLIPPER_WARMUP_BATCHES: "-1" })).toThrow(/got '-1'/);
    expect(() => warmupFromEnv("doubles", { CLIPPER_WARMUP_INPUT: "{" })).toThrow(/CLIPPER_WARMUP_INPUT is not JSON/);
  });

  it("adds the warm-up to a deployment's own variables, keeps names like __proto__ as variables, and refuses a clash", () => {
    const own = JSON.parse('{"__proto__": "x", "MODE": "fast"}') as Record<string, string>;
    const env = deploymentEnv("doubles", { env: own, warmupInput: [1], warmupBatches: 2 })!;
    expect(Object.keys(env).sort()).toEqual(["CLIPPER_WARMUP_BATCHES", "CLIPPER_WARMUP_INPUT", "MODE", "__proto__"]);
    expect(Object.getPrototypeOf(env)).toBe(Object.prototype);
    expect(deploymentEnv("doubles", { env: own })).toBe(own);
    expect(() => deploymentEnv("doubles", { env: { CLIPPER_WARMUP_INPUT: "[2]" }, warmupInput: [1] })).toThrow(ClipperError);
    expect(() => deploymentEnv("strings", { warmupInput: [1] })).toThrow(expect.objectContaining({ code: "USAGE" }));
  });

  const skip = pythonSkipReason([]);
  it.skipIf(skip !== undefined)("the Python runtime encodes each warm-up input exactly as the query API does", () => {
    const cases = SAMPLES.map(([type, input]) => ({ type, json: JSON.stringify(input) }));
    const script = [
      "import json, sys",
      "from clipper_runtime.warmup import warmup_from_env",
      "for c in json.loads(sys.argv[1]):",
      "    print(warmup_from_env(c['type'], {'CLIPPER_WARMUP_INPUT': c['json']})[0][0].hex())",
      // The same inputs as recorded ones, each in a list of two: both come back, in order.
      "    raws, batches = warmup_from_env(c['type'], {'CLIPPER_WARMUP_INPUTS': '[' + c['json'] + ',' + c['json'] + ']', 'CLIPPER_WARMUP_BATCHES': '2'})",
      "    print(','.join(r.hex() for r in raws), batches)",
    ].join("\n");
    const r = spawnSync(PYTHON, ["-c", script, JSON.stringify(cases)], { env: pythonRuntimeEnv(), encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual(SAMPLES.flatMap(([type, input]) => {
      const hex = encodeInput(type, input).toString("hex");
      return [hex, `${hex},${hex} 2`];
    }));
    expect(INPUT_TYPES.every((t) => SAMPLES.some(([s]) => s === t))).toBe(true);
  });
});
