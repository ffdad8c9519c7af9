/**
 * The Node model container: its RPC v3 client in-process, and the built entry point
 * (dist/runtime/container-node/main.js) as a child process, both against a ZeroMQ ROUTER standing
 * in for the query frontend.
 * The parts that start nothing are in test/unit/node-runtime.test.ts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { Router } from "zeromq";
import {
  BATCH_ERROR_PREFIX,
  decodeContainerMessage,
  encodeFrontendMessage,
  type ContainerMessage,
  type FrontendMessage,
} from "../runtime/rpc/codec.js";
import { canonicalInputType, encodeInput, type InputType } from "../runtime/shared/input-types.js";
import { parseLogLine } from "../src/log-lines.js";
import { jsonLogLines } from "./support/json-lines.js";
import { RPC_SECRET_ENV } from "../runtime/shared/rpc-auth.js";
import { registerZapDomain } from "../runtime/rpc/zap-handler.js";
import { loadPredict } from "../runtime/container-node/load-predict.js";
import { createPredictHandler } from "../runtime/container-node/predict-handler.js";
import { ContainerRpcClient, type RpcLogger } from "../runtime/container-node/rpc-client.js";
import { within } from "./support/within.js";
import { assertRoutingIdProves, sleep, testRpcEnv, testZapJudge } from "./support/test-frontend.js";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const FIXTURES = join(ROOT, "test", "fixtures", "node-models");
const MAIN = join(ROOT, "dist", "runtime", "container-node", "main.js");

// ---------------------------------------------------------------------------------------------
// Helpers

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Received {
  identity: Buffer;
  frames: Buffer[];
  message: ContainerMessage;
}

/** A ROUTER playing the query frontend, with codec.ts on its side. */
class FakeFrontend {
  private router: Router;
  private inbox: Received[] = [];
  private waiters: Array<() => void> = [];
  private nextMsgId = 1;
  readonly port: number;

  private constructor(router: Router, port: number, private readonly releaseZap: () => void) {
    this.router = router;
    this.port = port;
    void this.pump();
  }

  /**
   * Binds a free port, or the given one; a closed ROUTER frees its port a moment later, so retry.
   * Replicas authenticate as with the real frontend: PLAIN credentials derived from TEST_RPC_KEY.
   */
  static async bind(port?: number): Promise<FakeFrontend> {
    const domain = `node-runtime-test:${randomUUID()}`;
    const releaseZap = await registerZapDomain(domain, testZapJudge());
    const deadline = Date.now() + 5000;
    for (;;) {
      const router = new Router({ linger: 0, plainServer: true, zapDomain: domain });
      try {
        await router.bind(`tcp://127.0.0.1:${port ?? "*"}`);
        const bound = Number(/:(\d+)$/.exec(router.lastEndpoint ?? "")?.[1]);
        return new FakeFrontend(router, bound, releaseZap);
      } catch (err) {
        router.close();
        if ((err as { code?: string }).code !== "EADDRINUSE" || Date.now() > deadline) {
          releaseZap();
          throw err;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  get address(): string {
    return `tcp://127.0.0.1:${this.port}`;
  }

  private async pump(): Promise<void> {
    try {
      for await (const [identity, ...frames] of this.router) {
        this.inbox.push({ identity: identity!, frames, message: decodeContainerMessage(frames) });
        this.waiters.splice(0).forEach((w) => w());
      }
    } catch {
      // closed
    }
  }

  /** The next message (of a kind, when given), skipping others. */
  async next(kind?: ContainerMessage["kind"], ms = 5000): Promise<Received> {
    const take = (): Received | undefined => {
      const i = this.inbox.findIndex((m) => !kind || m.message.kind === kind);
      return i < 0 ? undefined : this.inbox.splice(i, 1)[0];
    };
    return within(
      (async () => {
        for (;;) {
          const found = take();
          if (found) return found;
          await new Promise<void>((r) => this.waiters.push(r));
        }
      })(),
      ms,
      `a ${kind ?? "any"} message from the container`,
    );
  }

  async send(identity: Buffer, message: FrontendMessage): Promise<void> {
    await this.sendRaw(identity, encodeFrontendMessage(message));
  }

  async sendRaw(identity: Buffer, frames: Buffer[]): Promise<void> {
    await this.router.send([identity, ...frames]);
  }

  /** Heartbeat in, "send your metadata" out, metadata in. */
  async handshake(ms = 5000): Promise<{ identity: Buffer; heartbeat: Received; metadata: Received }> {
    const heartbeat = await this.next("heartbeat", ms);
    await this.send(heartbeat.identity, { kind: "heartbeat", requestMetadata: true });
    const metadata = await this.next("metadata", ms);
    expect(metadata.identity.equals(heartbeat.identity)).toBe(true);
    if (metadata.message.kind === "metadata") assertRoutingIdProves(metadata.identity, metadata.message);
    return { identity: heartbeat.identity, heartbeat, metadata };
  }

  async predict(identity: Buffer, inputType: InputType, values: unknown[], ms = 5000): Promise<string[]> {
    const msgId = this.nextMsgId++;
    await this.send(identity, { kind: "predict", msgId, inputType, inputs: values.map((v) => encodeInput(inputType, v)) });
    const reply = await this.next("response", ms);
    if (reply.message.kind !== "response") throw new Error("unreachable");
    expect(reply.message.msgId).toBe(msgId);
    return reply.message.outputs;
  }

  close(): void {
    if (!this.router.closed) this.router.close();
    this.releaseZap();
  }
}

function hex(frames: Buffer[]): string[] {
  return frames.map((f) => f.toString("hex"));
}

interface LogLine {
  level: string;
  obj: Record<string, unknown>;
  msg: string | undefined;
}

function recordingLogger(): RpcLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: string) =>
    (obj: unknown, msg?: string): void => {
      lines.push({ level, obj: (obj ?? {}) as Record<string, unknown>, msg });
    };
  return { lines, info: at("info"), warn: at("warn"), error: at("error"), debug: at("debug") } as RpcLogger & {
    lines: LogLine[];
  };
}

const frontends: FakeFrontend[] = [];
const clients: ContainerRpcClient[] = [];
const children: ChildProcess[] = [];
let scratch: string;

async function frontend(port?: number): Promise<FakeFrontend> {
  const f = await FakeFrontend.bind(port);
  frontends.push(f);
  return f;
}

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "clipper-node-runtime-test-"));
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.stop()));
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  frontends.splice(0).forEach((f) => f.close());
});

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// The RPC client, in-process

describe("ContainerRpcClient", () => {
  function client(
    f: FakeFrontend,
    handleBatch: ConstructorParameters<typeof ContainerRpcClient>[0]["handleBatch"],
    extra: Partial<ConstructorParameters<typeof ContainerRpcClient>[0]> = {},
  ): ContainerRpcClient {
    const c = new ContainerRpcClient({
      address: f.address,
      metadata: { name: "sum", version: "1", inputType: "doubles" },
      handleBatch,
      rpcSecret: testRpcEnv("sum", "1", "doubles")[RPC_SECRET_ENV],
      ...extra,
    });
    clients.push(c);
    c.start();
    return c;
  }

  const sumHandler = createPredictHandler({
    predict: (inputs) => (inputs as number[][]).map((xs) => xs.reduce((a, b) => a + b, 0)),
    modelName: "sum",
    modelVersion: "1",
    inputType: "doubles",
  });

  it("heartbeats, sends metadata when asked, and answers a doubles batch", async () => {
    const f = await frontend();
    let registered = 0;
    client(f, sumHandler, { onRegistered: () => registered++ });
    const { identity, heartbeat, metadata } = await f.handshake();
    // Byte for byte as in shared/design/rpc-v3-vectors.json.
    expect(hex(heartbeat.frames)).toEqual(["", "02000000"]);
    expect(hex(metadata.frames)).toEqual(["", "00000000", "73756d", "31", "33", "03000000"]);
    expect(registered).toBe(1);
    expect(await f.predict(identity, "doubles", [[1, 2, 3], [2, 3]])).toEqual(["6", "5"]);
  });

  it("heartbeats again when idle and keeps the connection while the frontend answers", async () => {
    const f = await frontend();
    const c = client(f, sumHandler, { heartbeatIntervalMs: 100, reconnectAfterMs: 5000 });
    const { identity } = await f.handshake();
    for (let i = 0; i < 3; i++) {
      const hb = await f.next("heartbeat", 2000);
      expect(hb.identity.equals(identity)).toBe(true);
      await f.send(identity, { kind: "heartbeat", requestMetadata: false });
    }
    expect(c.connections).toBe(1);
  });

  it("fails only the batch whose handler throws, logging model, msg id, reason and stack", async () => {
    const f = await frontend();
    const log = recordingLogger();
    let calls = 0;
    client(
      f,
      async (batch) => {
        calls++;
        if (calls === 1) throw new Error("model exploded");
        return batch.inputs.map(() => "ok");
      },
      { logger: log },
    );
    const { identity } = await f.handshake();
    const failed = await f.predict(identity, "doubles", [[1], [2], [3]]);
    expect(failed).toHaveLength(3);
    for (const out of failed) {
      expect(out.startsWith(BATCH_ERROR_PREFIX)).toBe(true);
      expect(out).toContain("model exploded");
    }
    const errors = log.lines.filter((l) => l.level === "error");
    expect(errors).toHaveLength(1);
    expect(errors[0]!.obj).toMatchObject({ model: "sum:1", msgId: 1, batchSize: 3 });
    expect(String(errors[0]!.obj["reason"])).toContain("model exploded");
    expect(String(errors[0]!.obj["stack"])).toContain("model exploded");
    expect(await f.predict(identity, "doubles", [[1]])).toEqual(["ok"]);
  });

  it("answers batches one at a time, in order", async () => {
    const f = await frontend();
    let running = 0;
    let maxRunning = 0;
    client(f, async (batch) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, batch.msgId === 1 ? 200 : 10));
      running--;
      return batch.inputs.map(() => `batch ${batch.msgId}`);
    });
    const { identity } = await f.handshake();
    for (const msgId of [1, 2, 3]) {
      await f.send(identity, { kind: "predict", msgId, inputType: "doubles", inputs: [encodeInput("doubles", [msgId])] });
    }
    const order: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await f.next("response");
      if (r.message.kind === "response") {
        order.push(r.message.msgId);
        expect(r.message.outputs).toEqual([`batch ${r.message.msgId}`]);
      }
    }
    expect(order).toEqual([1, 2, 3]);
    expect(maxRunning).toBe(1);
  });

  it("answers both of two batches sent back to back, however they arrive against its serving loop", async () => {
    const f = await frontend();
    // A synchronous handler: the serving loop ends within a few microtasks of the first batch.
    client(f, (batch) => batch.inputs.map((raw) => String(raw.readDoubleLE(0))));
    const { identity } = await f.handshake();
    const send = (msgId: number) => f.send(identity, { kind: "predict", msgId, inputType: "doubles", inputs: [encodeInput("doubles", [msgId])] });
    // A frontend keeping two batches in flight (--max-in-flight 2) sends the second while the first
    // is served; one arriving as the loop ends must still be answered (it once was not).
    for (let round = 0; round < 50; round++) {
      await Promise.all([send(2 * round), send(2 * round + 1)]);
      const answered: number[] = [];
      for (let i = 0; i < 2; i++) {
        const r = await f.next("response", 2000);
        if (r.message.kind === "response") answered.push(r.message.msgId);
      }
      expect(answered).toEqual([2 * round, 2 * round + 1]);
    }
  });

  it("logs and ignores malformed frames", async () => {
    const f = await frontend();
    const log = recordingLogger();
    client(f, sumHandler, { logger: log });
    const { identity } = await f.handshake();
    await f.sendRaw(identity, [Buffer.alloc(0), Buffer.from("zz")]);
    await f.sendRaw(identity, [Buffer.from("no delimiter")]);
    await f.sendRaw(identity, [Buffer.alloc(0), Buffer.from("03000000", "hex"), Buffer.from("01000000", "hex")]);
    expect(await f.predict(identity, "doubles", [[4, 5]])).toEqual(["9"]);
    expect(log.lines.filter((l) => l.level === "warn" && /malformed/.test(l.msg ?? ""))).toHaveLength(3);
  });

  it("reconnects with a fresh socket and redoes the handshake when the frontend goes silent", async () => {
    const first = await frontend();
    const reconnects: number[] = [];
    const c = client(first, sumHandler, {
      heartbeatIntervalMs: 100,
      reconnectAfterMs: 500,
      onReconnect: (n) => reconnects.push(n),
    });
    const { identity: oldIdentity } = await first.handshake();
    expect(await first.predict(oldIdentity, "doubles", [[1, 1]])).toEqual(["2"]);
    const port = first.port;
    first.close();
    // Down for longer than reconnectAfterMs: the client replaces its socket (a new identity).
    await until(() => reconnects.length >= 1, 5000, "a reconnect");
    expect(c.connections).toBeGreaterThanOrEqual(2);
    const second = await frontend(port);
    const { identity, metadata } = await second.handshake(5000);
    expect(identity.equals(oldIdentity)).toBe(false);
    expect(metadata.message).toMatchObject({ kind: "metadata", name: "sum", version: "1", inputType: "doubles", rpcVersion: 3 });
    expect(await second.predict(identity, "doubles", [[2, 2]])).toEqual(["4"]);
  });

  it("finds a frontend that restarts quickly on the same port (ZeroMQ reconnects the socket)", async () => {
    const first = await frontend();
    client(first, sumHandler, { heartbeatIntervalMs: 100, reconnectAfterMs: 5000 });
    const { identity } = await first.handshake();
    const port = first.port;
    first.close();
    const second = await frontend(port);
    // The restarted frontend does not know this container: it asks for metadata again.
    const again = await second.handshake(5000);
    expect(await second.predict(again.identity, "doubles", [[2, 2]])).toEqual(["4"]);
    void identity;
  });
});

// ---------------------------------------------------------------------------------------------
// Pieces of the Node runtime

// ---------------------------------------------------------------------------------------------
// The built entry point as a child process

describe("main.js", () => {
  beforeAll(() => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` (npm test does) first`);
  });

  interface Started {
    child: ChildProcess;
    stdout: () => string;
    stderr: () => string;
    exited: Promise<number | null>;
    readyFile: string;
  }

  /** The credential of the model version `env` names (sum:1, doubles unless overridden), when it names a valid one. */
  function credential(env: Record<string, string>): Record<string, string> {
    const inputType = canonicalInputType(env.CLIPPER_INPUT_TYPE ?? "doubles");
    const name = env.CLIPPER_MODEL_NAME ?? "sum";
    return inputType && name ? testRpcEnv(name, env.CLIPPER_MODEL_VERSION ?? "1", inputType) : {};
  }

  function startContainer(env: Record<string, string>): Started {
    const readyFile = join(mkdtempSync(join(scratch, "c-")), "model_is_ready.check");
    const child = spawn(process.execPath, [MAIN], {
      env: {
        PATH: process.env.PATH ?? "",
        CLIPPER_MODEL_NAME: "sum",
        CLIPPER_MODEL_VERSION: "1",
        CLIPPER_MODEL_PATH: FIXTURES,
        CLIPPER_READY_FILE: readyFile,
        ...credential(env),
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let out = "";
    let err = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    return { child, stdout: () => out, stderr: () => err, exited, readyFile };
  }

  /** The container's last log line, once it is clear that it wrote nothing but lines in the runtime's log shape. */
  function lastWords(c: Started): Record<string, unknown> {
    expect(c.stderr()).toBe("");
    const lines = c.stdout().trim().split("\n");
    for (const line of lines) expect(parseLogLine(line), line).toBeDefined();
    for (const { line, duplicates } of jsonLogLines(c.stdout())) expect(duplicates, line).toEqual([]);
    return JSON.parse(lines.at(-1)!) as Record<string, unknown>;
  }

  it("serves a doubles model, writes the readiness file, and removes it on SIGTERM", async () => {
    const f = await frontend();
    const c = startContainer({ CLIPPER_PORT: String(f.port), CLIPPER_PREDICT: "sum.mjs" });
    const { identity, metadata } = await f.handshake(15000);
    expect(metadata.message).toMatchObject({ kind: "metadata", name: "sum", version: "1", inputType: "doubles", rpcVersion: 3 });
    expect(await f.predict(identity, "doubles", [[1, 2, 3], [2, 3], []])).toEqual(["6", "5", "0"]);
    await until(() => existsSync(c.readyFile), 5000, "the readiness file");
    c.child.kill("SIGTERM");
    // It drains: DRAIN, and after the acknowledgement a second one proving its answers arrived.
    for (let round = 0; round < 2; round++) {
      const drain = await f.next("drain", 5000);
      await f.send(drain.identity, { kind: "drainAck" });
    }
    expect(await within(c.exited, 5000, "the container to exit")).toBe(0);
    expect(existsSync(c.readyFile)).toBe(false);
  });

  it("on SIGTERM answers the batches sent before the drain acknowledgement, then proves it and exits", async () => {
    const f = await frontend();
    const c = startContainer({ CLIPPER_PORT: String(f.port), CLIPPER_PREDICT: "async.mjs", CLIPPER_DRAIN_TIMEOUT_MS: "1000" });
    const { identity } = await f.handshake(15000);
    await f.send(identity, { kind: "predict", msgId: 41, inputType: "doubles", inputs: [encodeInput("doubles", [400])] });
    await sleep(50);
    c.child.kill("SIGTERM");
    await f.next("drain", 5000);
    // A batch the frontend sent before it learned of the drain, then the acknowledgement.
    await f.send(identity, { kind: "predict", msgId: 42, inputType: "doubles", inputs: [encodeInput("doubles", [100])] });
    await f.send(identity, { kind: "drainAck" });
    const kinds: string[] = [];
    for (;;) {
      const m = await f.next(undefined, 5000);
      if (m.message.kind === "heartbeat") continue;
      kinds.push(m.message.kind === "response" ? `response ${m.message.msgId}` : m.message.kind);
      if (m.message.kind === "drain") break;
    }
    expect(kinds).toEqual(["response 41", "response 42", "drain"]);
    // Exits 0 without the second acknowledgement too, after CLIPPER_DRAIN_TIMEOUT_MS.
    expect(await within(c.exited, 5000, "the container to exit")).toBe(0);
    expect(c.stdout()).toMatch(/did not acknowledge the end of the drain/);
  });

  it("with CLIPPER_DRAIN_TIMEOUT_MS=0 exits at once on SIGTERM, sending no drain", async () => {
    const f = await frontend();
    const c = startContainer({ CLIPPER_PORT: String(f.port), CLIPPER_PREDICT: "sum.mjs", CLIPPER_DRAIN_TIMEOUT_MS: "0" });
    await f.handshake(15000);
    c.child.kill("SIGTERM");
    expect(await within(c.exited, 3000, "the container to exit")).toBe(0);
    await expect(f.next("drain", 300)).rejects.toThrow();
  });

  it("serves strings with the context, and an async predict", async () => {
    const f = await frontend();
    startContainer({ CLIPPER_PORT: String(f.port), CLIPPER_PREDICT: "strings.mjs", CLIPPER_INPUT_TYPE: "s" });
    const { identity, metadata } = await f.handshake(15000);
    expect(metadata.message).toMatchObject({ inputType: "strings" });
    expect(await f.predict(identity, "strings", ["hi", "cat", "context?", ""])).toEqual(["HI", "CAT", "sum:1:strings", ""]);

    const g = await frontend();
    startContainer({ CLIPPER_PORT: String(g.port), CLIPPER_PREDICT: "async.mjs" });
    const second = await g.handshake(15000);
    expect(await g.predict(second.identity, "doubles", [[50, 1], [7]])).toEqual(['{"len":2,"delay":50}', '{"len":1,"delay":50}']);
  });

  it("fails a batch whose predict throws, logs it once, and serves the next batch", async () => {
    const f = await frontend();
    const c = startContainer({ CLIPPER_PORT: String(f.port), CLIPPER_PREDICT: "faulty.mjs:predict" });
    const { identity } = await f.handshake(15000);
    const cases: Array<[number, RegExp]> = [
      [-1, /predict threw Error: negative inputs are not allowed/],
      [-2, /predict returned 1 outputs for 2 inputs/],
      [-3, /output 0 is undefined/],
      [-4, /predict threw RangeError: async failure/],
    ];
    for (const [code, reason] of cases) {
      const outputs = await f.predict(identity, "doubles", [[code], [1, 2]]);
      expect(outputs).toHaveLength(2);
      for (const o of outputs) {
        expect(o.startsWith(BATCH_ERROR_PREFIX)).toBe(true);
        expect(o.slice(BATCH_ERROR_PREFIX.length)).toMatch(reason);
      }
      expect(await f.predict(identity, "doubles", [[1, 2, 3]])).toEqual(["3"]);
    }
    await until(() => c.stdout().split("\n").filter((l) => l.includes('"level":50')).length >= 4, 5000, "the error log lines");
    const errors = c
      .stdout()
      .split("\n")
      .filter((l) => l.includes('"level":50'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(errors).toHaveLength(4);
    expect(errors[0]).toMatchObject({ model: "sum:1", msgId: 1, batchSize: 2 });
    expect(String(errors[0]!["reason"])).toMatch(/negative inputs are not allowed/);
    expect(String(errors[0]!["stack"])).toMatch(/faulty\.mjs/);
    expect(errors[1]!["stack"]).toBeUndefined();
  });

  it("runs a TypeScript module importing a sibling .ts file and an npm package", async () => {
    const f = await frontend();
    startContainer({ CLIPPER_PORT: String(f.port), CLIPPER_MODEL_PATH: join(FIXTURES, "ts-model"), CLIPPER_INPUT_TYPE: "doubles" });
    const { identity } = await f.handshake(20000);
    expect(await f.predict(identity, "doubles", [[1, 2], [0.5]])).toEqual(['{"score":30}', '{"score":5}']);
  });

  it("comes back after the frontend restarts on the same port", async () => {
    const first = await frontend();
    const c = startContainer({
      CLIPPER_PORT: String(first.port),
      CLIPPER_PREDICT: "sum.mjs",
      CLIPPER_HEARTBEAT_INTERVAL_MS: "100",
      CLIPPER_RECONNECT_AFTER_MS: "600",
    });
    const { identity } = await first.handshake(15000);
    expect(await first.predict(identity, "doubles", [[1]])).toEqual(["1"]);
    const port = first.port;
    first.close();
    await until(() => /reconnecting/.test(c.stdout()), 5000, "the container to reconnect");
    const second = await frontend(port);
    const again = await second.handshake(10000);
    expect(again.identity.equals(identity)).toBe(false);
    expect(await second.predict(again.identity, "doubles", [[2, 3]])).toEqual(["5"]);
  });

  it("says hello at once when ZeroMQ reconnects it to a frontend restarted on the same port", async () => {
    const first = await frontend();
    // Neither the heartbeat interval nor the reconnect deadline can fall within this test.
    const c = startContainer({
      CLIPPER_PORT: String(first.port),
      CLIPPER_PREDICT: "sum.mjs",
      CLIPPER_HEARTBEAT_INTERVAL_MS: "10000",
      CLIPPER_RECONNECT_AFTER_MS: "60000",
    });
    await first.handshake(15000);
    const port = first.port;
    first.close();
    const second = await frontend(port);
    const started = Date.now();
    const heartbeat = await second.next("heartbeat", 3000);
    await second.send(heartbeat.identity, { kind: "heartbeat", requestMetadata: true });
    const metadata = await second.next("metadata", Math.max(1, 3000 - (Date.now() - started)));
    expect(Date.now() - started).toBeLessThan(3000);
    expect(metadata.identity.equals(heartbeat.identity)).toBe(true);
    expect(metadata.message).toMatchObject({ kind: "metadata", name: "sum", version: "1", rpcVersion: 3 });
    expect(await second.predict(heartbeat.identity, "doubles", [[2, 3]])).toEqual(["5"]);
    // The same socket, reconnected by ZeroMQ: not the client's own reconnect with a new socket.
    expect(c.stdout()).not.toMatch(/reconnecting/);
  });

  it("predicts the warm-up batches (negative msg ids) before it first says hello, logging each one's duration", async () => {
    const f = await frontend();
    const callsFile = join(mkdtempSync(join(scratch, "calls-")), "calls.jsonl");
    const calls = () => (existsSync(callsFile) ? readFileSync(callsFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as unknown) : []);
    const c = startContainer({
      CLIPPER_PORT: String(f.port), CLIPPER_PREDICT: "counting.mjs", CALLS_FILE: callsFile,
      CLIPPER_WARMUP_INPUT: "[1, 2.5]", CLIPPER_WARMUP_BATCHES: "4",
    });
    const { identity } = await f.handshake(15000);
    expect(calls()).toEqual([-1, -2, -3, -4].map((msgId) => ({ msgId, inputs: [[1, 2.5]] })));
    const done = c.stdout().split("\n").filter((l) => l.includes("warm-up batch done")).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(done.map((l) => [l.batch, l.of, typeof l.ms])).toEqual([[1, 4, "number"], [2, 4, "number"], [3, 4, "number"], [4, 4, "number"]]);
    expect(await f.predict(identity, "doubles", [[2, 3]])).toEqual(["5"]);
    expect(calls()).toHaveLength(5);
  });

  it("predicts batches of the recorded inputs of CLIPPER_WARMUP_INPUTS (deploy-model --warmup-from-log) before it says hello", async () => {
    const f = await frontend();
    const callsFile = join(mkdtempSync(join(scratch, "calls-")), "calls.jsonl");
    const calls = () => (existsSync(callsFile) ? readFileSync(callsFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as unknown) : []);
    startContainer({
      CLIPPER_PORT: String(f.port), CLIPPER_PREDICT: "counting.mjs", CALLS_FILE: callsFile,
      CLIPPER_WARMUP_INPUTS: "[[1], [2.5, 3]]", CLIPPER_WARMUP_BATCHES: "2",
    });
    await f.handshake(15000);
    expect(calls()).toEqual([-1, -2].map((msgId) => ({ msgId, inputs: [[1], [2.5, 3]] })));
  });

  it("exits 3 with the reason, without connecting, when predict fails on the warm-up input", async () => {
    const f = await frontend();
    const callsFile = join(mkdtempSync(join(scratch, "calls-")), "calls.jsonl");
    const c = startContainer({
      CLIPPER_PORT: String(f.port), CLIPPER_PREDICT: "counting.mjs", CALLS_FILE: callsFile, CLIPPER_WARMUP_INPUT: "[-1]",
    });
    expect(await within(c.exited, 10000, "exit")).toBe(3);
    expect(lastWords(c)).toMatchObject({ level: 50, model: "sum:1", msg: expect.stringMatching(/^warm-up batch 1 of 3 failed: predict threw Error: the weights are missing/) });
    expect(readFileSync(callsFile, "utf8").trim().split("\n")).toHaveLength(1);
    await expect(f.next("heartbeat", 300)).rejects.toThrow();
    expect(existsSync(c.readyFile)).toBe(false);
  });

  it("exits 2 for a warm-up input that does not fit the input type", async () => {
    const bad = startContainer({ CLIPPER_INPUT_TYPE: "strings", CLIPPER_PREDICT: "sum.mjs", CLIPPER_WARMUP_INPUT: "[1]" });
    expect(await within(bad.exited, 10000, "exit")).toBe(2);
    expect(lastWords(bad).msg).toMatch(/the warm-up input does not fit input type strings: input of type strings must be a JSON string/);
  });

  it("exits 2 with one log line for a bad environment, and 1 when the export is not a function: JSON lines only, nothing else", async () => {
    const bad = startContainer({ CLIPPER_PORT: "seventy" });
    expect(await within(bad.exited, 10000, "exit")).toBe(2);
    expect(bad.stdout().trim().split("\n")).toHaveLength(1);
    expect(lastWords(bad)).toEqual({
      level: 50, time: expect.any(Number), component: "container-node",
      msg: "invalid environment: CLIPPER_PORT must be a port from 1 to 65535, or a comma-separated list of them (one per frontend worker), got 'seventy'",
    });

    const missing = startContainer({ CLIPPER_MODEL_NAME: "" });
    expect(await within(missing.exited, 10000, "exit")).toBe(2);
    expect(lastWords(missing).msg).toMatch(/CLIPPER_MODEL_NAME/);

    const notFn = startContainer({ CLIPPER_PREDICT: "not-a-function.mjs" });
    expect(await within(notFn.exited, 10000, "exit")).toBe(1);
    expect(lastWords(notFn)).toMatchObject({ level: 50, model: "sum:1", msg: expect.stringMatching(/not-a-function\.mjs export is a number, not a function: 'predict' \(exports found: other, predict\)/) });
  });
});

describe("Node runtime pieces", () => {
  it("bundles a TypeScript module with its sibling sources and an installed package", async () => {
    const ts = await loadPredict({ file: undefined, exportName: "predict" }, join(FIXTURES, "ts-model"));
    expect(ts.file).toBe(join(FIXTURES, "ts-model", "predict.ts"));
    expect(ts.predict([[1, 2], [3]])).toEqual(['{"score":30}', '{"score":30}']);
  });
});
