/**
 * Process entry of the management daemon: `node dist/runtime/management/main.js --state-dir DIR`.
 * Exit codes: 0 after SIGTERM/SIGINT, 1 when it cannot start (port taken, a state file that cannot be
 * loaded and no kept generation that can),
 * 2 for a bad flag.
 */
import { isLoopbackHost } from "../shared/loopback.js";
import { createLogger } from "../shared/logger.js";
import { runMain } from "../shared/runtime-flags.js";
import { parseFlags, USAGE } from "./flags.js";
import { startManagementServer } from "./server.js";

await runMain("management", async () => {
  const parsed = parseFlags(process.argv.slice(2));
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
    throw err;
  }

  // Logged last: whoever waits for this line may signal us at once (runMain already listens).
  log.info({ url: server.url, stateDir: options.stateDir }, "management daemon listening");
  return {
    async stop(signal) {
      log.info({ signal }, "shutting down");
      try {
        await server.close();
      } catch (err) {
        log.error({ err }, "error while closing");
        throw err;
      }
    },
  };
});
