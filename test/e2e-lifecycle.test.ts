/**
 * A model's lifecycle with no dead ends (issue 11 §3), through the real CLI on the local manager
 * with the real daemon, frontend and Node model runtime: a stopped version comes back with
 * `replicas`, `delete-model` refuses to take what an application is served (unless --force) and
 * leaves no process, `stop` stops what a supervisor killed with -9 left, and a connection created
 * for a named cluster starts it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { ClipperConnection } from "../src/connection.js";
import { pidAlive } from "../src/managers/local/processes.js";
import { cliCluster, freePort, predictAt } from "./support/cli.js";

const MODEL = join(fileURLToPath(new URL("./fixtures/node-models/", import.meta.url)), "scaled-sum.mjs");

describe("the model lifecycle through the CLI on the local manager", { timeout: 60_000 }, () => {
  const { home, cli, ok, urls } = cliCluster("clipper-lifecycle-e2e-");

  /** The pids of a version's replicas, as `clipper status` reports them. */
  const replicaPids = async (model: string, version?: string): Promise<number[]> =>
    ((await ok("status")).replicas as { name: string; version: string; pid?: number }[])
      .filter((r) => r.name === model && (version === undefined || r.version === version))
      .map((r) => r.pid!);
  const deploy = (version: string, scale: number, ...extra: string[]) =>
    ok("deploy-model", "scaled", "--version", version, "--input-type", "doubles", "--framework", "node",
      "--predict", `${MODEL}:predict`, "--env", `SCALE=${scale}`, ...extra);
  const answer = async () => (await predictAt(urls.queryUrl, "app", [1, 2])) as { output: number; default: boolean };

  beforeAll(async () => {
    await ok("register-app", "app", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "5000");
  }, 60_000);

  it("brings a version stopped with stop-models (--inactive, --version) back with replicas", async () => {
    await deploy("1", 1, "--link", "app");
    await deploy("2", 10);
    expect(await answer()).toMatchObject({ output: 30, default: false });

    await ok("stop-models", "scaled", "--inactive");
    expect(await replicaPids("scaled", "1")).toEqual([]);
    expect(await ok("replicas", "scaled", "1", "--version", "1")).toMatchObject({ model_version: "1", replicas: 1 });
    await ok("set-version", "scaled", "1");
    expect(await answer()).toMatchObject({ output: 3, default: false });

    await ok("stop-models", "scaled", "--version", "2");
    expect(await replicaPids("scaled", "2")).toEqual([]);
    await ok("replicas", "scaled", "2", "--version", "2");
    expect(await replicaPids("scaled", "2")).toHaveLength(2);
    await ok("set-version", "scaled", "2");
    expect(await answer()).toMatchObject({ output: 30, default: false });
  });

  it("delete-model refuses the version an application is served unless --force, and leaves no process", async () => {
    const current = await replicaPids("scaled", "2");
    const refused = await cli("delete-model", "scaled", "--version", "2", "--json");
    expect(refused.code).toBe(4);
    expect(JSON.parse(refused.stdout)).toMatchObject({ error: expect.stringContaining("'app'"), hint: expect.stringContaining("--force") });
    expect(current.filter(pidAlive)).toEqual(current);
    expect(await answer()).toMatchObject({ output: 30, default: false });

    const old = await replicaPids("scaled", "1");
    expect(await ok("delete-model", "scaled", "--version", "1")).toEqual({ model_name: "scaled", deleted_versions: ["1"], unlinked_from: [] });
    expect(old.filter(pidAlive)).toEqual([]);
    expect((await ok("models")).map((m: { model_version: string }) => m.model_version)).toEqual(["2"]);
    const gone = await cli("replicas", "scaled", "1", "--version", "1", "--json");
    expect(JSON.parse(gone.stdout).error).toMatch(/no deployment of model scaled version 1/);

    expect(await ok("delete-model", "scaled", "--force")).toEqual({ model_name: "scaled", deleted_versions: ["2"], unlinked_from: ["app"] });
    expect(current.filter(pidAlive)).toEqual([]);
    expect(await ok("models")).toEqual([]);
    expect(await replicaPids("scaled")).toEqual([]);
    expect(await answer()).toMatchObject({ output: -1, default: true });
    const again = await cli("delete-model", "scaled", "--json");
    expect([again.code, JSON.parse(again.stdout).error]).toEqual([4, "model 'scaled' does not exist"]);
    // Names that are Object.prototype's members are names like any other; a name no model can have is a usage error.
    const proto = await cli("delete-model", "constructor", "--json");
    expect([proto.code, JSON.parse(proto.stdout).error]).toEqual([4, "model 'constructor' does not exist"]);
    const bad = await cli("delete-model", "Bad", "--json");
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout).error).toMatch(/model name 'Bad'/);
  });

  it("stop stops the daemon, the frontend and the replicas a supervisor killed with -9 left", async () => {
    await deploy("3", 1);
    const status = await ok("status");
    const left: number[] = [...status.components, ...status.replicas].map((p: { pid: number }) => p.pid);
    expect(left).toHaveLength(3);
    const supervisor = JSON.parse(readFileSync(join(home, "clusters", "default", "supervisor.json"), "utf8")).pid as number;
    process.kill(supervisor, "SIGKILL");
    await expect.poll(() => pidAlive(supervisor)).toBe(false);
    expect(left.filter(pidAlive)).toEqual(left);

    expect((await ok("stop")).stopped).toBe("default");
    expect(left.filter(pidAlive)).toEqual([]);
    expect((await cli("status")).code).toBe(3);
  });

  it("starts a cluster through a connection created for it by name", async () => {
    const conn = await ClipperConnection.create({ cluster: "named", home });
    const queryPort = await freePort();
    const addresses = await conn.start({ queryPort, managementPort: await freePort(), rpcPort: await freePort() });
    try {
      expect(addresses).toMatchObject({ cluster: "named", queryUrl: `http://127.0.0.1:${queryPort}` });
      expect((await ok("status", "--cluster", "named")).addresses.cluster).toBe("named");
    } finally {
      await conn.stopAll();
    }
    expect((await cli("status", "--cluster", "named")).code).toBe(3);
  });
});
