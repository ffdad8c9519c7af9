/**
 * Flag parsing and the process entry for the runtime processes (frontend, management daemon):
 * strict, with one-line errors and exit code 2 on bad input, since these run unattended under a
 * manager.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { allowedHostsList } from "./host-check.js";

/** A flag the process cannot use; runMain prints the message on one line and exits 2. */
export class FlagError extends Error {
  override name = "FlagError";
}

export type FlagSpec =
  | { type: "string"; default?: string; short?: string }
  | { type: "boolean"; default?: boolean; short?: string };

export type FlagValues<S extends Record<string, FlagSpec>> = {
  [K in keyof S]: S[K] extends { type: "boolean" } ? boolean | undefined : string | undefined;
};

/** Parses `argv` strictly (no positionals, no unknown flags); every problem is a FlagError. */
export function parseFlags<S extends Record<string, FlagSpec>>(argv: string[], spec: S): FlagValues<S> {
  try {
    const { values } = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false });
    return values as unknown as FlagValues<S>;
  } catch (err) {
    throw new FlagError(err instanceof Error ? err.message : String(err));
  }
}

export function requireFlag(name: string, value: string | undefined): string {
  if (value === undefined || value === "") throw new FlagError(`--${name} is required`);
  return value;
}

/** An integer flag within bounds (ports, sizes, timeouts); `fallback` when the flag is absent. */
export function intFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new FlagError(`--${name} must be an integer from ${min} to ${max}, got '${value}'`);
  }
  return n;
}

/**
 * The token in a token file: its contents without surrounding whitespace (a trailing newline is
 * usual); undefined when no file is given. `flag` names the flag in messages.
 */
export function readTokenFile(path: string | undefined, flag = "token-file"): string | undefined {
  if (path === undefined) return undefined;
  let token: string;
  try {
    token = readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new FlagError(`cannot read --${flag} ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (token === "") throw new FlagError(`--${flag} ${path} is empty`);
  return token;
}

/** `--allowed-hosts`: a comma list of hostnames, or `*` (shared/host-check.ts); absent: none. */
export function allowedHostsFlag(value: string | undefined): string[] {
  if (value === undefined) return [];
  try {
    return allowedHostsList(value);
  } catch (err) {
    throw new FlagError(`--allowed-hosts: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** A flag with a fixed set of values; `fallback` when absent. */
export function choiceFlag<T extends string>(name: string, value: string | undefined, choices: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw new FlagError(`--${name} must be one of ${choices.join(", ")}, got '${value}'`);
}

/** What a process entry leaves running; `stop` is called once, on SIGTERM or SIGINT. */
export interface Running {
  stop(signal: NodeJS.Signals): Promise<void>;
}

export interface RunMainOptions {
  /** A stop that takes longer than this exits 1 anyway (default 10 s). */
  shutdownGraceMs?: number;
}

export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;

/**
 * Runs a process entry. `main` parses flags and starts the process; it resolves with what to stop,
 * or with nothing when there is nothing to run (e.g. it printed --help). Exit codes: 2 for a
 * FlagError (one line on stderr), 1 when `main` fails or stopping fails or outlasts the grace
 * period, 0 after a clean stop on SIGTERM/SIGINT. The signal handlers are in place before `main`
 * runs, so a process that announces it is ready from inside `main` can be signalled at once; a
 * signal during startup stops the process as soon as it has started.
 */
export async function runMain(
  name: string,
  main: () => Promise<Running | void>,
  options: RunMainOptions = {},
): Promise<void> {
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    const graceMs = options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
    setTimeout(() => {
      process.stderr.write(`${name}: did not stop within ${graceMs} ms\n`);
      process.exit(1);
    }, graceMs).unref();
    // A failed start exits from the catch below.
    started
      .catch(() => new Promise<never>(() => undefined))
      .then((running) => running?.stop(signal))
      .then(
        () => process.exit(0),
        (err: unknown) => {
          process.stderr.write(`${name}: error while stopping: ${err instanceof Error ? err.message : String(err)}\n`);
          process.exit(1);
        },
      );
  };
  const onSigterm = () => shutdown("SIGTERM");
  const onSigint = () => shutdown("SIGINT");
  process.on("SIGTERM", onSigterm);
  process.on("SIGINT", onSigint);
  const started = main();

  let running: Running | void;
  try {
    running = await started;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof FlagError) {
      process.stderr.write(`${name}: ${message} (--help for usage)\n`);
      process.exit(2);
    }
    process.stderr.write(`${name}: ${message}\n`);
    process.exit(1);
  }
  if (!running && !stopping) {
    process.off("SIGTERM", onSigterm);
    process.off("SIGINT", onSigint);
  }
}
