/**
 * `clipper start --query-auth keys --allowed-hosts ...` on the local manager, through the real CLI and
 * processes: the flags reach the daemon and the frontend, `clipper api-key` creates, lists and
 * revokes keys, and `clipper predict --api-key` (or CLIPPER_API_KEY) sends one.
 */
import { request } from "node:http";
import { describe, expect, it } from "vitest";
import { cliCluster, cliFor } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";

/** The status of a GET sent with a Host header of our choosing (fetch will not send one). */
function statusWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("query API keys through the CLI on the local manager", () => {
  const { home, cli, ok, urls } = cliCluster("clipper-keys-", {
    startFlags: ["--query-auth", "keys", "--allowed-hosts", "clipper.example,other.example"],
  });

  it("admits the allowed names on both APIs and refuses others", async () => {
    for (const url of [`${urls.managementUrl}/admin/ping`, `${urls.queryUrl}/health`]) {
      expect(await statusWithHost(url, "clipper.example:80"), url).toBe(200);
      expect(await statusWithHost(url, "evil.example"), url).toBe(403);
    }
  });

  it("creates, uses, lists and revokes keys", async () => {
    await ok("register-app", "hello", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "100");
    const created = await ok("api-key", "create", "--app", "hello", "--rate", "50/s");
    expect(created).toMatchObject({ id: expect.any(String), app: "hello", rate: 50, key: expect.stringMatching(/^clk_/) });

    const human = await cli("api-key", "create");
    expect(human.code).toBe(0);
    expect(human.stdout.split("\n")[0]).toMatch(/^clk_\S+$/);
    expect(human.stdout).toContain("shown only now");

    // The frontend learns the key from the daemon's watch stream.
    let answer: { status: number } = { status: 0 };
    await waitFor(async () => {
      answer = await fetch(`${urls.queryUrl}/hello/predict`, {
        method: "POST", headers: { authorization: `Bearer ${created.key}` }, body: JSON.stringify({ input: [1] }),
      });
      return answer.status === 200;
    }, 10_000, "the frontend to accept the new key");

    const refused = await cli("predict", "hello", "[1]");
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("401");
    expect(await ok("predict", "hello", "[1]", "--api-key", created.key)).toMatchObject({ output: -1, default: true });
    const viaEnv = await cliFor({ CLIPPER_HOME: home, FORCE_COLOR: "0", CLIPPER_API_KEY: created.key }).ok("predict", "hello", "[1]");
    expect(viaEnv).toMatchObject({ output: -1 });

    const listed = await ok("api-key", "list");
    expect(listed).toHaveLength(2);
    expect(JSON.stringify(listed)).not.toContain(created.key);
    expect(await ok("api-key", "revoke", created.id)).toMatchObject({ id: created.id });
    expect(await ok("api-key", "list")).toHaveLength(1);
    const badRate = await cli("api-key", "create", "--rate", "fast");
    expect(badRate.code).toBe(2);
  });
});
