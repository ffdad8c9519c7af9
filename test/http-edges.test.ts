/**
 * The HTTP edges of issue 16 §3 on both servers (shared/http-guard.ts), over raw sockets on
 * 127.0.0.1: a malformed request pipelined behind well-formed ones, an answer sent while the
 * client is still uploading, the connection cap and its default below the descriptor limit.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startManagementServer, type ManagementServer } from "../runtime/management/server.js";
import { parseFlags as parseDaemonFlags } from "../runtime/management/flags.js";
import { startQueryFrontend, type RunningFrontend } from "../runtime/frontend/frontend.js";
import { createGuardedServer } from "../runtime/shared/http-guard.js";
import { defaultMaxConnections, maxConnectionsFor, softFdLimit, softFdLimitOf } from "../runtime/shared/connection-limit.js";
import { generateRpcKey } from "../runtime/shared/rpc-auth.js";
import { DEFAULT_CLUSTER_OPTIONS } from "../src/connection.js";
import { frontendTuningFlags, managementCommand } from "../src/managers/cluster-spec.js";
import { ClusterOptionsSchema } from "../src/managers/local/schemas.js";
import { keepSending, rawConnect as connectRaw, type RawConnection, rawRequest } from "./support/raw-http.js";
import { tempDirs } from "./support/temp-dirs.js";
import { waitFor } from "./support/cluster-in-process.js";
import { AdminClient } from "../src/admin-client.js";

const silent = pino({ level: "silent" });
const tempDir = tempDirs("clipper-http-edges-");
const CAP = 20;
const MAX_BODY = 1024;
const UPLOAD_CHUNK = Buffer.alloc(2 ** 20, "x");

interface ServerUnderTest {
  port: number;
  /** A well-formed request the server answers 200 asynchronously (after a tick at least). */
  slowOk: string;
  /** A request whose body is over the limit, declaring `length` bytes. */
  tooLarge(length: number): string;
}

let daemon: ManagementServer;
/** The frontend's own daemon: its watch and report connections stay off the daemon under test. */
let backing: ManagementServer;
let frontend: RunningFrontend;
const servers: Record<string, () => ServerUnderTest> = {};

beforeAll(async () => {
  daemon = await startManagementServer({
    host: "127.0.0.1", port: 0, stateDir: await tempDir(), logger: silent, maxConnections: CAP, maxBodyBytes: MAX_BODY,
  });
  backing = await startManagementServer({ host: "127.0.0.1", port: 0, stateDir: await tempDir(), logger: silent });
  frontend = await startQueryFrontend({
    host: "127.0.0.1", port: 0, rpcPort: 0, managementUrl: backing.url, log: silent, maxConnections: CAP, maxBodyBytes: MAX_BODY,
    rpcAuth: "plain", rpcKey: generateRpcKey(), reportIntervalMs: 60_000,
  });
  const json = { "Content-Type": "application/json" };
  servers["management daemon"] = () => ({
    port: daemon.port,
    slowOk: rawRequest("POST", "/admin/get_all_models", json, "{}"),
    tooLarge: (length) => rawRequest("POST", "/admin/add_app", { ...json, "Content-Length": length }),
  });
  servers["query frontend"] = () => ({
    port: frontend.port,
    slowOk: rawRequest("GET", "/metrics"),
    tooLarge: (length) => rawRequest("POST", "/nope/predict", { ...json, "Content-Length": length }),
  });
  // Predictions are served on the fast path (shared/http-fast-path.ts) until a request outside it
  // hands the connection to node:http: the same edges must hold across that hand-off.
  await new AdminClient({ managementUrl: backing.url }).postText("/admin/add_app", {
    name: "fast", input_type: "doubles", default_output: "-1.0", latency_slo_micros: 100_000,
  });
  await waitFor(() => frontend.state()?.applications["fast"] !== undefined, 10_000, "the frontend to see app 'fast'");
  servers["query frontend, fast path"] = () => ({
    port: frontend.port,
    slowOk: rawRequest("POST", "/fast/predict", json, JSON.stringify({ input: [1, 2] })),
    tooLarge: (length) => rawRequest("POST", "/fast/predict", { ...json, "Content-Length": length }),
  });
}, 30_000);

afterAll(async () => {
  await frontend?.close();
  await daemon?.close();
  await backing?.close();
});

/** Every test's connections are closed after it, so the next one starts below the cap. */
const opened: RawConnection[] = [];
async function rawConnect(port: number): Promise<RawConnection> {
  const conn = await connectRaw(port);
  opened.push(conn);
  return conn;
}
afterEach(async () => {
  for (const conn of opened.splice(0)) conn.close();
  await new Promise((r) => setTimeout(r, 50)); // the servers see the closes
});

const BAD_CONTENT_TYPE = rawRequest("POST", "/admin/get_all_models", { "Content-Type": "\x01" }, "{}");

describe.each(["management daemon", "query frontend", "query frontend, fast path"])("%s", { timeout: 30_000 }, (name) => {
  it("answers requests pipelined before a malformed one in order, then the 400, then closes", async () => {
    const s = servers[name]!();
    const conn = await rawConnect(s.port);
    conn.write(s.slowOk + s.slowOk + BAD_CONTENT_TYPE);
    await conn.finished;
    const answers = conn.responses();
    expect(answers.map((r) => r.status)).toEqual([200, 200, 400]);
    expect(answers[2]!.headers.connection).toBe("close");
    expect(answers[2]!.body).toMatch(/malformed HTTP request: Invalid header value char/);
    expect(conn.error).toBeUndefined();
  });

  it("answers a malformed request alone with 400 and keeps no half-answered connection", async () => {
    const s = servers[name]!();
    const conn = await rawConnect(s.port);
    conn.write(BAD_CONTENT_TYPE);
    await conn.finished;
    expect(conn.responses().map((r) => r.status)).toEqual([400]);
  });

  it("lets a client that keeps uploading past the limit read the 413, then closes within the drain bounds", async () => {
    const s = servers[name]!();
    const conn = await rawConnect(s.port);
    conn.write(s.tooLarge(500 * 2 ** 20));
    // Keeps sending for up to 4 s, longer than the drain (1 s): the server closes meanwhile.
    const started = Date.now();
    await keepSending(conn, UPLOAD_CHUNK, 2, 4_000);
    expect(conn.socket.destroyed).toBe(true);
    expect(Date.now() - started).toBeLessThan(3_500);
    const [answer] = conn.responses();
    expect(answer?.status).toBe(413);
    expect(answer?.headers.connection).toBe("close");
  });

  it("lets a chunked upload that keeps going read its 413 too", async () => {
    const s = servers[name]!();
    const conn = await rawConnect(s.port);
    conn.write(s.tooLarge(0).replace("Content-Length: 0", "Transfer-Encoding: chunked"));
    const chunk = Buffer.concat([Buffer.from(`${UPLOAD_CHUNK.length.toString(16)}\r\n`), UPLOAD_CHUNK, Buffer.from("\r\n")]);
    await keepSending(conn, chunk, 2, 2_000);
    await conn.finished;
    expect(conn.responses()[0]?.status).toBe(413);
  });

  it(`at ${CAP} idle connections closes the idlest for a new client, which is served`, async () => {
    const s = servers[name]!();
    const idle: RawConnection[] = [];
    for (let i = 0; i < CAP; i++) {
      const conn = await rawConnect(s.port);
      conn.write(s.slowOk);
      await conn.waitForResponses(1);
      idle.push(conn);
    }
    const fresh = await rawConnect(s.port);
    fresh.write(s.slowOk);
    expect((await fresh.waitForResponses(1)).map((r) => r.status)).toEqual([200]);
    await idle[0]!.finished; // the one idle the longest
    expect(idle.slice(1).filter((c) => c.isFinished)).toHaveLength(0);
  });

  it(`at ${CAP} busy connections answers a new client 503 with Connection: close, and serves again once one closes`, async () => {
    const s = servers[name]!();
    const busy: RawConnection[] = [];
    for (let i = 0; i < CAP; i++) {
      const conn = await rawConnect(s.port);
      conn.write(s.slowOk.slice(0, 20)); // a request on its way: not idle
      busy.push(conn);
    }
    await new Promise((r) => setTimeout(r, 100)); // the server read their first bytes
    const refused = await rawConnect(s.port);
    refused.write(s.slowOk);
    await refused.finished;
    const [answer] = refused.responses();
    expect(answer?.status).toBe(503);
    expect(answer?.headers.connection).toBe("close");
    expect(answer?.body).toMatch(/limit of 20 connections \(--max-connections\)/);
    expect(refused.responses()).toHaveLength(1); // the request sent on it was not handled

    busy[0]!.close();
    await busy[0]!.closed;
    await new Promise((r) => setTimeout(r, 50));
    const next = await rawConnect(s.port);
    next.write(s.slowOk);
    expect((await next.waitForResponses(1)).map((r) => r.status)).toEqual([200]);
    // The busy ones were kept: their requests complete.
    busy[1]!.write(s.slowOk.slice(20));
    expect((await busy[1]!.waitForResponses(1)).map((r) => r.status)).toEqual([200]);
  });
});

describe("early answers on the query API", { timeout: 30_000 }, () => {
  it("lets a client that keeps uploading read a 401 it got before its body", async () => {
    const keyed = await startQueryFrontend({
      host: "127.0.0.1", port: 0, rpcPort: 0, managementUrl: backing.url, log: silent, queryAuth: "keys",
      rpcAuth: "plain", rpcKey: generateRpcKey(), reportIntervalMs: 60_000,
    });
    try {
      const conn = await rawConnect(keyed.port);
      conn.write(rawRequest("POST", "/a/predict", { "Content-Type": "application/json", "Content-Length": 100 * 2 ** 20 }));
      await keepSending(conn, UPLOAD_CHUNK, 2, 2_000);
      await conn.finished;
      expect(conn.responses()[0]?.status).toBe(401);
    } finally {
      await keyed.close();
    }
  });
});

describe("the drain after an early answer (shared/http-guard.ts)", { timeout: 30_000 }, () => {
  async function guarded(drain: { drainMs: number; drainBytes: number }) {
    const server = createGuardedServer({}, {
      maxConnections: 10, ...drain, errorAnswer: (_s, message) => ({ contentType: "text/plain", body: message }),
    }, (req, res) => {
      // Answered once the headers are in, or (`?after-body`) once the whole body is.
      const answer = () => {
        res.writeHead(413, { "content-length": 2 });
        res.end("no");
      };
      if (req.url === "/?after-body") req.resume().on("end", answer);
      else answer();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return { server, port: (server.address() as AddressInfo).port };
  }

  it("stops after its byte bound, long before its time bound", async () => {
    const { server, port } = await guarded({ drainMs: 20_000, drainBytes: 256 * 1024 });
    try {
      const conn = await rawConnect(port);
      conn.write(rawRequest("POST", "/", { "Content-Length": 100 * 2 ** 20 }));
      const started = Date.now();
      await keepSending(conn, UPLOAD_CHUNK, 2, 10_000);
      await conn.finished;
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(conn.responses()[0]?.status).toBe(413);
    } finally {
      server.close();
    }
  });

  it("stops after its time bound for a slow uploader", async () => {
    const { server, port } = await guarded({ drainMs: 300, drainBytes: 2 ** 30 });
    try {
      const conn = await rawConnect(port);
      conn.write(rawRequest("POST", "/", { "Content-Length": 100 * 2 ** 20 }));
      const started = Date.now();
      await keepSending(conn, Buffer.alloc(100, "x"), 20, 10_000);
      await conn.finished;
      const took = Date.now() - started;
      expect(took).toBeGreaterThanOrEqual(250);
      expect(took).toBeLessThan(3_000);
      expect(conn.responses()[0]?.status).toBe(413);
    } finally {
      server.close();
    }
  });

  it("keeps a keep-alive connection open when the whole body arrived before the answer", async () => {
    const { server, port } = await guarded({ drainMs: 300, drainBytes: 2 ** 30 });
    try {
      const conn = await rawConnect(port);
      conn.write(rawRequest("POST", "/?after-body", {}, "{}"));
      conn.write(rawRequest("POST", "/?after-body", {}, "{}"));
      expect((await conn.waitForResponses(2)).map((r) => [r.status, r.headers.connection])).toEqual([[413, "keep-alive"], [413, "keep-alive"]]);
      expect(conn.isFinished).toBe(false);
    } finally {
      server.close();
    }
  });
});

describe("the --max-connections setting", { timeout: 60_000 }, () => {
  const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20480                1048576              files
Max locked memory         8388608              8388608              bytes
`;

  it("defaults below the soft descriptor limit, by a tenth and at least 128", () => {
    expect(softFdLimitOf(LIMITS)).toBe(20_480);
    expect(softFdLimitOf(LIMITS.replace("20480 ", "unlimited "))).toBe(65_536);
    expect(softFdLimitOf("nothing here")).toBeUndefined();
    expect(maxConnectionsFor(20_480)).toBe(18_432);
    expect(maxConnectionsFor(1_024)).toBe(896);
    expect(maxConnectionsFor(100)).toBe(16);
    // This process: the rule applied to what /proc/self/limits says.
    expect(defaultMaxConnections()).toBeLessThan(softFdLimit());
    expect(defaultMaxConnections()).toBe(maxConnectionsFor(softFdLimit()));
  });

  it("reaches the daemon's and the frontend's command lines from the cluster options, and is left to them when absent", () => {
    const frontendFlags = frontendTuningFlags({ ...DEFAULT_CLUSTER_OPTIONS, maxConnections: 500 }, "/key");
    expect(frontendFlags.slice(frontendFlags.indexOf("--max-connections"), frontendFlags.indexOf("--max-connections") + 2)).toEqual(["--max-connections", "500"]);
    expect(frontendTuningFlags(DEFAULT_CLUSTER_OPTIONS, "/key")).not.toContain("--max-connections");
    const daemonFlags = managementCommand({ token: false, maxBodyBytes: 1, maxConnections: 500, allowedHosts: [] });
    expect(daemonFlags.slice(daemonFlags.indexOf("--max-connections"), daemonFlags.indexOf("--max-connections") + 2)).toEqual(["--max-connections", "500"]);
    expect(managementCommand({ token: false, maxBodyBytes: 1, allowedHosts: [] })).not.toContain("--max-connections");
    for (const bad of [0, -1, 1.5, "20"]) {
      expect(ClusterOptionsSchema.safeParse({ ...DEFAULT_CLUSTER_OPTIONS, maxConnections: bad }).success, String(bad)).toBe(false);
    }
  });

  it("is parsed by the daemon, with the default when absent, and refused below 1", () => {
    const parsed = parseDaemonFlags(["--state-dir", "/tmp/x", "--max-connections", "20"]);
    expect(parsed.help === false && parsed.options.maxConnections).toBe(20);
    const absent = parseDaemonFlags(["--state-dir", "/tmp/x"]);
    expect(absent.help === false && absent.options.maxConnections).toBe(defaultMaxConnections());
    for (const bad of ["0", "-3", "many", "1.5"]) expect(() => parseDaemonFlags(["--state-dir", "/tmp/x", "--max-connections", bad])).toThrow(/--max-connections/);
  });

  it("is refused by the frontend below 1, with exit 2 and one line", () => {
    const main = join(fileURLToPath(new URL("..", import.meta.url)), "dist", "runtime", "frontend", "main.js");
    const r = spawnSync(process.execPath, [main, "--management-url", "http://127.0.0.1:9", "--rpc-auth", "none", "--max-connections", "0"], {
      encoding: "utf8", timeout: 20_000,
    });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/--max-connections/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });
});
