/**
 * Reading the runtime's log lines back: every component (the daemon, the frontend, the supervisor,
 * the Node and Python model runtimes) writes one JSON object per line with `level` (pino's numbers),
 * `time` (ms since the epoch), `component` and `msg`. Errors shown to a user quote the message of
 * the last line a component wrote, not the JSON around it, and skip the supervisor's own lines
 * (written into each child's log when it starts it or sees it exit).
 */

/** The component name of the supervisor's lines, in its own log and in its children's. */
export const SUPERVISOR_COMPONENT = "supervisor";

export interface LogRecord {
  level: number;
  time: number;
  component: string;
  msg: string;
  /** A stack trace or traceback, when the line carries one. */
  stack?: string;
}

/** pino's level numbers, as a person reads them. */
const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };

/** A line as the runtime writes it; undefined for anything else (a print, a traceback, a partial line). */
export function parseLogLine(line: string): LogRecord | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    if (typeof o.level !== "number" || typeof o.time !== "number" || typeof o.component !== "string" || typeof o.msg !== "string") return undefined;
    return { level: o.level, time: o.time, component: o.component, msg: o.msg, ...(typeof o.stack === "string" ? { stack: o.stack } : {}) };
  } catch {
    return undefined;
  }
}

/** A runtime line as a person reads it, `WARN msg` and then its stack; any other line as it is. */
export function readableLogLine(line: string): string {
  const record = parseLogLine(line);
  if (!record) return line;
  const text = `${LEVEL_NAMES[record.level] ?? `LEVEL${record.level}`} ${record.msg}`;
  return record.stack ? `${text}\n${record.stack}` : text;
}

/** Every line of a text through readableLogLine. */
export function readableLog(text: string): string {
  return text.split("\n").map(readableLogLine).join("\n");
}

/** The supervisor's lines in a child's log (and the "--- ..." ones of older versions, still in old logs). */
export function isSupervisorLine(line: string): boolean {
  return line.startsWith("--- ") || parseLogLine(line)?.component === SUPERVISOR_COMPONENT;
}

/** What the last line a component wrote says (its `msg` when it is a runtime line), shortened; the supervisor's lines skipped. */
export function lastLogMessage(lines: readonly string[], maxLength = 200): string | undefined {
  const line = lines.map((l) => l.trim()).filter((l) => l && !isSupervisorLine(l)).at(-1);
  if (line === undefined) return undefined;
  const text = parseLogLine(line)?.msg ?? line;
  return text.length > maxLength ? `${text.slice(0, maxLength)}…` : text;
}
