/**
 * Process entry of the management daemon: `node dist/runtime/management/main.js --state-dir DIR`.
 * Exit codes: 0 after SIGTERM/SIGINT, 1 when it cannot start (port taken, corrupt state file),
 * 2 for a bad flag.
 */
import { isLoopbackHost } from "../shared/loopback.js";
import { createLogger } from "../shared/logger.js";
import { FlagError, parseFlags, USAGE } from "./flags.js";
import { startManagementServer } from "./server.js";

const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseFlags(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    process.stderr.write(`management: ${err.message} (--help for usage)\n`);
    process.exit(2);
  }
  if (parsed.help) {
    process.stdout.write(USAGE + "\n");
    return;
  }

  const log = createLogger("management");
  const { options } = parsed;
  if (!isLoopbackHost(options.host) && !options.token) {
    log.warn({ host: options.host }, "listening beyond loopback without --token-file: anyone who can reach this port can change the cluster");
  }

  let server;
  try {
    server = await startManagementServer({ ...options, logger: log });
  } catch (err) {
    log.error({ err }, "cannot start");
    process.stderr.write(`management: ${(err as Error).message}\n`);
    process.exit(1);
  }

  const stop = (signal: string) => {
    log.info({ signal }, "shutting down");
    setTimeout(() => process.exit(1), SHUTDOWN_GRACE_MS).unref();
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "error while closing");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  // Logged last: whoever waits for this line may signal us at once.
  log.info({ url: server.url, stateDir: options.stateDir }, "management daemon listening");
}

await main();
