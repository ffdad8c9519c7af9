/**
 * How commands report: a human view (colours only on a terminal, via chalk's own detection) or
 * `--json` (one JSON document on stdout). Errors are one line on stderr with an optional hint.
 */
import chalk from "chalk";
import { ClipperError } from "../errors.js";
import { errorDetails, errorJson } from "./error-json.js";

export interface OutputOptions {
  json?: boolean;
}

/** Prints a result: its JSON form with --json, else the human text. */
export function emit(options: OutputOptions, json: unknown, human: string | string[]): void {
  if (options.json) {
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    return;
  }
  const lines = Array.isArray(human) ? human : [human];
  if (lines.length > 0) process.stdout.write(`${lines.join("\n")}\n`);
}

/** A plain text table with aligned columns. */
export function table(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [chalk.bold(line(headers)), ...rows.map(line)];
}

export const style = {
  ok: (s: string) => chalk.green(s),
  dim: (s: string) => chalk.dim(s),
  bold: (s: string) => chalk.bold(s),
  cmd: (s: string) => chalk.cyan(s),
};

/** Reports an error and returns the exit code: one line, a hint, never a stack trace. */
export function reportError(err: unknown, options: OutputOptions): number {
  const known = err instanceof ClipperError;
  const message = err instanceof Error ? err.message : String(err);
  const code = known ? err.exitCode : 1;
  const details = errorDetails(err);
  if (options.json) {
    process.stdout.write(errorJson(err));
  } else {
    process.stderr.write(`${chalk.red("error:")} ${message.split("\n")[0]}\n`);
    if (details) process.stderr.write(`${details.split("\n").map((l) => `  ${chalk.dim("|")} ${l}`).join("\n")}\n`);
    if (known && err.hint) process.stderr.write(`${chalk.dim("hint:")} ${err.hint}\n`);
  }
  if (!known && process.env.CLIPPER_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return code;
}

/** A warning on stderr, one line (also under --json, whose stdout stays machine-readable). */
export function warn(message: string): void {
  process.stderr.write(`${style.bold("warning:")} ${message}\n`);
}
