/**
 * Runs a Node predict module on a batch of JSON inputs, outside any cluster, through the Node
 * runtime's own code: the loader (load-predict: TypeScript bundled with esbuild), the frontend's
 * input encoding (JSON -> RPC frame bytes) and the runtime's decoding, the call, and the output
 * serialization (predict-handler). The same interface as the Python runtime's
 * `python -m clipper_runtime.test_predict`:
 *
 *   node test-predict-child.js --predict FILE[:fn] --input-type TYPE [--model-path DIR]
 *   stdin:  a JSON array of inputs
 *   stdout: one JSON line, {"ok": true, "outputs": [...]} or {"ok": false, "error": "...", "traceback": "..."}
 *   exit:   0 answered, 1 the module or predict failed, 2 bad arguments or inputs
 *
 * Whatever the model prints on stdout is sent to stderr, so that stdout holds only the answer.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { parseArgs } from "node:util";
import { canonicalInputType, encodeInput } from "../../runtime/shared/input-types.js";
import { parsePredictSpec } from "../../runtime/container-node/env.js";
import { loadPredict } from "../../runtime/container-node/load-predict.js";
import { createPredictHandler } from "../../runtime/container-node/predict-handler.js";
import { packageRoot } from "../../runtime/shared/package-root.js";

const writeAnswer = process.stdout.write.bind(process.stdout);
// The model's own prints go to stderr.
process.stdout.write = process.stderr.write.bind(process.stderr) as typeof process.stdout.write;

function finish(code: number, answer: Record<string, unknown>): void {
  writeAnswer(`${JSON.stringify(answer)}\n`, () => process.exit(code));
}

function fail(code: 1 | 2, error: string, traceback?: string): void {
  finish(code, { ok: false, error, ...(traceback ? { traceback } : {}) });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** The stack of what the model threw, without the frames of this package's own code below it. */
function stackOf(err: unknown): string | undefined {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  if (!(cause instanceof Error) || !cause.stack) return undefined;
  const ours = `${packageRoot()}/dist/`;
  return cause.stack.split("\n").filter((line) => !(/^\s+at /.test(line) && line.includes(ours))).join("\n");
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({
      options: { predict: { type: "string" }, "input-type": { type: "string" }, "model-path": { type: "string" } },
      strict: true,
    }).values;
  } catch (err) {
    return fail(2, (err as Error).message);
  }
  if (!args.predict) return fail(2, "--predict FILE[:function] is required");
  const inputType = canonicalInputType(args["input-type"] ?? "");
  if (!inputType) return fail(2, `unknown input type '${args["input-type"] ?? ""}' (use one of bytes, integers, floats, doubles, strings)`);

  let inputs: unknown;
  try {
    inputs = JSON.parse(await readStdin());
  } catch (err) {
    return fail(2, `stdin is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(inputs)) return fail(2, "stdin must be a JSON array of inputs");
  let frames: Buffer[];
  try {
    frames = inputs.map((input, i) => {
      try {
        return encodeInput(inputType, input);
      } catch (err) {
        throw new Error(`input ${i}: ${(err as Error).message}`);
      }
    });
  } catch (err) {
    return fail(2, (err as Error).message);
  }

  let spec;
  try {
    spec = parsePredictSpec(args.predict);
  } catch (err) {
    return fail(2, (err as Error).message);
  }
  const file = spec.file && isAbsolute(spec.file) ? spec.file : resolve(spec.file ?? ".");
  const modelPath = resolve(args["model-path"] ?? (spec.file ? dirname(file) : "."));
  // What the runtime sees in a replica.
  Object.assign(process.env, {
    CLIPPER_MODEL_NAME: process.env.CLIPPER_MODEL_NAME ?? "test-predict",
    CLIPPER_MODEL_VERSION: process.env.CLIPPER_MODEL_VERSION ?? "1",
    CLIPPER_INPUT_TYPE: inputType,
    CLIPPER_MODEL_PATH: modelPath,
    ...(spec.file ? { CLIPPER_PREDICT: `${file}:${spec.exportName}` } : {}),
  });

  let loaded;
  try {
    loaded = await loadPredict({ file: spec.file ? file : undefined, exportName: spec.exportName }, modelPath);
  } catch (err) {
    return fail(1, (err as Error).message, stackOf(err));
  }
  const handler = createPredictHandler({
    predict: loaded.predict,
    modelName: process.env.CLIPPER_MODEL_NAME!,
    modelVersion: process.env.CLIPPER_MODEL_VERSION!,
    inputType,
  });
  try {
    const outputs = await handler({ msgId: 0, inputType, inputs: frames });
    finish(0, { ok: true, outputs });
  } catch (err) {
    fail(1, (err as Error).message, stackOf(err));
  }
}

main().catch((err: unknown) => fail(1, err instanceof Error ? err.message : String(err), stackOf(err)));
