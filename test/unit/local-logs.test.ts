/**
 * The local manager's log files under the shared `clipper logs COMPONENT` grammar: which file is
 * whose (cluster-home.ts logCandidates), chosen by selectLogs, with the cluster running or not.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { selectLogs } from "../../src/managers/common/index.js";
import { clusterPaths, logCandidates } from "../../src/managers/local/cluster-home.js";

const home = mkdtempSync(join(tmpdir(), "clipper-local-logs-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));

const paths = clusterPaths(home, "c");
mkdirSync(paths.logsDir, { recursive: true });
for (const c of ["management", "frontend", "supervisor", "m-1-0", "m-1-1", "m-10-0", "m-2-0", "gone-3-0", "constructor-1-0"]) {
  writeFileSync(join(paths.logsDir, `${c}.log`), "");
}
writeFileSync(join(paths.logsDir, "notes.txt"), "");
const deployments = [
  { name: "m", version: "1" },
  { name: "m", version: "10" },
  { name: "m", version: "2" },
  { name: "constructor", version: "1" },
];
const chosen = (query?: string) => selectLogs(logCandidates(paths, deployments), query).map((l) => l.component);

describe("local log files under the shared logs grammar", () => {
  it("lists every .log file, each with its path", () => {
    expect(chosen()).toEqual(["constructor-1-0", "frontend", "gone-3-0", "m-1-0", "m-1-1", "m-2-0", "m-10-0", "management", "supervisor"]);
    expect(logCandidates(paths, []).find((l) => l.component === "m-1-1")?.path).toBe(join(paths.logsDir, "m-1-1.log"));
  });

  it("chooses by role, model, model-version and replica, without taking m-10 for m-1", () => {
    expect(chosen("frontend")).toEqual(["frontend"]);
    expect(chosen("query-frontend")).toEqual(["frontend"]);
    expect(chosen("management")).toEqual(["management"]);
    expect(chosen("m")).toEqual(["m-1-0", "m-1-1", "m-2-0", "m-10-0"]);
    expect(chosen("m-1")).toEqual(["m-1-0", "m-1-1"]);
    expect(chosen("m-1-1")).toEqual(["m-1-1"]);
    expect(chosen("constructor")).toEqual(["constructor-1-0"]);
    expect(chosen("supervisor")).toEqual(["supervisor"]);
  });

  it("finds a forgotten deployment's replica logs by prefix, and names what exists when nothing matches", () => {
    expect(chosen("gone")).toEqual(["gone-3-0"]);
    expect(chosen("gone-3")).toEqual(["gone-3-0"]);
    expect(() => chosen("nothing")).toThrow(/no logs for component nothing \(known: constructor-1-0, frontend, .*supervisor\)/);
    expect(() => chosen("__proto__")).toThrow(/no logs for component __proto__/);
  });
});
