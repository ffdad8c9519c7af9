/**
 * One recorded query as a request to one model version, and its answer judged against the recorded
 * output (docs/rollouts.md#replay-and-warm-up). The request goes to the frontend's Open Inference
 * Protocol route /v2/models/NAME/versions/V/infer, which addresses a version directly (no
 * application, so no selection policy, no canary or rollout split, and nothing is written to the
 * query log), on the version's own queue, batches and cache. Each input type travels byte for byte
 * as the query API would have encoded it: numbers as an FP64/FP32/INT32 tensor [1, n] (written as
 * float64, float32 or int32, as the query API writes them), strings as a BYTES element with
 * content_type "str", bytes as a BYTES element with content_type "base64" (the query API's base64
 * string, decoded by the frontend). The answer is asked for as text (content_type "str"), so the
 * model's output comes back exactly as it sent it.
 */
import { encodeInput, InputTypeError, type InputType } from "../runtime/shared/input-types.js";
import { embedOutput } from "../runtime/shared/embedded-output.js";

/** The OIP request body for one recorded input, or why it cannot be sent. */
export function oipRequestFor(inputType: InputType, input: unknown): { body: string } | { unsendable: string } {
  try {
    encodeInput(inputType, input);
  } catch (err) {
    if (err instanceof InputTypeError) return { unsendable: `the recorded input does not fit input type ${inputType}: ${err.message}` };
    throw err;
  }
  const outputs = [{ name: "output", parameters: { content_type: "str" } }];
  if (inputType === "strings" || inputType === "bytes") {
    const tensor = { name: "input", datatype: "BYTES", shape: [1], data: [input], parameters: { content_type: inputType === "bytes" ? "base64" : "str" } };
    return { body: JSON.stringify({ inputs: [tensor], outputs }) };
  }
  const values = input as number[];
  // An OIP tensor needs at least one element; the query API would have sent an empty frame.
  if (values.length === 0) return { unsendable: "an empty input, which an Open Inference Protocol tensor cannot carry" };
  const datatype = inputType === "doubles" ? "FP64" : inputType === "floats" ? "FP32" : "INT32";
  return { body: JSON.stringify({ inputs: [{ name: "input", datatype, shape: [1, values.length], data: values }], outputs }) };
}

/** The output text in an OIP answer asked for as text, or undefined when the body is not such an answer. */
export function oipOutputText(body: unknown): string | undefined {
  const outputs = (body as { outputs?: unknown } | null)?.outputs;
  if (!Array.isArray(outputs) || outputs.length !== 1) return undefined;
  const data = (outputs[0] as { data?: unknown } | null)?.data;
  return Array.isArray(data) && data.length === 1 && typeof data[0] === "string" ? data[0] : undefined;
}

/**
 * JSON text of a value with object keys sorted: two values with the same canonical text are equal
 * as JSON. Numbers are written in their shortest form (1.0 and 1e0 are 1).
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * Whether a replayed output (the model's text) is the recorded one. The log records an output
 * embedded as the answer embeds it (JSON when the text parses as JSON, else the string), so the
 * replayed text is embedded the same way and the two compared as JSON values: a string exactly,
 * a number by value (1 and 1.0 agree, 0.30000000000000004 and 0.3 do not), an object whatever the
 * order of its keys, an array element by element.
 */
export function sameOutput(recorded: unknown, replayedText: string): boolean {
  return canonicalJson(embedOutput(replayedText)) === canonicalJson(recorded);
}
