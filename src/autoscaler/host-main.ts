/**
 * Entry point of the autoscaler host (`node dist/src/autoscaler/host-main.js` in the runtime image):
 * configured by its environment (host.ts, HOST_ENV), logs JSON lines to stdout like the other
 * runtime processes. SIGTERM or SIGINT stop the loop, waiting for a round in progress, then exit 0.
 */
import { createLogger } from "../../runtime/shared/logger.js";
import { HostConfigError, hostConfigFromEnv, startAutoscalerHost } from "./host.js";
import type { AutoscaleLoop } from "./loop.js";

const log = createLogger("autoscaler");

function fatal(err: unknown): never {
  if (err instanceof HostConfigError) log.fatal(err.message);
  else log.fatal({ err: err instanceof Error ? err.stack : String(err) }, "autoscaler failed");
  process.exit(err instanceof HostConfigError ? 2 : 1);
}

let loop: AutoscaleLoop | undefined;
let stopping = false;

function stopAndExit(signal: string): void {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "signal received; stopping the autoscaler");
  (loop?.stop() ?? Promise.resolve()).then(() => process.exit(0), fatal);
}

process.on("SIGTERM", () => stopAndExit("SIGTERM"));
process.on("SIGINT", () => stopAndExit("SIGINT"));
process.on("uncaughtException", fatal);
process.on("unhandledRejection", fatal);

try {
  const config = hostConfigFromEnv(process.env);
  loop = await startAutoscalerHost(config, {
    log: (level, message, fields) => log[level](fields ?? {}, message),
  });
} catch (err) {
  fatal(err);
}
