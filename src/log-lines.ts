/**
 * Reading the runtime's log lines back: every component (the daemon, the frontend, the supervisor,
 * the Node and Python model runtimes) writes one JSON object per line with `level` (pino's numbers),
 * `time` (ms since the epoch), `component` and `msg`. Errors shown to a user quote the message of
 * the last line a component wrote, not the JSON around it, and skip the supervisor's own lines
 * (written into each child's log when it starts it or sees it exit).
 */

/** The component name of the supervisor's lines, in its own log and in its children's. */
export const SUPERVISOR_COMPONENT = "supervisor";

/** A line as the runtime writes it; undefined for anything else (a print, a traceback, a partial line). */
export function parseLogLine(line: string): { level: number; time: number; component: string; msg: string } | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    if (typeof o.level !== "number" || typeof o.time !== "number" || typeof o.component !== "string" || typeof o.msg !== "string") return undefined;
    return { level: o.level, time: o.time, component: o.component, msg: o.msg };
  } catch {
    return undefined;
  }
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
