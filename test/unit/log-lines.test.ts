/**
 * Reading log lines back (src/log-lines.ts): the runtime's JSON shape, the supervisor's lines in a
 * child's log, and the message an error quotes; and the test helper that finds repeated keys,
 * which JSON.parse hides.
 */
import { describe, expect, it } from "vitest";
import { isSupervisorLine, lastLogMessage, parseLogLine } from "../../src/log-lines.js";
import { supervisorLine } from "../../src/managers/local/managed-process.js";
import { duplicateKeys } from "../support/json-lines.js";

describe("log lines", () => {
  it("reads the runtime's shape and nothing else", () => {
    expect(parseLogLine('{"level":50,"time":1796300000000,"component":"container-python","model":"m:1","msg":"boom"}'))
      .toEqual({ level: 50, time: 1796300000000, component: "container-python", msg: "boom" });
    for (const other of ["Traceback (most recent call last):", '{"level":"info","time":1,"component":"c","msg":"m"}', '{"level":30', "[1, 2]", '{"msg":"m"}']) {
      expect(parseLogLine(other), other).toBeUndefined();
    }
  });

  it("writes the supervisor's lines in a child's log in that shape, and recognises them (and the old '--- ' ones)", () => {
    const line = supervisorLine("warn", 1796300000000, "m-1-0", "m-1-0 exited with code 1; restarting in 250 ms");
    expect(line.endsWith("\n")).toBe(true);
    expect(JSON.parse(line)).toEqual({ level: 40, time: 1796300000000, component: "supervisor", child: "m-1-0", msg: "m-1-0 exited with code 1; restarting in 250 ms" });
    expect(isSupervisorLine(line.trim())).toBe(true);
    expect(isSupervisorLine("--- 2026-12-03T10:00:00.000Z supervisor: m-1-0 exited with code 1; restarting in 250 ms")).toBe(true);
    expect(isSupervisorLine('{"level":30,"time":1,"component":"container-node","msg":"x"}')).toBe(false);
  });

  it("quotes the last thing a component said: its msg, not the JSON, skipping the supervisor's lines; plain text as it is", () => {
    const lines = [
      '{"level":30,"time":1,"component":"container-python","msg":"loading"}',
      '{"level":50,"time":2,"component":"container-python","model":"m:1","msg":"cannot load the predict function: no module named torch","detail":"Traceback ..."}',
      supervisorLine("warn", 3, "m-1-0", "m-1-0 exited with code 1; restarting in 250 ms").trim(),
      "",
    ];
    expect(lastLogMessage(lines)).toBe("cannot load the predict function: no module named torch");
    expect(lastLogMessage(["a print", "  Error: plain  "])).toBe("Error: plain");
    expect(lastLogMessage([supervisorLine("info", 1, "c", "starting c").trim()])).toBeUndefined();
    expect(lastLogMessage(["x".repeat(300)])).toBe(`${"x".repeat(200)}…`);
  });

  it("duplicateKeys finds a key repeated in one object at any depth, not the same key in sibling objects", () => {
    expect(duplicateKeys('{"level":30,"component":"supervisor","component":"frontend","msg":"started"}')).toEqual(["component"]);
    expect(duplicateKeys('{"a":{"b":1,"b":2},"c":[{"d":1},{"d":2}],"e":"\\"e\\":1","f":{"a":1}}')).toEqual(["b"]);
    expect(duplicateKeys('{"level":30,"time":1,"component":"c","msg":"level: 2, time: 3"}')).toEqual([]);
  });
});
