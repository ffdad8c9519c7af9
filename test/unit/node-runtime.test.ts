/**
 * The Node model container's pieces with no socket: parsing its environment, serializing outputs and
 * loading predict functions. The RPC client, bundling and main.js are in test/node-runtime.test.ts.
 */
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseContainerEnv, parsePredictSpec } from "../../runtime/container-node/env.js";
import { loadPredict } from "../../runtime/container-node/load-predict.js";
import { serializeOutputs } from "../../runtime/container-node/predict-handler.js";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const FIXTURES = join(ROOT, "test", "fixtures", "node-models");

describe("Node runtime pieces", () => {
  it("parses the environment with defaults and aliases", () => {
    const c = parseContainerEnv({ CLIPPER_MODEL_NAME: "m", CLIPPER_MODEL_VERSION: "1", CLIPPER_INPUT_TYPE: "str" });
    expect(c).toMatchObject({
      ip: "127.0.0.1",
      port: 7000,
      inputType: "strings",
      modelPath: "/model",
      readyFile: "/model_is_ready.check",
      heartbeatIntervalMs: 5000,
      reconnectAfterMs: 30000,
      drainTimeoutMs: 5000,
      predict: { file: undefined, exportName: "predict" },
    });
    const named = { CLIPPER_MODEL_NAME: "m", CLIPPER_MODEL_VERSION: "1" };
    expect(parseContainerEnv({ ...named, CLIPPER_DRAIN_TIMEOUT_MS: "0" }).drainTimeoutMs).toBe(0);
    expect(() => parseContainerEnv({ ...named, CLIPPER_DRAIN_TIMEOUT_MS: "-1" })).toThrow(/CLIPPER_DRAIN_TIMEOUT_MS must be an integer from 0 to 600000/);
    expect(() => parseContainerEnv({ CLIPPER_MODEL_VERSION: "1" })).toThrow(/CLIPPER_MODEL_NAME is required/);
    expect(() => parseContainerEnv({ CLIPPER_MODEL_NAME: "m", CLIPPER_MODEL_VERSION: "1", CLIPPER_PORT: "x" })).toThrow(
      /CLIPPER_PORT must be a port from 1 to 65535/,
    );
    expect(() => parseContainerEnv({ CLIPPER_MODEL_NAME: "m", CLIPPER_MODEL_VERSION: "1", CLIPPER_INPUT_TYPE: "nope" })).toThrow(
      /unknown input type 'nope'/,
    );
    expect(parsePredictSpec("model.ts:run")).toEqual({ file: "model.ts", exportName: "run" });
    expect(parsePredictSpec("/abs/model.mjs")).toEqual({ file: "/abs/model.mjs", exportName: "predict" });
    expect(parsePredictSpec("m.js:default")).toEqual({ file: "m.js", exportName: "default" });
  });

  it("serializes outputs: strings as they are, other values as JSON, and refuses the rest", () => {
    expect(serializeOutputs(["a", 1, { b: [2] }, null], 4)).toEqual(["a", "1", '{"b":[2]}', "null"]);
    expect(serializeOutputs(new Float64Array([1.5, 2]), 2)).toEqual(["1.5", "2"]);
    expect(() => serializeOutputs(["a"], 2)).toThrow(/returned 1 outputs for 2 inputs/);
    expect(() => serializeOutputs("abc", 1)).toThrow(/expected an array of 1 outputs/);
    expect(() => serializeOutputs([undefined], 1)).toThrow(/output 0 is undefined/);
    expect(() => serializeOutputs([() => 1], 1)).toThrow(/output 0 is a function/);
    expect(() => serializeOutputs([10n], 1)).toThrow(/output 0 cannot be serialized/);
  });

  it("loads named, default and CommonJS exports, and names what it found when the export is missing", async () => {
    const def = await loadPredict({ file: "default-export.mjs", exportName: "default" }, FIXTURES);
    expect(def.predict([1])).toEqual(["from default"]);
    const cjs = await loadPredict({ file: "commonjs.cjs", exportName: "predict" }, FIXTURES);
    expect(cjs.predict([Buffer.from("abc")])).toEqual([3]);
    await expect(loadPredict({ file: "not-a-function.mjs", exportName: "predict" }, FIXTURES)).rejects.toThrow(
      /not-a-function\.mjs export is a number, not a function: 'predict' \(exports found: other, predict\)/,
    );
    await expect(loadPredict({ file: "sum.mjs", exportName: "run" }, FIXTURES)).rejects.toThrow(
      /sum\.mjs has no export 'run' \(exports found: predict\)/,
    );
    await expect(loadPredict({ file: undefined, exportName: "predict" }, FIXTURES)).rejects.toThrow(
      /no predict module in .*expected one of predict\.mjs, predict\.js, predict\.ts/,
    );
  });

});
