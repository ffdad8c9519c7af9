/**
 * Registry credentials the way the docker CLI finds them, so that `docker login REGISTRY` (or a
 * cloud credential helper) is enough for our pushes too. The Docker daemon never reads the CLI's
 * config file: a client must send the credentials itself (`X-Registry-Auth`), which pushImage does
 * with what is found here.
 *
 * The config file is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. For an image
 * reference's registry (its first path component when that holds '.' or ':' or is `localhost`,
 * else Docker Hub, whose key is `https://index.docker.io/v1/`), in order:
 *   1. `credHelpers[registry]`: `docker-credential-<helper> get`, the server address on stdin;
 *   2. `auths[registry]` (also a key written with a scheme or a path, e.g. `https://host/v2/`, and
 *      Docker Hub's other keys): `auth` (base64 `user:password`), `username`/`password`, `identitytoken`;
 *   3. `credsStore`, the default helper, as in 1.
 * A helper answers `{ "ServerURL", "Username", "Secret" }`; the Username `<token>` makes the Secret
 * an identity token. "credentials not found" from a helper means no credentials (an anonymous push).
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { ClipperError } from "../errors.js";
import type { RegistryAuth } from "./types.js";

/** The key the docker CLI files Docker Hub's credentials under. */
export const DOCKER_HUB_KEY = "https://index.docker.io/v1/";
/** The host names that mean Docker Hub. */
const DOCKER_HUB_HOSTS = new Set(["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"]);
/** How long a credential helper may take (a cloud helper may fetch a token over the network). */
export const HELPER_TIMEOUT_MS = 10_000;
/** What helpers print (docker-credential-helpers' errCredentialsNotFound) when they hold nothing for the server. */
const NOT_FOUND = /credentials not found/i;
/** The Username a helper answers when its Secret is an identity (refresh) token. */
const TOKEN_USERNAME = "<token>";

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface DockerConfigFile {
  auths?: Record<string, AuthEntry | null>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** Credentials found for a registry, and where they came from (for messages). */
export interface FoundCredentials {
  /** The registry's host[:port], `docker.io` for Docker Hub. */
  host: string;
  /** The config key the credentials are filed under: the host, or DOCKER_HUB_KEY. */
  serverAddress: string;
  /** undefined when nothing is configured for the registry (the push is anonymous). */
  auth?: RegistryAuth;
  /** e.g. `/root/.docker/config.json` or `docker-credential-desktop`; undefined with no auth. */
  source?: string;
}

/** The registry of an image reference: `host:5000/a/b:1` -> `host:5000`; `python:3.12`, `team/x` -> `docker.io`. */
export function registryHost(imageRef: string): string {
  const slash = imageRef.indexOf("/");
  if (slash < 0) return "docker.io";
  const first = imageRef.slice(0, slash);
  // The CLI's rule (distribution/reference): an uppercase first component is a host too.
  if (!/[.:]/.test(first) && first !== "localhost" && first.toLowerCase() === first) return "docker.io";
  return DOCKER_HUB_HOSTS.has(first) ? "docker.io" : first;
}

/** The config key for a registry host: DOCKER_HUB_KEY for Docker Hub, else the host itself. */
export function credentialKey(host: string): string {
  return DOCKER_HUB_HOSTS.has(host) ? DOCKER_HUB_KEY : host;
}

/** The command that logs in to a registry: `docker login` for Docker Hub, else `docker login HOST`. */
export function loginCommand(host: string): string {
  return DOCKER_HUB_HOSTS.has(host) ? "docker login" : `docker login ${host}`;
}

/** The docker CLI's config file for `env`: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG?.trim();
  if (dir) return join(dir, "config.json");
  return join(env.HOME?.trim() || homedir(), ".docker", "config.json");
}

/** The credentials to push `imageRef` with, as the docker CLI would send them; undefined when none are configured. */
export async function registryCredentials(imageRef: string, env: NodeJS.ProcessEnv = process.env): Promise<RegistryAuth | undefined> {
  return (await findRegistryCredentials(imageRef, env)).auth;
}

/** registryCredentials, with the registry and where the credentials came from. */
export async function findRegistryCredentials(imageRef: string, env: NodeJS.ProcessEnv = process.env): Promise<FoundCredentials> {
  const host = registryHost(imageRef);
  const serverAddress = credentialKey(host);
  const path = dockerConfigPath(env);
  const config = readConfig(path);
  if (!config) return { host, serverAddress };

  const helper = credentialHelper(config, host, serverAddress);
  if (helper) {
    const auth = await fromHelper(helper, serverAddress, env);
    return { host, serverAddress, ...(auth ? { auth, source: `docker-credential-${helper}` } : {}) };
  }
  const entry = authEntry(config, host, serverAddress);
  const auth = entry ? fromEntry(entry, serverAddress, path) : undefined;
  if (auth) return { host, serverAddress, auth, source: path };
  const store = typeof config.credsStore === "string" ? config.credsStore.trim() : "";
  if (store) {
    const stored = await fromHelper(store, serverAddress, env);
    return { host, serverAddress, ...(stored ? { auth: stored, source: `docker-credential-${store}` } : {}) };
  }
  return { host, serverAddress };
}

function readConfig(path: string): DockerConfigFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ENOTDIR") return undefined;
    throw new ClipperError("USAGE", `cannot read the docker config file ${path}: ${(err as Error).message}`,
      "fix its permissions, or point DOCKER_CONFIG at another directory");
  }
  if (!text.trim()) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ClipperError("USAGE", `the docker config file ${path} is not valid JSON: ${(err as Error).message}`,
      "fix or remove it (docker login rewrites it), or point DOCKER_CONFIG at another directory");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ClipperError("USAGE", `the docker config file ${path} is not a JSON object`,
      "fix or remove it (docker login rewrites it), or point DOCKER_CONFIG at another directory");
  }
  return parsed as DockerConfigFile;
}

function credentialHelper(config: DockerConfigFile, host: string, serverAddress: string): string | undefined {
  const helpers = config.credHelpers;
  if (!helpers || typeof helpers !== "object") return undefined;
  for (const key of [serverAddress, host]) {
    const helper = helpers[key];
    if (typeof helper === "string" && helper.trim()) return helper.trim();
  }
  if (serverAddress === DOCKER_HUB_KEY) {
    for (const [key, helper] of Object.entries(helpers)) {
      if (DOCKER_HUB_HOSTS.has(hostOfKey(key)) && typeof helper === "string" && helper.trim()) return helper.trim();
    }
  }
  return undefined;
}

/** `https://host:5000/v1/` -> `host:5000` (the CLI's ConvertToHostname). */
function hostOfKey(key: string): string {
  return key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").split("/")[0]!.toLowerCase();
}

function authEntry(config: DockerConfigFile, host: string, serverAddress: string): AuthEntry | undefined {
  const auths = config.auths;
  if (!auths || typeof auths !== "object") return undefined;
  const exact = auths[serverAddress] ?? auths[host];
  if (exact && typeof exact === "object") return exact;
  const hub = serverAddress === DOCKER_HUB_KEY;
  for (const [key, entry] of Object.entries(auths)) {
    const keyHost = hostOfKey(key);
    if (entry && typeof entry === "object" && (keyHost === host.toLowerCase() || (hub && DOCKER_HUB_HOSTS.has(keyHost)))) return entry;
  }
  return undefined;
}

function fromEntry(entry: AuthEntry, serverAddress: string, path: string): RegistryAuth | undefined {
  let username = typeof entry.username === "string" ? entry.username : "";
  let password = typeof entry.password === "string" ? entry.password : "";
  if (typeof entry.auth === "string" && entry.auth.trim()) {
    const decoded = Buffer.from(entry.auth.trim(), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) {
      throw new ClipperError("USAGE", `the docker config file ${path} holds an auth for ${serverAddress} that is not base64 of user:password`,
        `log in again: ${loginCommand(hostOfKey(serverAddress))}`);
    }
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  const identitytoken = typeof entry.identitytoken === "string" && entry.identitytoken ? entry.identitytoken : undefined;
  if (!username && !password && !identitytoken) return undefined;
  return { username, password, serveraddress: serverAddress, ...(identitytoken ? { identitytoken } : {}) };
}

interface HelperAnswer {
  ServerURL?: string;
  Username?: string;
  Secret?: string;
}

/** `docker-credential-<helper> get` for `serverAddress`; undefined when the helper holds nothing for it. */
async function fromHelper(helper: string, serverAddress: string, env: NodeJS.ProcessEnv): Promise<RegistryAuth | undefined> {
  const program = `docker-credential-${helper}`;
  const fail = (why: string): ClipperError =>
    new ClipperError("USAGE", `the docker credential helper ${program} failed to give credentials for ${serverAddress}: ${why}`,
      `check that ${program} is installed and works (echo ${serverAddress} | ${program} get), or change credHelpers/credsStore in ${dockerConfigPath(env)}`);
  const result = await runHelper(program, serverAddress, env);
  if (result.error) {
    const code = (result.error as NodeJS.ErrnoException).code;
    throw fail(code === "ENOENT" ? `${program} is not installed or not on PATH` : result.error.message);
  }
  if (result.timedOut) throw fail(`it did not answer within ${HELPER_TIMEOUT_MS / 1000} s`);
  const stdout = result.stdout.trim();
  const stderr = result.stderr.trim();
  if (result.code !== 0) {
    // Helpers print their error on stdout (docker-credential-helpers), some on stderr.
    if (NOT_FOUND.test(stdout) || NOT_FOUND.test(stderr)) return undefined;
    const output = [stderr, stdout].filter(Boolean).join("; ");
    throw fail(`${result.signal ? `killed by ${result.signal}` : `it exited with code ${result.code}`}${output ? `: ${clip(output)}` : ""}`);
  }
  let answer: HelperAnswer;
  try {
    answer = JSON.parse(stdout) as HelperAnswer;
  } catch {
    throw fail(`its answer is not JSON: ${clip(stdout) || "(empty)"}${stderr ? ` (stderr: ${clip(stderr)})` : ""}`);
  }
  if (typeof answer !== "object" || answer === null) throw fail(`its answer is not a JSON object: ${clip(stdout)}`);
  const username = typeof answer.Username === "string" ? answer.Username : "";
  const secret = typeof answer.Secret === "string" ? answer.Secret : "";
  if (!username && !secret) return undefined;
  if (username === TOKEN_USERNAME) return { username: "", password: "", serveraddress: serverAddress, identitytoken: secret };
  return { username, password: secret, serveraddress: serverAddress };
}

interface HelperResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  error?: Error;
}

function runHelper(program: string, serverAddress: string, env: NodeJS.ProcessEnv): Promise<HelperResult> {
  return new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    let settled = false;
    const finish = (result: Omit<HelperResult, "stdout" | "stderr" | "timedOut">): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...result, stdout, stderr, timedOut });
    };
    // With `env` given, the program is looked up on env.PATH.
    const child = spawn(program, ["get"], { env, stdio: ["pipe", "pipe", "pipe"] });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, HELPER_TIMEOUT_MS);
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => { if (stdout.length < 65536) stdout += chunk; });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => { if (stderr.length < 65536) stderr += chunk; });
    child.on("error", (error) => finish({ code: null, signal: null, error }));
    child.on("close", (code, signal) => finish({ code, signal }));
    // A helper that exits without reading stdin makes the write fail with EPIPE: its exit status tells.
    child.stdin.on("error", () => undefined);
    // As the docker CLI sends it: the bare address, no newline.
    child.stdin.end(serverAddress);
  });
}

function clip(text: string): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > 300 ? `${one.slice(0, 300)}...` : one;
}
