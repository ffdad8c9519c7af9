/**
 * On the local manager, through the real CLI and the library: `link`, `unlink` and
 * `deploy-model --link` return only once the query frontend applied the change, so a query sent
 * the moment a command returns is served by the new configuration (issue 11: about one query in
 * thirteen used to get the default).
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { NO_CONNECTED_MODELS } from "../runtime/frontend/query-processor.js";
import { ClipperConnection } from "../src/connection.js";
import { cliCluster, predictAt } from "./support/cli.js";

const fixtures = fileURLToPath(new URL("./fixtures/e2e/", import.meta.url));
/** Each CLI command costs a process start (about a second here), which hides the race: fewer rounds. */
const CLI_ROUNDS = 10;
/** In process a query follows the write within a millisecond: where a frontend still on the old state shows. */
const LIBRARY_ROUNDS = 40;

describe("admin commands return once the frontend applied them", () => {
  const { home, ok, urls } = cliCluster("clipper-applied-e2e-");
  const predict = (app: string, input: string): Promise<any> => predictAt(urls.queryUrl, app, input);

  /** `count` rounds of unlink, query, link, query: every answer is the one the configuration just written calls for. */
  async function rounds(count: number, unlink: () => Promise<unknown>, link: () => Promise<unknown>): Promise<void> {
    const afterUnlink: any[] = [];
    const afterLink: any[] = [];
    for (let round = 0; round < count; round++) {
      await unlink();
      afterUnlink.push(await predict("words", "a b"));
      await link();
      afterLink.push(await predict("words", "a b"));
    }
    expect(afterUnlink.filter((a) => !(a.default === true && a.default_explanation === NO_CONNECTED_MODELS))).toEqual([]);
    expect(afterLink.filter((a) => !(a.default === false && a.output === 2))).toEqual([]);
  }


  it(`serves the new configuration right after deploy-model --link and each of ${CLI_ROUNDS} CLI and ${LIBRARY_ROUNDS} library unlink/link rounds`, async () => {
    await ok("register-app", "words", "--input-type", "strings", "--default-output", "-1", "--slo-ms", "5000");
    await ok("deploy-model", "word-count", "--version", "1", "--input-type", "strings", "--framework", "node",
      "--predict", join(fixtures, "words.ts:predict"), "--link", "words");
    expect(await predict("words", "right after deploy")).toMatchObject({ output: 3, default: false });

    await rounds(CLI_ROUNDS, () => ok("unlink", "words", "word-count"), () => ok("link", "words", "word-count"));

    const conn = await ClipperConnection.connect({ home });
    try {
      await rounds(LIBRARY_ROUNDS, () => conn.unlinkModelFromApp("words", "word-count"), () => conn.linkModelToApp("words", "word-count"));
    } finally {
      await conn.close();
    }
  }, 300_000);
});
