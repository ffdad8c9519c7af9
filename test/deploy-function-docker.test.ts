/**
 * Deploying from code with `--manager docker`: a function with context and a contextFile, an async
 * function importing an npm package (bundled from this machine's node_modules into the image), and
 * a TypeScript module with an npm package, a sibling file and an asset, each built into an image on
 * the local test base (no registry here) and answering through the query API as test-predict does.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClipperConnection } from "../src/connection.js";
import { dockerClient } from "../src/docker/client.js";
import { contextFile } from "../src/functions/context-value.js";
import { dockerSkipReason, removeDockerTestCluster, startDockerTestCluster, TEST_BASE_IMAGE } from "./support/docker.js";
import { batchAnswers } from "./support/answers.js";

const skipReason = await dockerSkipReason();
const fixtures = fileURLToPath(new URL("./fixtures/deploy-from-code/", import.meta.url));
const CLUSTER = `fn${process.pid}`;

describe.skipIf(skipReason !== undefined)(`deploying from code on Docker${skipReason ? ` (skipped: ${skipReason})` : ""}`, () => {
  const home = mkdtempSync(join(tmpdir(), "clipper-deploy-fn-docker-"));
  const env = { CLIPPER_HOME: home, FORCE_COLOR: "0" };
  const docker = dockerClient();
  let conn: ClipperConnection;
  const common = { baseImage: TEST_BASE_IMAGE, readyTimeoutMs: 120_000 };

  const answers = (app: string, inputs: unknown[]): Promise<unknown[]> => batchAnswers(conn, app, inputs);

  beforeAll(async () => {
    await startDockerTestCluster(env, CLUSTER);
    conn = await ClipperConnection.connect({ home, cluster: CLUSTER });
  }, 320_000);

  afterAll(async () => {
    await conn?.close();
    await removeDockerTestCluster(docker, env, CLUSTER);
    rmSync(home, { recursive: true, force: true });
  }, 120_000);

  it("serves an arrow function with context and a contextFile", async () => {
    const linear = (xs: number[][], ctx: { bias: number; w: Float64Array; scale: string }) => {
      const { factor } = JSON.parse(process.getBuiltinModule("node:fs").readFileSync(ctx.scale, "utf8")) as { factor: number };
      return xs.map((x) => x.reduce((s, v, i) => s + v * (ctx.w[i] ?? 0), ctx.bias) * factor);
    };
    const context = { bias: 0.5, w: new Float64Array([1, 2]), scale: contextFile(join(fixtures, "scale.json")) };
    await conn.registerApplication({ name: "linear", inputType: "doubles", defaultOutput: "-1", sloMicros: 10_000_000 });
    await conn.deployFunction({ ...common, name: "linear-fn", version: "1", inputType: "doubles", predict: linear, context, link: "linear" });
    const inputs = [[1, 1], [0.25, 0]];
    const served = await answers("linear", inputs);
    expect(served).toEqual([35, 7.5]);
    expect((await conn.testPredictFunction({ inputType: "doubles", predict: linear, context, inputs })).answers).toEqual(served);
  }, 300_000);

  it("serves an async function whose npm package is bundled into the image from node_modules", async () => {
    const describeAll = async function describeAll(texts: string[], ctx: { prefix: string }): Promise<string[]> {
      const { stringify } = await import("yaml");
      return texts.map((text) => stringify({ [ctx.prefix]: text.split(" ").length }).trim());
    };
    await conn.registerApplication({ name: "describe", inputType: "strings", defaultOutput: "none", sloMicros: 10_000_000 });
    await conn.deployFunction({
      ...common, name: "describe-fn", version: "1", inputType: "strings", predict: describeAll, context: { prefix: "words" },
      dependencies: ["yaml"], projectDir: fixtures, link: "describe",
    });
    const inputs = ["a b c", "hello"];
    const served = await answers("describe", inputs);
    expect(served).toEqual(["words: 3", "words: 1"]);
    const tested = await conn.testPredictFunction({ inputType: "strings", predict: describeAll, context: { prefix: "words" }, projectDir: fixtures, inputs });
    expect(tested.answers).toEqual(served);
  }, 300_000);

  it("serves a TypeScript module with an npm package, a sibling file and an asset (deployModule)", async () => {
    await conn.registerApplication({ name: "sentiment", inputType: "strings", defaultOutput: "0", sloMicros: 10_000_000 });
    await conn.deployModule({ ...common, name: "sentiment-ts", version: "1", inputType: "strings", entry: join(fixtures, "model.ts"), link: "sentiment" });
    const inputs = ["Good, great!", "bad"];
    const served = await answers("sentiment", inputs);
    expect(served).toEqual([5, -2]);
    expect((await conn.testPredictFunction({ inputType: "strings", predict: join(fixtures, "model.ts"), inputs })).answers).toEqual(served);
  }, 300_000);
});
