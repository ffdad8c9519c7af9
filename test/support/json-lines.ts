/**
 * Checks on the runtime's JSON log lines that JSON.parse cannot make: it keeps the last of two
 * equal keys silently, so a line like {"component":"supervisor","component":"frontend"} parses.
 */

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
