/**
 * Checks on the runtime's JSON log lines, including what JSON.parse cannot see: it keeps the last
 * of two equal keys silently, so a line like {"component":"supervisor","component":"frontend"} parses.
 */
import { expect } from "vitest";
import { parseLogLine } from "../../src/log-lines.js";

/** The keys that appear more than once in the same object of a JSON text (any depth), in order. */
export function duplicateKeys(json: string): string[] {
  const repeated: string[] = [];
  const objects: Set<string>[] = [];
  // Each string token; a string followed by ':' is a key of the innermost open object.
  const token = /"(?:[^"\\]|\\.)*"|[{}[\]]/g;
  for (let m = token.exec(json); m; m = token.exec(json)) {
    const t = m[0];
    if (t === "{") objects.push(new Set());
    else if (t === "}") objects.pop();
    else if (t.startsWith('"') && /^\s*:/.test(json.slice(token.lastIndex))) {
      const key = JSON.parse(t) as string;
      const keys = objects.at(-1)!;
      if (keys.has(key)) repeated.push(key);
      keys.add(key);
    }
  }
  return repeated;
}

/** The lines of a log that are JSON objects, parsed, each checked for repeated keys. */
export function jsonLogLines(text: string): { line: string; value: Record<string, unknown>; duplicates: string[] }[] {
  return text.split("\n").filter((l) => l.startsWith("{")).map((line) => ({
    line, value: JSON.parse(line) as Record<string, unknown>, duplicates: duplicateKeys(line),
  }));
}

/**
 * A runtime's whole log output, checked line by line: every line one JSON object in the shape every
 * Clipper process logs in (level, time, component, msg: src/log-lines.ts), no key twice, all from
 * `component`. Returns the parsed objects.
 */
export function runtimeLog(text: string, component: string): Record<string, unknown>[] {
  const lines = text.split("\n").filter((l) => l !== "");
  for (const line of lines) {
    expect(parseLogLine(line), `not a runtime log line: ${line}`).toBeDefined();
    expect(duplicateKeys(line), line).toEqual([]);
  }
  const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(records.filter((r) => r.component !== component)).toEqual([]);
  return records;
}
