/**
 * Pushing images to a registry, against a real one: the distribution registry on loopback
 * (scripts/start-registry.sh), where the Docker daemon pushes over plain HTTP. A Python model image
 * and the runtime image are built from the local test base with a registry, pushed, and found
 * through the registry's own API (tags listed, manifest served with the digest Docker recorded); a
 * push to a port nobody listens on fails in seconds with BUILD_FAILED naming the tag. Everything
 * built carries a per-run label (inherited from a labelled copy of the base) and afterAll removes
 * it locally by that label, and the pushed manifests from the registry.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerClient } from "../src/docker/client.js";
import { ClipperError } from "../src/errors.js";
import { BuildContext } from "../src/images/context.js";
import { runDockerBuild, splitTag } from "../src/images/docker-build.js";
import { buildModelImage, buildRuntimeImage, ImageBuildError, type BuildEvent } from "../src/images/index.js";
import { freePort } from "./support/cli.js";
import { dockerSkipReason, removeByLabel, TEST_BASE_IMAGE } from "./support/docker.js";
import { deleteManifest, MANIFEST_TYPES, registryManifest, registrySkipReason, registryTags, TEST_REGISTRY } from "./support/registry.js";

const RUN_LABEL = "ai.clipper.test.run";

describe("registry options (no daemon)", () => {
  it("rejects a runtime image registry that is not host[:port][/path] before talking to the daemon", async () => {
    const error = await buildRuntimeImage(dockerClient(), { registry: "not a registry!" }).then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(ClipperError);
    expect((error as ClipperError).code).toBe("USAGE");
    expect((error as ClipperError).message).toContain("'not a registry!'");
  });
});

const skipReason = (await dockerSkipReason()) ?? (await registrySkipReason());

describe.skipIf(skipReason !== undefined)(`pushing images to a registry${skipReason ? ` (skipped: ${skipReason})` : ""}`, () => {
  const docker = dockerClient();
  const runId = `registry-push-${randomBytes(4).toString("hex")}`;
  const base = `clipper-test-${runId}:base`;
  const registry = `${TEST_REGISTRY}/clipper-test`;
  /** Manifests pushed by this run, deleted from the registry afterwards. */
  const pushed: { repository: string; digest: string }[] = [];
  let work: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "clipper-registry-"));
    const text = `FROM ${TEST_BASE_IMAGE}\nLABEL ${RUN_LABEL}="${runId}"\n`;
    await runDockerBuild(docker, { context: new BuildContext(), dockerfile: { text, instructions: [] }, tag: base });
  }, 60_000);

  afterAll(async () => {
    for (const { repository, digest } of pushed) await deleteManifest(repository, digest).catch(() => undefined);
    await removeByLabel(docker, RUN_LABEL, runId);
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  /** The registry's path of a pushed tag: `127.0.0.1:5055/clipper-test/x:1` -> `clipper-test/x`. */
  function registryPath(tag: string): { repository: string; reference: string } {
    const { repository, tag: reference } = splitTag(tag);
    expect(repository.startsWith(`${TEST_REGISTRY}/`)).toBe(true);
    return { repository: repository.slice(TEST_REGISTRY.length + 1), reference };
  }

  /** Checks the registry lists `tag` and serves its manifest with the digest the daemon recorded; returns that digest. */
  async function expectInRegistry(tag: string): Promise<string> {
    const { repository, reference } = registryPath(tag);
    expect(await registryTags(repository)).toContain(reference);
    const manifest = await registryManifest(repository, reference);
    expect(manifest.status, manifest.body).toBe(200);
    expect(MANIFEST_TYPES).toContain(manifest.headers.get("content-type"));
    const digest = manifest.headers.get("docker-content-digest") ?? "";
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    pushed.push({ repository, digest });
    const info = await docker.getImage(tag).inspect();
    expect(info.RepoDigests).toContain(`${TEST_REGISTRY}/${repository}@${digest}`);
    return digest;
  }

  it("builds a Python model image with a registry, pushes it, and the registry lists and serves it", async () => {
    const dir = join(work, "sum");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "predict.py"), "def predict(inputs):\n    return [str(float(x.sum())) for x in inputs]\n");
    const events: BuildEvent[] = [];
    const built = await buildModelImage(docker, {
      cluster: "test", name: runId, version: "1", framework: "python", predictFile: join(dir, "predict.py"),
      predictFunction: "predict", inputType: "doubles", baseImage: base, registry: `${registry}/`,
    }, (e) => events.push(e));

    expect(built.tag).toBe(`${registry}/test-${runId}:1`);
    const types = events.map((e) => e.type);
    expect(types.indexOf("built")).toBeLessThan(types.indexOf("push"));
    expect(events.at(-1)).toEqual({ type: "pushed", tag: built.tag });
    expect(events.some((e) => e.type === "push" && e.layer !== undefined)).toBe(true);
    expect(registryPath(built.tag).repository).toBe(`clipper-test/test-${runId}`);
    await expectInRegistry(built.tag);
    // The first push on a fresh daemon compresses the test base's layer (about 1 GB): a minute here.
  }, 300_000);

  it("builds the runtime image with a registry, pushes it, and pushes it again when reused", async () => {
    const events: BuildEvent[] = [];
    const tag = await buildRuntimeImage(docker, { baseImage: base, registry }, (e) => events.push(e));
    const escaped = registry.replace(/[.]/g, "\\.");
    expect(tag).toMatch(new RegExp(`^${escaped}/clipper-runtime:\\d+\\.\\d+\\.\\d+[^-]*-[0-9a-f]{12}$`));
    expect(events.some((e) => e.type === "built" && e.tag === tag)).toBe(true);
    expect(events.at(-1)).toEqual({ type: "pushed", tag });
    const digest = await expectInRegistry(tag);

    // Reused by content hash: nothing is built, the same image is pushed (its layers already there).
    const again: BuildEvent[] = [];
    expect(await buildRuntimeImage(docker, { baseImage: base, registry }, (e) => again.push(e))).toBe(tag);
    expect(again[0]).toMatchObject({ type: "reused", tag });
    expect(again.some((e) => e.type === "built" || e.type === "step")).toBe(false);
    expect(again.at(-1)).toEqual({ type: "pushed", tag });
    expect((await registryManifest(registryPath(tag).repository, registryPath(tag).reference)).headers.get("docker-content-digest")).toBe(digest);

    // Without a registry: today's local tag, reused, nothing pushed.
    const local: BuildEvent[] = [];
    const localTag = await buildRuntimeImage(docker, { baseImage: base }, (e) => local.push(e));
    expect(localTag).toBe(tag.slice(registry.length + 1));
    expect(local.map((e) => e.type)).toEqual(["reused"]);
    expect((await docker.getImage(localTag).inspect()).Id).toBe((await docker.getImage(tag).inspect()).Id);
  }, 180_000);

  it("fails fast with BUILD_FAILED naming the tag when nobody listens at the registry", async () => {
    const port = await freePort();
    const nowhere = `127.0.0.1:${port}/clipper-test`;
    const start = Date.now();
    const error = await buildRuntimeImage(docker, { baseImage: base, registry: nowhere }).then(() => undefined, (err: unknown) => err);
    const elapsed = Date.now() - start;

    expect(error).toBeInstanceOf(ImageBuildError);
    expect(error).toBeInstanceOf(ClipperError);
    const e = error as ImageBuildError;
    expect(e.code).toBe("BUILD_FAILED");
    expect(e.exitCode).toBe(8);
    expect(e.image).toMatch(new RegExp(`^127\\.0\\.0\\.1:${port}/clipper-test/clipper-runtime:`));
    expect(e.message).toMatch(new RegExp(`^pushing 127\\.0\\.0\\.1:${port}/clipper-test/clipper-runtime:\\S+ failed: .*(refused|connect)`));
    expect(e.message).toContain(`127.0.0.1:${port}`);
    expect(e.hint).toMatch(/registry/);
    expect(elapsed).toBeLessThan(30_000);
  }, 120_000);
});
