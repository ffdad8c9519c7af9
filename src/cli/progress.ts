/**
 * Progress of a long command (a build, a rollout): its own module, so that only the commands that
 * show one load ora.
 */
import ora from "ora";
import type { OutputOptions } from "./output.js";

export interface Progress {
  /** What is happening now (a build step); a spinner shows it, a pipe gets one line. */
  update(text: string): void;
  succeed(text: string): void;
  fail(text: string): void;
}

/**
 * A spinner on a terminal; plain lines elsewhere (ora's symbols would still carry colour codes
 * into a pipe); nothing at all with --json, whose stdout must stay one JSON document.
 */
export function progress(text: string, options: OutputOptions): Progress {
  if (options.json) return { update() {}, succeed() {}, fail() {} };
  if (process.stderr.isTTY) {
    const spinner = ora({ text, stream: process.stderr }).start();
    return { update: (t) => (spinner.text = t), succeed: (t) => spinner.succeed(t), fail: (t) => spinner.fail(t) };
  }
  process.stderr.write(`${text} ...\n`);
  return {
    update: (t) => process.stderr.write(`  ${t}\n`),
    succeed: (t) => process.stderr.write(`done: ${t}\n`),
    fail: (t) => process.stderr.write(`failed: ${t}\n`),
  };
}
