/**
 * Through the real CLI on the local manager: `link`, `unlink` and `deploy-model --link` return only
 * once the query frontend applied the change, so a query sent the moment a command returns is
 * served by the new configuration (issue 11: about one query in thirteen used to get the default).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NO_CONNECTED_MODELS } from "../runtime/frontend/query-processor.js";
import { cliFor, freePort } from "./support/cli.js";

const fixtures = fileURLToPath(new URL("./fixtures/e2e/", import.meta.url));
const ROUNDS = 40;

describe("admin commands return once the frontend applied them", () => {
  const home = mkdtempSync(join(tmpdir(), "clipper-applied-e2e-"));
  const { cli, ok } = cliFor({ CLIPPER_HOME: home, FORCE_COLOR: "0" });
  let queryUrl = "";
  const predict = async (app: string, input: string): Promise<any> => {
    const res = await fetch(`${queryUrl}/${app}/predict`, { method: "POST", body: JSON.stringify({ input }) });
    expect(res.status).toBe(200);
    return res.json();
  };

  beforeAll(async () => {
    const [q, m, r] = [await freePort(), await freePort(), await freePort()];
    queryUrl = (await ok("start", "--query-port", String(q), "--management-port", String(m), "--rpc-port", String(r))).queryUrl;
  }, 120_000);

  afterAll(async () => {
    await cli("stop");
    rmSync(home, { recursive: true, force: true });
  }, 60_000);

  it(`serves the linked model right after deploy-model --link, and after each of ${ROUNDS} unlink/link rounds`, async () => {
    await ok("register-app", "words", "--input-type", "strings", "--default-output", "-1", "--slo-ms", "5000");
    await ok("deploy-model", "word-count", "--version", "1", "--input-type", "strings", "--framework", "node",
      "--predict", join(fixtures, "words.ts:predict"), "--link", "words");
    expect(await predict("words", "right after deploy")).toMatchObject({ output: 3, default: false });

    const afterUnlink: any[] = [];
    const afterLink: any[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await ok("unlink", "words", "word-count");
      afterUnlink.push(await predict("words", "a b"));
      await ok("link", "words", "word-count");
      afterLink.push(await predict("words", "a b"));
    }
    // Every answer is the one the configuration just written calls for: not one stale.
    expect(afterUnlink.filter((a) => !(a.default === true && a.default_explanation === NO_CONNECTED_MODELS))).toEqual([]);
    expect(afterLink.filter((a) => !(a.default === false && a.output === 2))).toEqual([]);
  }, 300_000);
});
