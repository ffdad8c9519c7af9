/**
 * On a real Docker daemon, through the CLI: `stop --remove-images` removes the model images the
 * cluster built and nothing else (a user's image built FROM one of them stays, and an image a
 * container still uses is kept and named); `deploy-model --image` deploys a prebuilt image without
 * --framework; `--pkg` on a base image without pip stops at the early pip check, in words.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerClient } from "../src/docker/client.js";
import { NO_PIP_HINT } from "../src/images/dockerfile.js";
import { cliFor } from "./support/cli.js";
import { dockerSkipReason, removeDockerTestCluster, startDockerTestCluster, TEST_BASE_IMAGE } from "./support/docker.js";

const skipReason = await dockerSkipReason();
const fixtures = fileURLToPath(new URL("./fixtures/e2e/", import.meta.url));
const CLUSTER = `rmimg${process.pid}`;
/** A user's image on top of one of the cluster's: it inherits the model image's labels, and is not the cluster's. */
const DERIVED = `user-derived-${CLUSTER}:1`;

describe.skipIf(skipReason !== undefined)(`stop --remove-images on Docker${skipReason ? ` (skipped: ${skipReason})` : ""}`, () => {
  const home = mkdtempSync(join(tmpdir(), "clipper-rmimg-"));
  const env = { CLIPPER_HOME: home };
  const docker = dockerClient();
  const { cli, ok } = cliFor(env, { cluster: CLUSTER, timeoutMs: 300_000 });
  const exists = (ref: string) => docker.getImage(ref).inspect().then(() => true, () => false);
  let userContainer: string | undefined;

  const build = (version: string, ...extra: string[]) => cli("build-model", "m", "--cluster", CLUSTER, "--version", version,
    "--input-type", "doubles", "--framework", "python", "--predict", join(fixtures, "sum_v1.py"), "--base-image", TEST_BASE_IMAGE, ...extra);

  beforeAll(async () => {
    await startDockerTestCluster(env, CLUSTER);
  }, 320_000);

  afterAll(async () => {
    if (userContainer) await docker.getContainer(userContainer).remove({ force: true }).catch(() => undefined);
    await docker.getImage(DERIVED).remove({ force: true }).catch(() => undefined);
    await removeDockerTestCluster(docker, env, CLUSTER);
    rmSync(home, { recursive: true, force: true });
  }, 120_000);

  it("--pkg on a base image without pip stops at the pip check, early and in words", async () => {
    const r = await build("9", "--pkg", "requests");
    expect(r.code, r.stderr).toBe(8);
    expect(r.stderr).toMatch(/failed at step 3\/\d+ \(pip in the base image, for the model's packages\)/);
    expect(r.stderr).toContain("| the base image has no pip (python3 -m pip), needed to install the model packages");
    expect(r.stderr).toContain(`hint: ${NO_PIP_HINT}`);
    expect(await exists(`${CLUSTER}-m:9`)).toBe(false);
  }, 120_000);

  it("deploys a prebuilt image with --image and no --framework", async () => {
    const built = await build("1", "--json");
    expect(built.code, built.stderr).toBe(0);
    const tag = JSON.parse(built.stdout).image as string;
    expect(tag).toBe(`${CLUSTER}-m:1`);
    await ok("deploy-model", "m", "--version", "1", "--input-type", "doubles", "--image", tag, "--ready-timeout-ms", "120000");
    expect((await ok("models")).map((m: any) => `${m.model_name}:${m.model_version}`)).toEqual(["m:1"]);
  }, 300_000);

  it("removes exactly the images the cluster built; a derived image stays, one in use is kept and named", async () => {
    expect((await build("2")).code).toBe(0);
    // A user's image FROM m:1 (inherits our labels), and a user's container of m:2.
    execFileSync("docker", ["build", "-q", "-t", DERIVED, "-"], {
      input: `FROM ${CLUSTER}-m:1\nLABEL user.image=yes\n`, env: { ...process.env, DOCKER_BUILDKIT: "0" }, stdio: ["pipe", "ignore", "pipe"],
    });
    userContainer = (await docker.createContainer({ Image: `${CLUSTER}-m:2`, Cmd: ["true"] })).id;

    const stopped = await cli("stop", "--cluster", CLUSTER, "--remove-images", "--json");
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.json.images.removed).toEqual([`${CLUSTER}-m:1`]);
    expect(stopped.json.images.kept).toEqual([{ image: `${CLUSTER}-m:2`, reason: expect.stringMatching(/container/) }]);
    expect(stopped.stderr).toContain(`warning: image ${CLUSTER}-m:2 was kept:`);
    expect(await exists(`${CLUSTER}-m:1`)).toBe(false);
    expect(await exists(DERIVED)).toBe(true);
    expect(await exists(`${CLUSTER}-m:2`)).toBe(true);
    expect(await exists(TEST_BASE_IMAGE)).toBe(true);
  }, 180_000);
});
