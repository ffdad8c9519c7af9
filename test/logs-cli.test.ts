/**
 * `clipper logs --follow / --since` through the real CLI on the local manager, with real processes:
 * a follow sees a replica's start, a replica added by scaling up, and a replica restarted after a
 * kill -9 (same log file); Ctrl-C (SIGINT) ends it with exit 0; --since filters by the lines' own
 * times; output is prefixed by component when several can match, and --json is one object a line.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, cliCluster } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";

const MODEL = join(fileURLToPath(new URL("./fixtures/node-models/", import.meta.url)), "scaled-sum.mjs");
const LOADED = "loaded the predict function";

describe("clipper logs --follow and --since on the local manager", { timeout: 90_000 }, () => {
  const { home, cli, ok } = cliCluster("clipper-logs-follow-");

  beforeAll(async () => {
    await ok("deploy-model", "scaled", "--version", "1", "--input-type", "doubles", "--framework", "node", "--predict", `${MODEL}:predict`);
  }, 60_000);

  it("follows a model's replicas through a scale-up and a restart until Ctrl-C", async () => {
    const child = spawn(process.execPath, [CLI, "logs", "scaled", "--follow", "--json", "--tail", "50"], {
      env: { ...process.env, CLIPPER_HOME: home, FORCE_COLOR: "0" }, stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    const lines = () => stdout.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as { component: string; line: string });
    const loaded = (component: string) => lines().filter((l) => l.component === component && l.line.includes(LOADED)).length;
    try {
      await waitFor(() => loaded("scaled-1-0") === 1, 15_000, "the replica's start in the followed log");

      await ok("replicas", "scaled", "2", "--version", "1");
      await waitFor(() => loaded("scaled-1-1") === 1, 20_000, "the new replica's start");

      const pid = ((await ok("status")).replicas as { name: string; replica: number; pid: number }[]).find((r) => r.replica === 0)!.pid;
      process.kill(pid, "SIGKILL");
      await waitFor(() => loaded("scaled-1-0") === 2, 20_000, "the restarted replica's start");
      expect(lines().every((l) => typeof l.line === "string" && l.component.startsWith("scaled-1-"))).toBe(true);
    } finally {
      child.kill("SIGINT");
    }
    expect(await exited, stderr).toBe(0);
    expect(stderr).toBe("");
  });

  it("filters by --since, prefixes when several components can match, and refuses what matches nothing", async () => {
    const one = await cli("logs", "scaled-1-0", "--since", "1h");
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toContain(LOADED);
    expect(one.stdout.split("\n").filter((l) => l !== "").every((l) => !l.startsWith("scaled-1-0 |"))).toBe(true);

    const several = await cli("logs", "scaled", "--since", "1h");
    expect(several.code).toBe(0);
    expect(several.stdout).toMatch(/^scaled-1-0 \| .*loaded the predict function/m);
    expect(several.stdout).toMatch(/^scaled-1-1 \| /m);

    const future = await cli("logs", "--since", "2099-01-01T00:00:00Z");
    expect(future.code).toBe(0);
    expect(future.stdout).toBe("");
    // Pino lines carry their time; the last lines of the last minute are all recent.
    const recent = await cli("logs", "management", "--since", "1m", "--json");
    for (const l of recent.stdout.split("\n").filter((x) => x !== "")) {
      const time = /"time":(\d+)/.exec((JSON.parse(l) as { line: string }).line)?.[1];
      if (time) expect(Number(time)).toBeGreaterThanOrEqual(Date.now() - 120_000);
    }

    const bad = await cli("logs", "--since", "yesterday");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("expected a duration");
    for (const name of ["nothing", "__proto__", "constructor"]) {
      const none = await cli("logs", name, "--follow");
      expect(none.code, name).not.toBe(0);
      expect(none.stderr, name).toContain(`no logs for component ${name}`);
    }
  });
});
