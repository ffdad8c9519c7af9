/**
 * Registry credentials as the docker CLI finds them (src/images/docker-credentials.ts): a temporary
 * DOCKER_CONFIG with `auths` (base64 user:password, keys with a scheme, Docker Hub's keys, identity
 * tokens), `credHelpers` and `credsStore` naming small shell scripts `docker-credential-*` in a
 * temporary directory put first on the PATH of the env passed in; a missing file, broken JSON, and
 * helpers that are missing, fail, hold nothing, or answer garbage. pushImage against a fake daemon:
 * the found credentials are sent, explicit ones win, a refusal's hint says `docker login HOST`.
 * Then, when Docker and docker-registry are here, real pushes of a tiny image to a registry with
 * htpasswd auth started on a free loopback port: refused without credentials (with the login hint)
 * and with wrong ones, accepted with `auths`, a credential helper, or explicit registryAuth.
 * The parts that start nothing are in test/unit/docker-credentials.test.ts.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { dockerClient } from "../src/docker/client.js";
import { ClipperError } from "../src/errors.js";
import { BuildContext } from "../src/images/context.js";
import { pushImage, runDockerBuild } from "../src/images/docker-build.js";
import {
  DOCKER_HUB_KEY, dockerConfigPath, findRegistryCredentials, registryCredentials,
} from "../src/images/docker-credentials.js";
import { ImageBuildError, type RegistryAuth } from "../src/images/index.js";
import { AUTH_REGISTRY_PASSWORD, AUTH_REGISTRY_USER, authRegistrySkipReason, startAuthRegistry, type AuthRegistry } from "./support/auth-registry.js";
import { dockerSkipReason, removeByLabel } from "./support/docker.js";

const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");

/** Fake credential helpers: each `docker-credential-<name>` is a shell script. */
const HELPERS: Record<string, string> = {
  // Records what it was sent (byte for byte) and answers credentials for it.
  fake: `server=$(cat)\nprintf '%s' "$server" > "$(dirname "$0")/fake.stdin"\n` +
    `[ "$1" = get ] || { echo "unexpected action $1" >&2; exit 2; }\n` +
    `printf '{"ServerURL":"%s","Username":"helper-user","Secret":"helper-secret"}\\n' "$server"\n`,
  token: `cat >/dev/null\nprintf '{"ServerURL":"x","Username":"<token>","Secret":"identity-token-123"}\\n'\n`,
  // What docker-credential-helpers print (on stdout) when they hold nothing for the server.
  empty: `cat >/dev/null\necho "credentials not found in native keychain"\nexit 1\n`,
  garbage: `cat >/dev/null\necho "this is not json"\n`,
  broken: `cat >/dev/null\necho "boom: the keychain is locked" >&2\nexit 3\n`,
};

describe("registryCredentials (temporary DOCKER_CONFIG, fake helpers)", () => {
  let root: string;
  let configDir: string;
  let bin: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "clipper-creds-"));
    bin = join(root, "bin");
    mkdirSync(bin);
    for (const [name, body] of Object.entries(HELPERS)) {
      const file = join(bin, `docker-credential-${name}`);
      writeFileSync(file, `#!/bin/sh\n${body}`);
      chmodSync(file, 0o755);
    }
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  beforeEach(() => {
    configDir = mkdtempSync(join(root, "config-"));
    env = { PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`, DOCKER_CONFIG: configDir, HOME: join(root, "no-home") };
  });

  const writeConfig = (config: unknown): void => writeFileSync(join(configDir, "config.json"), JSON.stringify(config));
  const failure = (promise: Promise<unknown>): Promise<ClipperError> =>
    promise.then(() => { throw new Error("expected a failure"); }, (err: unknown) => err as ClipperError);

  it("finds nothing when there is no config file (anonymous push)", async () => {
    expect(dockerConfigPath(env)).toBe(join(configDir, "config.json"));
    expect(await registryCredentials("registry.example.com/x:1", env)).toBeUndefined();
    expect(await registryCredentials("python:3.12", env)).toBeUndefined();
  });

  it("falls back to ~/.docker/config.json without DOCKER_CONFIG", async () => {
    const home = join(configDir, "home");
    mkdirSync(join(home, ".docker"), { recursive: true });
    writeFileSync(join(home, ".docker", "config.json"), JSON.stringify({ auths: { "reg.example.com": { auth: b64("h:p") } } }));
    const homeEnv = { PATH: env.PATH, HOME: home };
    expect(dockerConfigPath(homeEnv)).toBe(join(home, ".docker", "config.json"));
    expect(await registryCredentials("reg.example.com/x:1", homeEnv)).toEqual({ username: "h", password: "p", serveraddress: "reg.example.com" });
  });

  it("decodes auths' base64 user:password for the image's registry (a password may hold ':')", async () => {
    writeConfig({ auths: {
      "registry.example.com:5000": { auth: b64("alice:pa:ss") },
      "other.example.com": { auth: b64("bob:x") },
    } });
    expect(await registryCredentials("registry.example.com:5000/team/model:1", env))
      .toEqual({ username: "alice", password: "pa:ss", serveraddress: "registry.example.com:5000" });
    expect(await registryCredentials("registry.example.com/team/model:1", env)).toBeUndefined();
    expect(await registryCredentials("python:3.12", env)).toBeUndefined();
  });

  it("matches keys written with a scheme or a path, and username/password fields", async () => {
    writeConfig({ auths: {
      "https://registry.example.com/": { auth: b64("carol:c") },
      "http://127.0.0.1:5055/v2/": { username: "dave", password: "d" },
    } });
    expect(await registryCredentials("registry.example.com/a/b:2", env)).toEqual({ username: "carol", password: "c", serveraddress: "registry.example.com" });
    expect(await registryCredentials("127.0.0.1:5055/clipper-test/x:1", env)).toEqual({ username: "dave", password: "d", serveraddress: "127.0.0.1:5055" });
  });

  it("files Docker Hub under https://index.docker.io/v1/, and reads its legacy keys", async () => {
    writeConfig({ auths: { [DOCKER_HUB_KEY]: { auth: b64("hubuser:hubpass") } } });
    const hub = { username: "hubuser", password: "hubpass", serveraddress: DOCKER_HUB_KEY };
    expect(await registryCredentials("python:3.12", env)).toEqual(hub);
    expect(await registryCredentials("team/model:1", env)).toEqual(hub);
    expect(await registryCredentials("docker.io/team/model:1", env)).toEqual(hub);
    writeConfig({ auths: { "index.docker.io": { auth: b64("old:style") } } });
    expect(await registryCredentials("team/model:1", env)).toEqual({ username: "old", password: "style", serveraddress: DOCKER_HUB_KEY });
  });

  it("passes an identity token on", async () => {
    writeConfig({ auths: { "registry.example.com": { auth: b64("u:"), identitytoken: "refresh-token" } } });
    expect(await registryCredentials("registry.example.com/x", env))
      .toEqual({ username: "u", password: "", serveraddress: "registry.example.com", identitytoken: "refresh-token" });
    writeConfig({ auths: { "registry.example.com": { identitytoken: "only-token" } } });
    expect(await registryCredentials("registry.example.com/x", env))
      .toEqual({ username: "", password: "", serveraddress: "registry.example.com", identitytoken: "only-token" });
  });

  it("asks credHelpers' helper with the server address on stdin, before auths", async () => {
    writeConfig({ credHelpers: { "gcr.example.com": "fake" }, auths: { "gcr.example.com": { auth: b64("file:creds") } } });
    const found = await findRegistryCredentials("gcr.example.com/project/model:1", env);
    expect(found).toEqual({
      host: "gcr.example.com", serverAddress: "gcr.example.com", source: "docker-credential-fake",
      auth: { username: "helper-user", password: "helper-secret", serveraddress: "gcr.example.com" },
    });
    // As the docker CLI sends it: the bare address.
    expect(readFileSync(join(bin, "fake.stdin"), "utf8")).toBe("gcr.example.com");
    // Other registries do not use that helper.
    expect(await registryCredentials("python:3.12", env)).toBeUndefined();
  });

  it("asks a Docker Hub helper with Docker Hub's key", async () => {
    writeConfig({ credHelpers: { [DOCKER_HUB_KEY]: "fake" } });
    expect(await registryCredentials("python:3.12", env)).toEqual({ username: "helper-user", password: "helper-secret", serveraddress: DOCKER_HUB_KEY });
    expect(readFileSync(join(bin, "fake.stdin"), "utf8")).toBe(DOCKER_HUB_KEY);
  });

  it("reads a helper's <token> answer as an identity token", async () => {
    writeConfig({ credHelpers: { "registry.example.com": "token" } });
    expect(await registryCredentials("registry.example.com/x:1", env))
      .toEqual({ username: "", password: "", serveraddress: "registry.example.com", identitytoken: "identity-token-123" });
  });

  it("uses credsStore when auths has no credentials for the registry (docker login with a store writes {})", async () => {
    writeConfig({ credsStore: "fake", auths: { "registry.example.com": {} } });
    expect(await findRegistryCredentials("registry.example.com/x:1", env)).toMatchObject({
      source: "docker-credential-fake", auth: { username: "helper-user", password: "helper-secret", serveraddress: "registry.example.com" },
    });
    // auths' own credentials come first.
    writeConfig({ credsStore: "fake", auths: { "registry.example.com": { auth: b64("file:creds") } } });
    expect(await findRegistryCredentials("registry.example.com/x:1", env))
      .toMatchObject({ source: join(configDir, "config.json"), auth: { username: "file", password: "creds" } });
  });

  it("treats a helper's 'credentials not found' as no credentials, not an error", async () => {
    writeConfig({ credsStore: "empty" });
    expect(await registryCredentials("registry.example.com/x:1", env)).toBeUndefined();
    writeConfig({ credHelpers: { "registry.example.com": "empty" } });
    expect(await registryCredentials("registry.example.com/x:1", env)).toBeUndefined();
  });

  it("fails naming the helper when it is missing, fails, or answers garbage", async () => {
    writeConfig({ credsStore: "nosuch" });
    const missing = await failure(registryCredentials("registry.example.com/x:1", env));
    expect(missing).toBeInstanceOf(ClipperError);
    expect(missing.code).toBe("USAGE");
    expect(missing.message).toContain("docker-credential-nosuch");
    expect(missing.message).toContain("not installed or not on PATH");
    expect(missing.message).toContain("registry.example.com");

    writeConfig({ credHelpers: { "registry.example.com": "broken" } });
    const broken = await failure(registryCredentials("registry.example.com/x:1", env));
    expect(broken.message).toContain("docker-credential-broken");
    expect(broken.message).toContain("exited with code 3");
    expect(broken.message).toContain("boom: the keychain is locked");
    expect(broken.hint).toContain("docker-credential-broken get");

    writeConfig({ credHelpers: { "registry.example.com": "garbage" } });
    const garbage = await failure(registryCredentials("registry.example.com/x:1", env));
    expect(garbage.message).toContain("docker-credential-garbage");
    expect(garbage.message).toContain("not JSON: this is not json");
  });

  it("fails with USAGE naming the file when config.json is not JSON", async () => {
    writeFileSync(join(configDir, "config.json"), "{ \"auths\": { broken");
    const error = await failure(registryCredentials("python:3.12", env));
    expect(error).toBeInstanceOf(ClipperError);
    expect(error.code).toBe("USAGE");
    expect(error.message).toContain(join(configDir, "config.json"));
    expect(error.message).toContain("not valid JSON");
  });
});

const skipReason = (await dockerSkipReason()) ?? authRegistrySkipReason();

describe.skipIf(skipReason !== undefined)(`pushing to a registry that wants credentials${skipReason ? ` (skipped: ${skipReason})` : ""}`, () => {
  const RUN_LABEL = "ai.clipper.test.run";
  const runId = `auth-push-${randomBytes(4).toString("hex")}`;
  const docker = dockerClient();
  const saved = { DOCKER_CONFIG: process.env.DOCKER_CONFIG, PATH: process.env.PATH };
  let registry: AuthRegistry | undefined;
  let work: string;
  let tag: string;

  /** Pushes `tag` with `config` as the only docker config (and `bin` first on PATH); the error, or undefined. */
  async function pushWith(config: unknown, auth?: RegistryAuth, bin?: string): Promise<ImageBuildError | undefined> {
    const dir = mkdtempSync(join(work, "config-"));
    if (config !== undefined) writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    process.env.DOCKER_CONFIG = dir;
    if (bin) process.env.PATH = `${bin}:${saved.PATH ?? "/usr/bin:/bin"}`;
    try {
      return await pushImage(docker, tag, undefined, auth).then(() => undefined, (err: unknown) => {
        if (err instanceof ImageBuildError) return err;
        throw err;
      });
    } finally {
      if (saved.DOCKER_CONFIG === undefined) delete process.env.DOCKER_CONFIG;
      else process.env.DOCKER_CONFIG = saved.DOCKER_CONFIG;
      process.env.PATH = saved.PATH;
    }
  }

  /** The tags of the pushed repository, read with the right credentials. */
  async function tags(): Promise<string[]> {
    const answer = await registry!.get("/v2/clipper-test/auth-push/tags/list");
    if (answer.status === 404) return [];
    expect(answer.status, answer.body).toBe(200);
    return (JSON.parse(answer.body) as { tags?: string[] | null }).tags ?? [];
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "clipper-auth-push-"));
    registry = await startAuthRegistry();
    tag = `${registry.address}/clipper-test/auth-push:${runId}`;
    // A tiny image (one small file, no base to pull), so each push takes well under a second.
    const context = new BuildContext();
    context.addData("hello.txt", `${runId}\n`);
    const text = `FROM scratch\nCOPY hello.txt /hello.txt\nLABEL ${RUN_LABEL}="${runId}"\n`;
    await runDockerBuild(docker, { context, dockerfile: { text, instructions: [] }, tag });
  }, 60_000);

  afterAll(async () => {
    await registry?.stop();
    await removeByLabel(docker, RUN_LABEL, runId);
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  const right = (): { auths: Record<string, { auth: string }> } =>
    ({ auths: { [registry!.address]: { auth: b64(`${AUTH_REGISTRY_USER}:${AUTH_REGISTRY_PASSWORD}`) } } });
  const wrong = (): { auths: Record<string, { auth: string }> } =>
    ({ auths: { [registry!.address]: { auth: b64(`${AUTH_REGISTRY_USER}:not-the-password`) } } });

  it("is refused without credentials, with a hint to docker login the registry", async () => {
    const error = await pushWith(undefined);
    expect(error).toBeInstanceOf(ImageBuildError);
    expect(error!.code).toBe("BUILD_FAILED");
    expect(error!.message).toMatch(new RegExp(`^pushing ${tag.replace(/[.]/g, "\\.")} failed: .*(no basic auth credentials|unauthorized|authentication required)`));
    expect(error!.hint).toContain(`\`docker login ${registry!.address}\``);
    expect(await tags()).not.toContain(runId);
  }, 60_000);

  it("is refused with a wrong password from the config file, naming the file", async () => {
    const error = await pushWith(wrong());
    expect(error).toBeInstanceOf(ImageBuildError);
    expect(error!.hint).toContain("the registry refused the credentials from");
    expect(error!.hint).toContain(`\`docker login ${registry!.address}\``);
  }, 60_000);

  it("succeeds with the credentials docker login stored in auths", async () => {
    expect(await pushWith(right())).toBeUndefined();
    expect(await tags()).toContain(runId);
  }, 60_000);

  it("succeeds with a credential helper (credHelpers), and with explicit registryAuth over wrong stored ones", async () => {
    const bin = mkdtempSync(join(work, "bin-"));
    const helper = join(bin, "docker-credential-clippertest");
    writeFileSync(helper, `#!/bin/sh\ncat >/dev/null\nprintf '{"ServerURL":"x","Username":"${AUTH_REGISTRY_USER}","Secret":"${AUTH_REGISTRY_PASSWORD}"}\\n'\n`);
    chmodSync(helper, 0o755);
    expect(await pushWith({ credHelpers: { [registry!.address]: "clippertest" } }, undefined, bin)).toBeUndefined();

    expect(await pushWith(wrong(), { username: AUTH_REGISTRY_USER, password: AUTH_REGISTRY_PASSWORD })).toBeUndefined();
    expect(await pushWith(right(), { username: AUTH_REGISTRY_USER, password: "wrong" })).toBeInstanceOf(ImageBuildError);
    expect(await tags()).toContain(runId);
  }, 60_000);
});
