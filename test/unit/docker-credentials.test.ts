/**
 * Registry credentials with no process and no daemon: which registry an image names, and pushImage
 * against a fake daemon (the found credentials are sent, explicit ones win, a refusal's hint says
 * `docker login HOST`). Credential helpers (shell scripts) and real pushes are in
 * test/docker-credentials.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type Docker from "dockerode";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ClipperError } from "../../src/errors.js";
import { pushImage } from "../../src/images/docker-build.js";
import {
  registryHost,
} from "../../src/images/docker-credentials.js";
import { ImageBuildError, type RegistryAuth } from "../../src/images/index.js";

const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");

describe("registryHost", () => {
  it("takes the first component when it holds '.' or ':' or is localhost, else Docker Hub", () => {
    expect(registryHost("python:3.12")).toBe("docker.io");
    expect(registryHost("team/model:1")).toBe("docker.io");
    expect(registryHost("docker.io/library/python:3.12")).toBe("docker.io");
    expect(registryHost("index.docker.io/team/x")).toBe("docker.io");
    expect(registryHost("localhost/x:1")).toBe("localhost");
    expect(registryHost("localhost:5000/x:1")).toBe("localhost:5000");
    expect(registryHost("registry.example.com/a/b:1")).toBe("registry.example.com");
    expect(registryHost("127.0.0.1:5055/clipper-test/x:1")).toBe("127.0.0.1:5055");
    expect(registryHost("gcr.io/project/x@sha256:" + "0".repeat(64))).toBe("gcr.io");
    expect(registryHost("Registry/x")).toBe("Registry");
  });
});

/** A daemon that records the push's options and answers `events` as its progress stream. */
function fakeDocker(events: object[]): { docker: Docker; pushes: { repository: string; options: Record<string, unknown> }[] } {
  const pushes: { repository: string; options: Record<string, unknown> }[] = [];
  const docker = {
    getImage: (repository: string) => ({
      push: async (options: Record<string, unknown>) => {
        pushes.push({ repository, options });
        return Readable.from(events.map((e) => `${JSON.stringify(e)}\n`));
      },
    }),
  } as unknown as Docker;
  return { docker, pushes };
}

describe("pushImage's credentials (fake daemon)", () => {
  const saved = process.env.DOCKER_CONFIG;
  let configDir: string;

  beforeEach(() => {
    configDir = mkdtempSync(join(tmpdir(), "clipper-push-creds-"));
    process.env.DOCKER_CONFIG = configDir;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.DOCKER_CONFIG;
    else process.env.DOCKER_CONFIG = saved;
    rmSync(configDir, { recursive: true, force: true });
  });

  const ok = [{ status: "Pushed", id: "abc" }, { status: "1: digest: sha256:0 size: 1" }];

  it("sends what docker login stored when no auth is given, and explicit auth instead when given", async () => {
    writeFileSync(join(configDir, "config.json"), JSON.stringify({ auths: { "registry.example.com": { auth: b64("stored:secret") } } }));
    const { docker, pushes } = fakeDocker(ok);
    await pushImage(docker, "registry.example.com/team/x:1");
    expect(pushes[0]).toEqual({ repository: "registry.example.com/team/x", options: {
      tag: "1", authconfig: { username: "stored", password: "secret", serveraddress: "registry.example.com" },
    } });
    const explicit: RegistryAuth = { username: "given", password: "p" };
    await pushImage(docker, "registry.example.com/team/x:1", undefined, explicit);
    expect(pushes[1]!.options).toEqual({ tag: "1", authconfig: explicit });
    // Nothing stored for that registry: no authconfig at all.
    await pushImage(docker, "127.0.0.1:5055/team/x:2");
    expect(pushes[2]!.options).toEqual({ tag: "2" });
  });

  it("says to docker login the registry when it refuses an anonymous push", async () => {
    const { docker } = fakeDocker([{ status: "Preparing", id: "abc" }, { errorDetail: { message: "no basic auth credentials" }, error: "no basic auth credentials" }]);
    const error = await pushImage(docker, "registry.example.com:5000/team/x:1").then(() => undefined, (err: unknown) => err as ImageBuildError);
    expect(error).toBeInstanceOf(ImageBuildError);
    expect(error!.message).toBe("pushing registry.example.com:5000/team/x:1 failed: no basic auth credentials");
    expect(error!.hint).toContain("`docker login registry.example.com:5000`");
    expect(error!.hint).toContain("no credentials for registry.example.com:5000 were found");

    const hub = await pushImage(docker, "team/x:1").then(() => undefined, (err: unknown) => err as ImageBuildError);
    expect(hub!.hint).toContain("`docker login`");
  });

  it("names where refused credentials came from", async () => {
    writeFileSync(join(configDir, "config.json"), JSON.stringify({ auths: { "registry.example.com": { auth: b64("stale:secret") } } }));
    const { docker } = fakeDocker([{ errorDetail: { message: "unauthorized: incorrect username or password" } }]);
    const stored = await pushImage(docker, "registry.example.com/x:1").then(() => undefined, (err: unknown) => err as ImageBuildError);
    expect(stored!.hint).toContain(`the registry refused the credentials from ${join(configDir, "config.json")}`);
    expect(stored!.hint).toContain("`docker login registry.example.com`");
    const given = await pushImage(docker, "registry.example.com/x:1", undefined, { username: "a", password: "b" })
      .then(() => undefined, (err: unknown) => err as ImageBuildError);
    expect(given!.hint).toContain("credentials in registryAuth");
  });

  it("fails before contacting the daemon when the config file is broken", async () => {
    writeFileSync(join(configDir, "config.json"), "not json");
    const { docker, pushes } = fakeDocker(ok);
    const error = await pushImage(docker, "registry.example.com/x:1").then(() => undefined, (err: unknown) => err as ClipperError);
    expect(error!.code).toBe("USAGE");
    expect(pushes).toHaveLength(0);
    // Explicit credentials do not need the file.
    await pushImage(docker, "registry.example.com/x:1", undefined, { username: "a", password: "b" });
    expect(pushes).toHaveLength(1);
  });
});
