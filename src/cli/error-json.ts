/**
 * The JSON form of an error under `--json`: `{ error, code, hint, details }` on stdout. Its own
 * module, free of the terminal styling, so commander's usage errors (reported synchronously while it
 * parses) and the commands' own errors print the same shape.
 */
import { ClipperError } from "../errors.js";

/** One line of JSON for `err`; an error that is not ours has code INTERNAL. */
export function errorJson(err: unknown): string {
  const known = err instanceof ClipperError;
  const message = err instanceof Error ? err.message : String(err);
  // Some errors carry what the failing thing printed (a build step's pip error, for one).
  const details = errorDetails(err);
  return `${JSON.stringify({ error: message, code: known ? err.code : "INTERNAL", hint: known ? err.hint : undefined, details: details || undefined })}\n`;
}

/** What a ClipperError carries beyond its message (a build step's output, a traceback), trimmed; "" when nothing. */
export function errorDetails(err: unknown): string {
  return err instanceof ClipperError && "details" in err && typeof err.details === "string" ? err.details.trim() : "";
}
