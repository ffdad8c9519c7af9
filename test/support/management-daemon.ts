/**
 * Helpers for the management daemon tests: the compiled daemon as a child process, and a reader
 * for NDJSON watch streams.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach } from "vitest";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const DAEMON_ENTRY = join(ROOT, "dist", "runtime", "management", "main.js");

/**
 * `npm test` builds first; when this file is run alone and dist is missing or older than the
 * daemon's sources, build it here (other people's type errors do not stop tsc from emitting).
 */
export function ensureDaemonBuilt(): void {
  const sourcesDir = join(ROOT, "runtime", "management");
  const newestSource = Math.max(...readdirSync(sourcesDir).map((f) => statSync(join(sourcesDir, f)).mtimeMs));
  if (existsSync(DAEMON_ENTRY) && statSync(DAEMON_ENTRY).mtimeMs >= newestSource) return;
  try {
    execFileSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", ROOT], {
      stdio: "ignore",
    });
  } catch {
    // Type errors elsewhere in the tree still emit; the check below decides.
  }
  if (!existsSync(DAEMON_ENTRY)) throw new Error(`${DAEMON_ENTRY} is missing: run \`npx tsc -p .\` first`);
}

export interface Daemon {
  child: ChildProcess;
  url: string;
  /** Everything it wrote on stderr so far. */
  stderr(): string;
}

/** Starts the compiled daemon and resolves with its URL once it logs that it listens. */
export function startDaemon(args: string[], timeoutMs = 15_000): Promise<Daemon> {
  const child = spawn(process.execPath, [DAEMON_ENTRY, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CLIPPER_LOG_LEVEL: "info" },
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`daemon did not start within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited with ${code} before listening: ${stderr}`));
    });
    createInterface({ input: child.stdout! }).on("line", (line) => {
      try {
        const entry = JSON.parse(line) as { url?: string };
        if (entry.url) {
          clearTimeout(timer);
          resolve({ child, url: entry.url, stderr: () => stderr });
        }
      } catch {
        // not a log line
      }
    });
  });
}

/** Sends SIGKILL and waits until the process is gone. */
export function killHard(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

/** Runs the daemon with `args` to completion; for flag errors. */
export function runDaemon(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [DAEMON_ENTRY, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

/** Reads NDJSON lines from a fetch body, one per call. */
export class LineReader {
  private buffered = "";
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();

  constructor(body: ReadableStream<Uint8Array>) {
    this.reader = body.getReader();
  }

  async next(): Promise<string> {
    for (;;) {
      const newline = this.buffered.indexOf("\n");
      if (newline >= 0) {
        const line = this.buffered.slice(0, newline);
        this.buffered = this.buffered.slice(newline + 1);
        return line;
      }
      const { value, done } = await this.reader.read();
      if (done) throw new Error("stream ended");
      this.buffered += this.decoder.decode(value, { stream: true });
    }
  }

  /** The next line that is not a `{}` keepalive: a snapshot (`state`) or a delta (`base`, `changes`). */
  async nextUpdate(): Promise<{ revision: number; daemon?: string; state?: any; base?: number; changes?: any[] }> {
    for (;;) {
      const line = await this.next();
      if (line !== "{}") return JSON.parse(line);
    }
  }

  async cancel(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
  }
}

/** A JSON POST to a daemon started by startDaemon: its status, text and (when JSON) parsed body. */
export async function postToDaemon(daemon: Daemon, path: string, body: unknown): Promise<{ status: number; text: string; json: any }> {
  const res = await fetch(daemon.url + path, {
    method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

/** For a describe block: starts a daemon on a state directory, each one killed (-9) after its test. */
export function daemonsKilledAfterEach(): (stateDir: string) => Promise<Daemon> {
  const running: Daemon[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((d) => killHard(d.child)));
  });
  return async (stateDir) => {
    const daemon = await startDaemon(["--state-dir", stateDir, "--port", "0"]);
    running.push(daemon);
    return daemon;
  };
}
