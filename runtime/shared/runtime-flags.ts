/**
 * Flag parsing for the runtime processes (frontend, management daemon): strict, with one-line
 * errors and exit code 2 on bad input, since these run unattended under a manager.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

export class FlagError extends Error {}

type Spec = Record<string, { type: "string"; default?: string }>;

export function parseFlags<S extends Spec>(argv: string[], spec: S): Record<keyof S, string | undefined> {
  try {
    const { values } = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false });
    return values as unknown as Record<keyof S, string | undefined>;
  } catch (err) {
    throw new FlagError(err instanceof Error ? err.message : String(err));
  }
}

export function requireFlag(name: string, value: string | undefined): string {
  if (value === undefined || value === "") throw new FlagError(`--${name} is required`);
  return value;
}

/** An integer flag within bounds (ports, sizes, timeouts). */
export function intFlag(name: string, value: string | undefined, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new FlagError(`--${name} must be a whole number, got '${value}'`);
  const n = Number(value);
  if (n < min || n > max) throw new FlagError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** Reads a token file (trimmed); undefined when no file is given. */
export function readTokenFile(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    const token = readFileSync(path, "utf8").trim();
    if (token === "") throw new FlagError(`token file ${path} is empty`);
    return token;
  } catch (err) {
    if (err instanceof FlagError) throw err;
    throw new FlagError(`cannot read token file ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Runs a process entry: a FlagError prints one line and exits 2; shutdown signals call stop. */
export async function runMain(name: string, main: () => Promise<{ stop(): Promise<void> }>): Promise<void> {
  let running: { stop(): Promise<void> };
  try {
    running = await main();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${name}: ${message}\n`);
    process.exit(err instanceof FlagError ? 2 : 1);
  }
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    running.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`${name}: error while stopping: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}
