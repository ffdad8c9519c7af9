/**
 * commander's own usage errors (an unknown option, a missing argument, a bad value) under `--json`:
 * the same `{ error, code, hint }` on stdout and the same exit code as every other usage error,
 * instead of commander's text on stderr.
 */
import type { Command } from "@commander-js/extra-typings";
import { ClipperError } from "../errors.js";

/** The user's arguments (after node and the script) up to a `--` that ends the options. */
function userArgs(argv: readonly string[]): readonly string[] {
  const args = argv.slice(2);
  const end = args.indexOf("--");
  return end < 0 ? args : args.slice(0, end);
}

/** Whether the command line asks for JSON: `--json` anywhere among its options, as commander would read it. */
export function jsonRequested(argv: readonly string[]): boolean {
  return userArgs(argv).includes("--json");
}

/** `start` or `api-key create`: the (sub)command the arguments name, for the hint; "" when none. */
export function commandPathOf(program: Command, argv: readonly string[]): string {
  const path: string[] = [];
  let at: Command = program as Command;
  for (const arg of userArgs(argv)) {
    if (arg.startsWith("-")) continue;
    const sub = at.commands.find((c) => c.name() === arg || c.aliases().includes(arg)) as Command | undefined;
    if (!sub) break;
    path.push(sub.name());
    at = sub;
  }
  return path.join(" ");
}

/** commander's message ("error: unknown option '--x'") as our usage error, with where to read the usage. */
export function commanderUsageError(message: string, commandPath: string): ClipperError {
  const help = commandPath ? `clipper ${commandPath} --help` : "clipper --help";
  return new ClipperError("USAGE", message.replace(/^error: /, "").trim(), `run \`${help}\` for usage`);
}
