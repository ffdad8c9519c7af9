/** What the query API answers for a batch, asserting every answer came from the model (no default). */
import { expect } from "vitest";
import type { ClipperConnection } from "../../src/connection.js";

export async function batchAnswers(conn: ClipperConnection, app: string, inputs: unknown[]): Promise<unknown[]> {
  const reply = await conn.predict(app, { input_batch: inputs });
  expect(reply.status).toBe(200);
  const body = reply.body as { batch_predictions?: Array<{ output: unknown; default: boolean }>; output?: unknown; default?: boolean };
  const predictions = body.batch_predictions ?? [{ output: body.output, default: body.default ?? true }];
  for (const p of predictions) expect(p.default, JSON.stringify(body)).toBe(false);
  return predictions.map((p) => p.output);
}
