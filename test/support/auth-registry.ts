/**
 * A registry that wants credentials, for the push credential tests: the distribution registry
 * (Debian's docker-registry, as scripts/start-registry.sh runs it) with `auth: htpasswd`, started by
 * the test itself on a free loopback port (127.0.0.1 only, plain HTTP: the Docker daemon treats
 * 127.0.0.0/8 as an insecure registry without configuration) and stopped by it. One user,
 * AUTH_REGISTRY_USER / AUTH_REGISTRY_PASSWORD.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./cli.js";
import { IN_CI } from "./docker.js";

export const AUTH_REGISTRY_USER = "clipper";
export const AUTH_REGISTRY_PASSWORD = "clipper-test-secret";
/**
 * bcrypt of AUTH_REGISTRY_PASSWORD (cost 5), the only hash the registry's htpasswd accepts; made
 * once, offline, with the C library's crypt:
 * perl -e 'print crypt("clipper-test-secret", q($2b$05$b8KUCriCd4IM6iugVth2/O))'
 */
const PASSWORD_BCRYPT = "$2b$05$b8KUCriCd4IM6iugVth2/OzmzSNq2aoLwkrroPNTJxvAxRXAYgbfS";

/** Why the auth registry cannot be started here (one line), or undefined; always undefined in CI. */
export function authRegistrySkipReason(): string | undefined {
  if (IN_CI) return undefined;
  const found = spawnSync("docker-registry", ["--version"], { encoding: "utf8", timeout: 5000 });
  if (found.error || found.status !== 0) return "docker-registry is not installed (apt-get install docker-registry)";
  return undefined;
}

export interface AuthRegistry {
  /** `127.0.0.1:PORT`. */
  address: string;
  /** An HTTP request to the registry's API with the right credentials, e.g. get("/v2/x/tags/list"). */
  get(path: string): Promise<{ status: number; body: string }>;
  /** Stops the registry (the process this started) and removes its storage. */
  stop(): Promise<void>;
}

/** Starts the registry with htpasswd auth on a free loopback port and waits until it answers GET /v2/ with 401. */
export async function startAuthRegistry(): Promise<AuthRegistry> {
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), "clipper-auth-registry-"));
  mkdirSync(join(dir, "data"));
  writeFileSync(join(dir, "htpasswd"), `${AUTH_REGISTRY_USER}:${PASSWORD_BCRYPT}\n`);
  const config = join(dir, "config.yml");
  writeFileSync(config, [
    "version: 0.1",
    "log:",
    "  level: warn",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${join(dir, "data")}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: ${address}`,
    "auth:",
    "  htpasswd:",
    "    realm: clipper-test",
    `    path: ${join(dir, "htpasswd")}`,
    "",
  ].join("\n"));
  const log = join(dir, "registry.log");
  const fd = openSync(log, "a");
  const child: ChildProcess = spawn("docker-registry", ["serve", config], { stdio: ["ignore", fd, fd] });
  closeSync(fd);
  let exited = false;
  child.once("exit", () => { exited = true; });

  const basic = `Basic ${Buffer.from(`${AUTH_REGISTRY_USER}:${AUTH_REGISTRY_PASSWORD}`).toString("base64")}`;
  const get = async (path: string): Promise<{ status: number; body: string }> => {
    const response = await fetch(`http://${address}${path}`, { headers: { Authorization: basic }, signal: AbortSignal.timeout(10_000) });
    return { status: response.status, body: await response.text() };
  };
  const stop = async (): Promise<void> => {
    if (!exited) {
      const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (exited) break;
    try {
      const answer = await fetch(`http://${address}/v2/`, { signal: AbortSignal.timeout(1000) });
      if (answer.status === 401) return { address, get, stop };
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const output = readFileSync(log, "utf8").trim().split("\n").slice(-20).join("\n");
  await stop();
  throw new Error(`docker-registry with htpasswd auth did not answer 401 at http://${address}/v2/ within 10 s${exited ? " (it exited)" : ""}:\n${output}`);
}
