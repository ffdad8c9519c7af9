/** Command-line flags of the management daemon (kept apart from main.ts so they can be tested). */
import { defaultMaxConnections, MAX_MAX_CONNECTIONS } from "../shared/connection-limit.js";
import { allowedHostsFlag, FlagError, intFlag, parseFlags as parseFlagValues, readTokenFile, requireFlag } from "../shared/runtime-flags.js";
import {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_REPLICA_REPORT_TTL_MS,
  DEFAULT_WATCH_KEEPALIVE_MS,
  type ManagementServerOptions,
} from "./server.js";

export { FlagError };

export const USAGE = `usage: management --state-dir DIR [--host 127.0.0.1] [--port 1338] [--token-file FILE]
                  [--allowed-hosts NAME,... (Host names admitted besides loopback names and IP addresses; '*': any)]
                  [--max-body-bytes ${DEFAULT_MAX_BODY_BYTES}] [--watch-keepalive-ms ${DEFAULT_WATCH_KEEPALIVE_MS}]
                  [--replica-ttl-ms ${DEFAULT_REPLICA_REPORT_TTL_MS}]
                  [--max-connections N (open HTTP connections; default ${defaultMaxConnections()}: the descriptor limit less a tenth, at least 128)]`;

const DEFAULT_PORT = 1338;
const MAX_INT32 = 2 ** 31 - 1;

export type ParsedFlags = { help: true } | { help: false; options: Omit<ManagementServerOptions, "logger"> };

/** Throws FlagError for anything the daemon cannot use. */
export function parseFlags(argv: string[]): ParsedFlags {
  const values = parseFlagValues(argv, {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    "state-dir": { type: "string" },
    "token-file": { type: "string" },
    "allowed-hosts": { type: "string" },
    "max-body-bytes": { type: "string" },
    "watch-keepalive-ms": { type: "string" },
    "replica-ttl-ms": { type: "string" },
    "max-connections": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  });
  if (values.help) return { help: true };

  const stateDir = requireFlag("state-dir", values["state-dir"]);
  const host = values.host ?? "127.0.0.1";
  if (host.trim() === "") throw new FlagError("--host must not be empty");
  return {
    help: false,
    options: {
      host,
      port: intFlag("port", values.port, DEFAULT_PORT, 0, 65_535),
      stateDir,
      token: readTokenFile(values["token-file"]),
      allowedHosts: allowedHostsFlag(values["allowed-hosts"]),
      maxBodyBytes: intFlag("max-body-bytes", values["max-body-bytes"], DEFAULT_MAX_BODY_BYTES, 1, MAX_INT32),
      watchKeepaliveMs: intFlag("watch-keepalive-ms", values["watch-keepalive-ms"], DEFAULT_WATCH_KEEPALIVE_MS, 1, MAX_INT32),
      replicaReportTtlMs: intFlag("replica-ttl-ms", values["replica-ttl-ms"], DEFAULT_REPLICA_REPORT_TTL_MS, 1, MAX_INT32),
      maxConnections: intFlag("max-connections", values["max-connections"], defaultMaxConnections(), 1, MAX_MAX_CONNECTIONS),
    },
  };
}
