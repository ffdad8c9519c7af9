/**
 * Entry point of a cluster's supervisor process: `node supervisor-main.js --config <file>`.
 * Started detached by LocalContainerManager.startClipper; logs JSON lines to stdout (the
 * manager points it at logs/supervisor.log). SIGTERM or SIGINT stop every child, then exit.
 */
import { readFileSync } from "node:fs";
import { createLogger } from "../../../runtime/shared/logger.js";
import { SUPERVISOR_COMPONENT } from "../../log-lines.js";
import { describeIssues, SupervisorConfigSchema } from "./schemas.js";
import { Supervisor } from "./supervisor.js";

function fail(message: string): never {
  process.stderr.write(`clipper supervisor: ${message}\n`);
  process.exit(2);
}

function readConfig(argv: string[]) {
  const at = argv.indexOf("--config");
  const file = at >= 0 ? argv[at + 1] : undefined;
  if (!file) fail("usage: supervisor-main.js --config <file>");
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    fail(`cannot read ${file}: ${(err as Error).message}`);
  }
  const parsed = SupervisorConfigSchema.safeParse(raw);
  if (!parsed.success) fail(`invalid configuration in ${file}: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

const config = readConfig(process.argv.slice(2));
const log = createLogger(SUPERVISOR_COMPONENT);
const supervisor = new Supervisor(config, { log, exit: (code) => process.exit(code) });

let stopping = false;
function stopAndExit(signal: string): void {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "signal received");
  supervisor
    .shutdown(true)
    .catch((err: unknown) => {
      log.error({ err: (err as Error).stack }, "shutdown failed");
      supervisor.emergencyStop();
    })
    .finally(() => {
      supervisor.closeControl();
      process.exit(0);
    });
}

function crash(err: unknown): void {
  log.fatal({ err: err instanceof Error ? err.stack : String(err) }, "supervisor failed; stopping children");
  supervisor.emergencyStop();
  process.exit(1);
}

process.on("SIGTERM", () => stopAndExit("SIGTERM"));
process.on("SIGINT", () => stopAndExit("SIGINT"));
process.on("SIGHUP", () => log.info("SIGHUP ignored"));
process.on("uncaughtException", crash);
process.on("unhandledRejection", crash);

supervisor.start().catch(crash);
