/**
 * Turns a user's predict function into an RPC batch handler: decodes the raw input frames, calls
 * predict(inputs, context) (sync or async), checks the result and serializes each output.
 * Every problem is a BatchError with a reason; the RPC client logs it and fails only that batch.
 */
import { ELEMENT_SIZE, decodeInput, type InputType } from "../shared/input-types.js";
import { BatchError, type BatchHandler, type PredictBatch } from "./rpc-client.js";
import type { PredictFunction } from "./load-predict.js";

/** The second argument predict receives. */
export interface PredictContext {
  /** The RPC message id of this batch. */
  msgId: number;
  inputType: InputType;
  modelName: string;
  modelVersion: string;
}

export interface PredictHandlerOptions {
  predict: PredictFunction;
  modelName: string;
  modelVersion: string;
  /** The input type this container registered with; requests of another type fail. */
  inputType: InputType;
}

export function createPredictHandler(options: PredictHandlerOptions): BatchHandler {
  const { predict, modelName, modelVersion, inputType } = options;
  return async (batch: PredictBatch): Promise<string[]> => {
    const inputs = decodeBatch(batch, inputType);
    const context: PredictContext = { msgId: batch.msgId, inputType, modelName, modelVersion };
    let result: unknown;
    try {
      result = await predict(inputs, context);
    } catch (err) {
      const message = err instanceof Error ? `${err.name}: ${err.message}` : `non-error value ${describe(err)}`;
      throw new BatchError(`predict threw ${message}`, { cause: err instanceof Error ? err : undefined });
    }
    return serializeOutputs(result, inputs.length);
  };
}

export function decodeBatch(batch: PredictBatch, inputType: InputType): Array<number[] | string | Buffer> {
  if (batch.inputType !== inputType) {
    throw new BatchError(`request has input type ${batch.inputType}, but this model takes ${inputType}`);
  }
  const size = ELEMENT_SIZE[inputType];
  return batch.inputs.map((raw, i) => {
    if (raw.length % size !== 0) {
      throw new BatchError(`input ${i} is ${raw.length} bytes, not a whole number of ${inputType} (${size} bytes each)`);
    }
    return decodeInput(inputType, raw);
  });
}

/** Strings are sent as they are; any other value as JSON. */
export function serializeOutputs(result: unknown, expected: number): string[] {
  const outputs = ArrayBuffer.isView(result) && !(result instanceof DataView) ? Array.from(result as unknown as ArrayLike<unknown>) : result;
  if (!Array.isArray(outputs)) {
    throw new BatchError(`predict returned ${describe(result)}, expected an array of ${expected} outputs`);
  }
  if (outputs.length !== expected) {
    throw new BatchError(`predict returned ${outputs.length} outputs for ${expected} inputs`);
  }
  return outputs.map((value: unknown, i) => {
    if (typeof value === "string") return value;
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch (err) {
      throw new BatchError(`output ${i} cannot be serialized to JSON: ${(err as Error).message}`);
    }
    if (text === undefined) throw new BatchError(`output ${i} is ${describe(value)}, which has no JSON form`);
    return text;
  });
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return `an array`;
  if (typeof value === "function") return "a function";
  if (typeof value === "object") return `an object (${value.constructor?.name ?? "no prototype"})`;
  return typeof value === "undefined" ? "undefined" : `a ${typeof value}`;
}
