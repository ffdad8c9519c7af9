// The CLI's context file: a damaged one is a one-line NO_CLUSTER error, never a raw parse error.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { findCluster, readContext, saveCluster } from "../../src/context.js";
import { ClipperError } from "../../src/errors.js";

const home = mkdtempSync(join(tmpdir(), "clipper-context-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe("context.json", () => {
  it("reads back what was saved, and the saved cluster is current", () => {
    saveCluster({ cluster: "a", manager: "local", queryUrl: "q", managementUrl: "m", rpcAddress: "r", metricsUrl: "x" }, home);
    expect(readContext(home).current).toBe("a");
    expect(findCluster(undefined, home)?.managementUrl).toBe("m");
  });

  it.each([["not JSON", "{ nope"], ["the wrong shape", JSON.stringify({ current: 3 })]])("refuses a file that is %s with NO_CLUSTER and a hint", (_what, text) => {
    writeFileSync(join(home, "context.json"), text);
    let error: unknown;
    try {
      readContext(home);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ClipperError);
    expect(error).toMatchObject({ code: "NO_CLUSTER", hint: "delete it and run `clipper start` again" });
    expect((error as Error).message).toBe(`${join(home, "context.json")} is not a valid context file`);
  });
});
