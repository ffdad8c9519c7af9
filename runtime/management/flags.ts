/** Command-line flags of the management daemon (kept apart from main.ts so they can be tested). */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_REPLICA_REPORT_TTL_MS,
  DEFAULT_WATCH_KEEPALIVE_MS,
  type ManagementServerOptions,
} from "./server.js";

export const USAGE = `usage: management --state-dir DIR [--host 127.0.0.1] [--port 1338] [--token-file FILE]
                  [--max-body-bytes ${DEFAULT_MAX_BODY_BYTES}] [--watch-keepalive-ms ${DEFAULT_WATCH_KEEPALIVE_MS}]
                  [--replica-ttl-ms ${DEFAULT_REPLICA_REPORT_TTL_MS}]`;

/** A flag the daemon cannot use; main prints the message on one line and exits 2. */
export class FlagError extends Error {
  override name = "FlagError";
}

export type ParsedFlags = { help: true } | { help: false; options: Omit<ManagementServerOptions, "logger"> };

export function parseFlags(argv: string[]): ParsedFlags {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        host: { type: "string", default: "127.0.0.1" },
        port: { type: "string", default: "1338" },
        "state-dir": { type: "string" },
        "token-file": { type: "string" },
        "max-body-bytes": { type: "string", default: String(DEFAULT_MAX_BODY_BYTES) },
        "watch-keepalive-ms": { type: "string", default: String(DEFAULT_WATCH_KEEPALIVE_MS) },
        "replica-ttl-ms": { type: "string", default: String(DEFAULT_REPLICA_REPORT_TTL_MS) },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (err) {
    throw new FlagError((err as Error).message);
  }
  if (values.help) return { help: true };

  const stateDir = values["state-dir"];
  if (!stateDir) throw new FlagError("--state-dir is required");
  if (values.host.trim() === "") throw new FlagError("--host must not be empty");
  return {
    help: false,
    options: {
      host: values.host,
      port: integerFlag("--port", values.port, 0, 65_535),
      stateDir,
      token: values["token-file"] === undefined ? undefined : readToken(values["token-file"]),
      maxBodyBytes: integerFlag("--max-body-bytes", values["max-body-bytes"], 1, 2 ** 31 - 1),
      watchKeepaliveMs: integerFlag("--watch-keepalive-ms", values["watch-keepalive-ms"], 1, 2 ** 31 - 1),
      replicaReportTtlMs: integerFlag("--replica-ttl-ms", values["replica-ttl-ms"], 1, 2 ** 31 - 1),
    },
  };
}

function integerFlag(name: string, raw: string, min: number, max: number): number {
  const value = /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new FlagError(`${name} must be an integer from ${min} to ${max}, got '${raw}'`);
  }
  return value;
}

/** The token is the file's contents without surrounding whitespace (a trailing newline is usual). */
function readToken(path: string): string {
  let token: string;
  try {
    token = readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new FlagError(`cannot read --token-file ${path}: ${(err as Error).message}`);
  }
  if (token === "") throw new FlagError(`--token-file ${path} is empty`);
  return token;
}
