/** Structured logs for the runtime processes (one JSON line per event, on stdout). */
import { pino, type Logger } from "pino";

export function createLogger(component: string): Logger {
  return pino({ base: { component }, level: process.env.CLIPPER_LOG_LEVEL ?? "info" });
}
export type { Logger };
