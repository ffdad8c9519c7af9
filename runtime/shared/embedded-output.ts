/**
 * How an output (a model's text, or an application's default output) appears in a query's answer
 * and in the query log: embedded as JSON when it parses as JSON, else as a string. Shared by the
 * frontend, which embeds, and by replay (src/replay.ts), which compares a replayed output with a
 * recorded one on the same terms.
 */

/** A model output (or default output) that parses as JSON is embedded as JSON, else as a string. */
export function embedOutput(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
