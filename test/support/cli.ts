/** Runs the built `clipper` CLI as a user would, in a private CLIPPER_HOME. */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect } from "vitest";
import { findFreePortRun } from "../../src/managers/local/ports.js";

export const CLI = join(fileURLToPath(new URL("../..", import.meta.url)), "dist", "bin", "clipper.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
}

/** How the CLI is started: the built repository's entry by default; `npx clipper` in a project that installed the package. */
export interface CliLauncher {
  command: string;
  args: string[];
  cwd?: string;
}

export const REPO_CLI: CliLauncher = { command: process.execPath, args: [CLI] };

/** Runs a command to its end (killed after `timeoutMs`); `json` is its stdout parsed, when it parses. */
export function runCommand(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} ${args.join(" ")} did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
  });
}

export function runCli(args: string[], env: Record<string, string>, timeoutMs = 120_000, launcher: CliLauncher = REPO_CLI): Promise<CliResult> {
  return runCommand(launcher.command, [...launcher.args, ...args], { env: { ...process.env, ...env }, ...(launcher.cwd ? { cwd: launcher.cwd } : {}), timeoutMs });
}

/** A port that was free a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/**
 * The CLI bound to one CLIPPER_HOME (and, for `ok`, one cluster): `cli` returns what a command did;
 * `ok` adds `--json`, asserts exit 0 (showing the output otherwise) and returns the parsed JSON.
 */
export function cliFor(env: Record<string, string>, options: { cluster?: string; timeoutMs?: number; launcher?: CliLauncher } = {}) {
  const cluster = options.cluster ? ["--cluster", options.cluster] : [];
  const cli = (...args: string[]): Promise<CliResult> => runCli(args, env, options.timeoutMs, options.launcher);
  const ok = async (...args: string[]): Promise<any> => {
    const r = await runCli([...args, ...cluster, "--json"], env, options.timeoutMs, options.launcher);
    expect(r.code, `clipper ${args.join(" ")} failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
    return r.json;
  };
  return { cli, ok };
}

/**
 * A local cluster for one describe block, through the CLI: a private CLIPPER_HOME, started on free
 * ports before its first test (after `before`), stopped and removed after its last. `urls` is
 * filled in by the start.
 */
export function cliCluster(prefix: string, options: {
  env?: Record<string, string>; startFlags?: string[]; before?: () => void; launcher?: CliLauncher;
  /** RPC ports the cluster binds from --rpc-port on (its --frontend-workers); default 1. */
  rpcPorts?: number;
} = {}) {
  const home = mkdtempSync(join(tmpdir(), prefix));
  const { cli, ok } = cliFor({ CLIPPER_HOME: home, FORCE_COLOR: "0", ...options.env }, options.launcher ? { launcher: options.launcher } : {});
  const urls = { queryUrl: "", managementUrl: "" };
  beforeAll(async () => {
    options.before?.();
    const [q, m] = [await freePort(), await freePort()];
    // A run below the ephemeral range, as the local manager picks its own: the port after a free
    // ephemeral one may be taken by any outgoing connection meanwhile.
    const r = await findFreePortRun("127.0.0.1", options.rpcPorts ?? 1, [q, m]);
    const started = await ok("start", "--query-port", String(q), "--management-port", String(m), "--rpc-port", String(r), ...(options.startFlags ?? []));
    urls.queryUrl = started.queryUrl;
    urls.managementUrl = started.managementUrl;
  }, 120_000);
  afterAll(async () => {
    await cli("stop");
    rmSync(home, { recursive: true, force: true });
  }, 60_000);
  return { home, cli, ok, urls };
}

/** POSTs one input to an application's predict endpoint and returns the JSON answer (asserting 200). */
export async function predictAt(queryUrl: string, app: string, input: unknown): Promise<any> {
  const res = await fetch(`${queryUrl}/${app}/predict`, { method: "POST", body: JSON.stringify({ input }) });
  expect(res.status).toBe(200);
  return res.json();
}
