/** test-predict: run a predict function here on an input (or a batch), as a replica would, before deploying it. */
import { ClipperError, PredictFailedError } from "../../errors.js";
import type { ModelFramework } from "../../managers/container-manager.js";
import { emit, style, type OutputOptions } from "../output.js";
import { describePython } from "../../python/interpreter.js";

export interface TestPredictFlags extends OutputOptions {
  framework?: ModelFramework;
  predict: string;
  inputType: string;
  input: unknown;
  batch?: boolean;
  modelPath?: string;
  python?: string;
  timeoutMs?: number;
}

export async function testPredict(options: TestPredictFlags): Promise<void> {
  const { testPredictFunction } = await import("../../functions/test-predict.js");
  if (options.batch && !Array.isArray(options.input)) throw new ClipperError("USAGE", "--batch needs a JSON array of inputs");
  let result;
  try {
    result = await testPredictFunction({
      predict: options.predict,
      inputType: options.inputType,
      ...(options.batch ? { inputs: options.input as unknown[] } : { input: options.input }),
      ...(options.framework ? { framework: options.framework } : {}),
      ...(options.modelPath ? { modelPath: options.modelPath } : {}),
      ...(options.python ? { python: options.python } : {}),
      ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
    });
  } catch (err) {
    // What the function printed before it failed, then the error and its traceback (reportError).
    if (err instanceof PredictFailedError && err.log && err.log !== err.traceback && !options.json) {
      process.stderr.write(`${err.log}\n`);
    }
    throw err;
  }
  if (result.log && !options.json) process.stderr.write(`${style.dim(result.log)}\n`);
  // stdout holds only the outputs; which Python ran them goes to stderr.
  if (result.interpreter && !options.json) process.stderr.write(`${style.dim(`Python: ${describePython(result.interpreter)}`)}\n`);
  emit(options, { outputs: result.outputs, answers: result.answers, ...(result.interpreter ? { interpreter: result.interpreter } : {}) }, result.outputs);
}
