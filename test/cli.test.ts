/** The CLI's promises that hold without a cluster: help and --json everywhere, one-line errors, exit codes. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "./support/cli.js";

const home = mkdtempSync(join(tmpdir(), "clipper-cli-"));
const env = { CLIPPER_HOME: home };
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe("command definitions", () => {
  it("prints help for every command and exits 0", async () => {
    for (const name of ["start", "deploy-model", "predict", "delete-model"]) {
      const r = await runCli([name, "--help"], env);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: clipper ${name}`);
    }
  });
});

describe("errors", () => {
  it("says there is no cluster in one line, exit 3, without colour off a terminal", async () => {
    const r = await runCli(["apps"], env);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe("error: no running cluster named default (start one with `clipper start`)\n");
    const json = await runCli(["apps", "--json"], env);
    expect(json.code).toBe(3);
    expect(json.json).toMatchObject({ code: "NO_CLUSTER", error: expect.stringContaining("no running cluster") });
  });

  it("stop and delete-model with no cluster say so, exit 3", async () => {
    for (const args of [["stop"], ["stop", "--keep-state"], ["delete-model", "m", "--version", "1"]]) {
      const r = await runCli(args, env);
      expect(r.code).toBe(3);
      expect(r.stderr.split("\n").slice(-2)).toEqual(["error: no running cluster named default (start one with `clipper start`)", ""]);
    }
  });

  it("refuses bad flags with exit 2 before touching a cluster", async () => {
    const badType = await runCli(["register-app", "a", "--input-type", "quaternions"], env);
    expect(badType.code).toBe(2);
    expect(badType.stderr).toContain("unknown input type 'quaternions'");
    const badPort = await runCli(["start", "--query-port", "70000"], env);
    expect(badPort.code).toBe(2);
    const badBatch = await runCli(["deploy-model", "m", "--version", "1", "--input-type", "d", "--framework", "node",
      "--predict", "x.mjs", "--batch-size", "0"], env);
    expect(badBatch.code).toBe(2);
    expect(badBatch.stderr).toContain("batch size must be positive");
    const deploy = (...flags: string[]) => runCli(["deploy-model", "m", "--version", "1", "--input-type", "d", "--framework", "node",
      "--predict", "x.mjs", ...flags], env);
    const badEnv = await deploy("--env", "1BAD=x");
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toContain("expected KEY=VALUE with KEY made of letters, digits and _ (not starting with a digit), got '1BAD=x'");
    const noValue = await deploy("--env", "NOVALUE");
    expect(noValue.code).toBe(2);
    const twice = await deploy("--env", "A=1", "--env", "A=2");
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain("--env A is given twice");
    const badAuth = await runCli(["start", "--rpc-auth", "curve"], env);
    expect(badAuth.code).toBe(2);
    expect(badAuth.stderr).toMatch(/--rpc-auth.*curve.*plain, none/s);
    // The warning comes before anything is started (here a start that cannot find its kubeconfig).
    const open = await runCli(["start", "--manager", "kubernetes", "--rpc-auth", "none", "--runtime-image", "rt:1"],
      { ...env, KUBECONFIG: join(home, "no-such-kubeconfig") });
    expect(open.stderr).toContain("warning: --rpc-auth none: any process that reaches the RPC port can register as any model version");
    expect(open.code).toBe(2);
    const badFrame = await runCli(["start", "--max-rpc-frame-bytes", "0"], env);
    expect(badFrame.code).toBe(2);
    // Below the frontend's own floor: refused here, not by a frontend that exits at start.
    const smallFrame = await runCli(["start", "--max-rpc-frame-bytes", "512"], env);
    expect(smallFrame.code).toBe(2);
    expect(smallFrame.stderr).toContain("expected a number between 1024 and");
    const manyWorkers = await runCli(["start", "--frontend-workers", "9"], env);
    expect(manyWorkers.code).toBe(2);
    expect(manyWorkers.stderr).toContain("expected a number between 1 and 8");
    const noWorkers = await runCli(["start", "--manager", "kubernetes", "--dry-run", "--frontend-workers", "0"], env);
    expect(noWorkers.code).toBe(2);
    expect(noWorkers.stderr).toContain("expected a number between 1 and 8");
    for (const r of [badType, badPort, badBatch, badEnv, noValue, twice, badAuth, badFrame, smallFrame, manyWorkers, noWorkers]) {
      expect(r.stderr).not.toMatch(/\x1b\[|\n\s+at /);
    }
  });

  it("--json covers commander's own usage errors: { error, code, hint } on stdout, nothing on stderr, exit 2", async () => {
    const cases: [string[], string, string][] = [
      [["start", "--bogus"], "unknown option '--bogus'", "clipper start"],
      [["link", "app"], "missing required argument 'model'", "clipper link"],
      [["start", "--query-port", "70000"], "option '--query-port <n>' argument '70000' is invalid. expected a number between 0 and 65535, got 70000", "clipper start"],
      [["api-key", "create", "--rate", "fast"], "option '--rate <n>' argument 'fast' is invalid", "clipper api-key create"],
      [["build-model", "m", "--version", "1", "--input-type", "d"], "required option '--framework <kind>' not specified", "clipper build-model"],
      [["stop", "--keep-state", "--remove-images"], "option '--remove-images' cannot be used with option '--keep-state'", "clipper stop"],
      [["no-such-command"], "unknown command 'no-such-command'", "clipper"],
    ];
    for (const [args, error, help] of cases) {
      const r = await runCli([...args, "--json"], env);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr, args.join(" ")).toBe("");
      expect(Object.keys(r.json).sort(), args.join(" ")).toEqual(["code", "error", "hint"]);
      expect(r.json.error, args.join(" ")).toContain(error);
      expect(r.json).toMatchObject({ code: "USAGE", hint: `run \`${help} --help\` for usage` });
      // Without --json: commander's text on stderr, as before.
      const text = await runCli(args, env);
      expect(text.code).toBe(2);
      expect(text.stdout).toBe("");
      expect(text.stderr).toContain(`error: ${error.split(" argument")[0]}`);
    }
    // A --json after `--` is an argument, not the option.
    const after = await runCli(["start", "--bogus", "--", "--json"], env);
    expect(after.code).toBe(2);
    expect(after.stdout).toBe("");
  });

  it("deploy-model --image needs no --framework: it parses and goes on to find the cluster (build-model still needs one, above)", async () => {
    const r = await runCli(["deploy-model", "m", "--version", "1", "--input-type", "d", "--image", "prebuilt:1"], env);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).not.toContain("--framework");
  });
});
