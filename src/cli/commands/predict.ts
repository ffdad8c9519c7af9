/** predict: one query (or a batch) through the query frontend, as an application would send it. */
import { ClipperConnection, queryRejected } from "../../connection.js";
import { ClipperError } from "../../errors.js";
import { emit, type OutputOptions } from "../output.js";

/** A JSON object with input/input_batch is sent as the body; anything else is the input itself. */
function toBody(value: unknown, batch: boolean): { input: unknown } | { input_batch: unknown[] } {
  if (typeof value === "object" && value !== null && !Array.isArray(value) && ("input" in value || "input_batch" in value)) {
    return value as { input: unknown } | { input_batch: unknown[] };
  }
  if (batch) {
    if (!Array.isArray(value)) throw new ClipperError("USAGE", "--batch needs a JSON array of inputs");
    return { input_batch: value };
  }
  return { input: value };
}

export async function predict(
  app: string,
  input: unknown,
  options: OutputOptions & { cluster?: string; batch?: boolean; version?: string; apiKey?: string },
): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const reply = await conn.predict(app, toBody(input, Boolean(options.batch)), options.version, { apiKey: options.apiKey });
  if (reply.status !== 200) throw queryRejected(reply);
  emit(options, reply.body, JSON.stringify(reply.body));
}
