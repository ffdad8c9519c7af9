/**
 * Rough edges of the CLI against a local cluster. A bad name is a usage error whoever refuses it: the
 * CLI before it sends anything (delete-model checks the name itself) or the management daemon
 * (register-app sends the name as it is, and the daemon marks its refusal). Same exit code, same
 * JSON shape; other refusals stay ADMIN_REJECTED. deploy-model without --image still needs
 * --framework. `stop --remove-images` with no Docker daemon stops the cluster and says that only the
 * images were not removed (their removal on a daemon: stop-remove-images-docker.test.ts).
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { cliCluster, runCli } from "./support/cli.js";
import { ERROR_CODES } from "../src/errors.js";

const fixtures = fileURLToPath(new URL("./fixtures/e2e/", import.meta.url));

describe("a bad name is refused alike by the CLI and by the daemon", () => {
  const { cli } = cliCluster("clipper-names-");

  it("exit 2 and { error, code: USAGE } either way", async () => {
    const byCli = await cli("delete-model", "Bad_Name", "--json");
    const byDaemon = await cli("register-app", "Bad_Name", "--input-type", "doubles", "--json");
    for (const r of [byCli, byDaemon]) {
      expect(r.code, r.stdout + r.stderr).toBe(ERROR_CODES.USAGE.exitCode);
      expect(r.json).toEqual({ error: expect.stringContaining("'Bad_Name' must consist of lower case alphanumeric characters"), code: "USAGE" });
    }
    expect(byCli.json.error).toMatch(/^model name /);
    expect(byDaemon.json.error).toMatch(/^application name /);
    // The text form too: one line, exit 2.
    const text = await cli("register-app", "Bad_Name", "--input-type", "doubles");
    expect(text.code).toBe(2);
    expect(text.stderr).toBe("error: application name 'Bad_Name' must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character\n");
  });

  it("other refusals of the daemon keep their own code (ADMIN_REJECTED, exit 4)", async () => {
    expect((await cli("register-app", "twice", "--input-type", "doubles")).code).toBe(0);
    const again = await cli("register-app", "twice", "--input-type", "doubles", "--json");
    expect(again.code).toBe(ERROR_CODES.ADMIN_REJECTED.exitCode);
    expect(again.json.code).toBe("ADMIN_REJECTED");
  });

  it("deploy-model without --image needs --framework", async () => {
    const r = await cli("deploy-model", "m", "--version", "1", "--input-type", "doubles", "--predict", join(fixtures, "sum_v1.py"), "--json");
    expect(r.code).toBe(2);
    expect(r.json).toEqual({ error: "give --framework (python, node, ...) for the predict file", code: "USAGE", hint: "or deploy a prebuilt image with --image IMAGE" });
  });
});

describe("stop --remove-images without a Docker daemon", () => {
  const { home } = cliCluster("clipper-rmimg-local-");

  it("stops the cluster, then fails only the image removal, saying so (exit 5)", async () => {
    const r = await runCli(["stop", "--remove-images"], { CLIPPER_HOME: home, DOCKER_HOST: `unix://${home}/no-docker.sock` });
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toContain("done: Cluster 'default' stopped");
    expect(r.stderr).toContain("failed: Cluster 'default' stopped, but its model images were not removed");
    expect(r.stderr).toMatch(/error: listing the images of cluster default: cannot reach the Docker daemon/);
    const status = await runCli(["status"], { CLIPPER_HOME: home });
    expect(status.code).toBe(3);
  });
});
