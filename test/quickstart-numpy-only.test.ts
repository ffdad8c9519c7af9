/**
 * README.md's quickstart, Python step included, on an interpreter that has numpy and no pyzmq (a
 * wrapper that hides it, as on a fresh machine with only python3-numpy): the runtime serves over its
 * built-in ZMTP DEALER, through the real CLI, supervisor and frontend.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { cliCluster } from "./support/cli.js";
import { assertPythonHas, PYTHON, pyzmqBlockerDir, pythonSkipReason } from "./support/python.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const skipReason = pythonSkipReason(["numpy"]);

/** A python3 that is PYTHON with pyzmq unimportable. */
function numpyOnlyPython(): string {
  const dir = mkdtempSync(join(tmpdir(), "clipper-numpy-only-"));
  const wrapper = join(dir, "python3");
  writeFileSync(wrapper, `#!/bin/sh\nPYTHONPATH="${pyzmqBlockerDir()}\${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON}" "$@"\n`);
  chmodSync(wrapper, 0o755);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return wrapper;
}

describe.skipIf(skipReason !== undefined)(`the quickstart with a Python that has numpy only${skipReason ? ` (${skipReason})` : ""}`, () => {
  const python = numpyOnlyPython();
  const { cli, ok, urls } = cliCluster("clipper-numpy-only-", { env: { CLIPPER_PYTHON: python }, before: () => assertPythonHas(["numpy"]) });

  it("has no pyzmq in that interpreter", async () => {
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync(python, ["-c", "import numpy, zmq"], { encoding: "utf8", timeout: 30_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/No module named 'zmq'/);
  });

  it("registers, deploys the quickstart's model, predicts, and the replica says it speaks the built-in ZMTP", async () => {
    await ok("register-app", "sum", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "3000");
    await ok("deploy-model", "sum-model", "--version", "1", "--input-type", "doubles", "--framework", "python",
      "--predict", join(REPO, "templates", "models", "predict.py:predict"), "--link", "sum");
    const res = await fetch(`${urls.queryUrl}/sum/predict`, { method: "POST", body: JSON.stringify({ input: [1.0, 2.0, 3.0] }) });
    expect(await res.json()).toEqual({ query_id: expect.any(Number), output: 6, default: false });
    const logs = await cli("logs", "sum-model-1-0", "--tail", "50");
    expect(logs.stdout).toMatch(/RPC over the built-in ZMTP 3\.0 DEALER/);
  });
});
