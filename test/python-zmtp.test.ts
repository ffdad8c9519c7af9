/**
 * The Python runtime's built-in ZMTP 3.0 DEALER (runtime/python/clipper_runtime/zmtp.py) against a
 * peer on raw TCP (test/support/zmtp-peer.ts) that follows the protocol byte by byte or breaks it.
 * Its behaviour against our real frontend's ROUTER (libzmq, PLAIN through ZAP) is covered by
 * test/python-runtime.test.ts, which runs every runtime test over both transports.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { decodeContainerMessage, encodeFrontendMessage } from "../runtime/rpc/codec.js";
import { encodeInput } from "../runtime/shared/input-types.js";
import { PYTHON, assertPythonHas, pythonPathWithoutPyzmq, pythonRuntimeEnv, pythonSkipReason } from "./support/python.js";
import { command, greeting, message, properties, ZmtpPeer, type PeerConnection } from "./support/zmtp-peer.js";

const skipReason = pythonSkipReason(["numpy"]);
const children: ChildProcess[] = [];
const peers: ZmtpPeer[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const p of peers.splice(0)) await p.close();
});
afterAll(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A peer listening, and the runtime (NULL mechanism, pyzmq unimportable) connecting to it. */
async function start(): Promise<{ peer: ZmtpPeer; stderr: () => string; child: ChildProcess }> {
  const peer = new ZmtpPeer();
  peers.push(peer);
  const port = await peer.listen();
  const dir = mkdtempSync(join(tmpdir(), "clipper-zmtp-"));
  dirs.push(dir);
  // A negative first value: sleep that many milliseconds first (a slow batch).
  writeFileSync(join(dir, "predict.py"), [
    "import time",
    "def predict(batch):",
    "    if batch[0][0] < 0:",
    "        time.sleep(-batch[0][0] / 1000.0)",
    "    return [str(float(sum(x))) for x in batch]",
    "",
  ].join("\n"));
  const child = spawn(PYTHON, ["-m", "clipper_runtime"], {
    env: pythonRuntimeEnv({
      PYTHONPATH: pythonPathWithoutPyzmq(),
      CLIPPER_MODEL_NAME: "sum", CLIPPER_MODEL_VERSION: "1", CLIPPER_IP: "127.0.0.1", CLIPPER_PORT: String(port),
      CLIPPER_MODEL_PATH: dir, CLIPPER_READY_FILE: join(dir, "ready"),
      CLIPPER_HEARTBEAT_INTERVAL_MS: "300", CLIPPER_RECONNECT_AFTER_MS: "60000",
    }),
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.push(child);
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  return { peer, stderr: () => err, child };
}

async function logged(stderr: () => string, pattern: RegExp, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(stderr())) {
    if (Date.now() > deadline) throw new Error(`no log line matching ${pattern}:\n${stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Handshake, then the runtime's heartbeat, our metadata request and its metadata; the DEALER's READY properties. */
async function register(c: PeerConnection): Promise<Buffer> {
  const ready = await c.handshakeNull();
  expect(decodeContainerMessage(await c.nextMessage())).toEqual({ kind: "heartbeat" });
  c.socket.write(message(encodeFrontendMessage({ kind: "heartbeat", requestMetadata: true })));
  for (;;) {
    const m = decodeContainerMessage(await c.nextMessage());
    if (m.kind === "metadata") return ready;
  }
}

async function predict(c: PeerConnection, msgId: number, inputs: number[][], piece: number): Promise<string[]> {
  const bytes = message(encodeFrontendMessage({ kind: "predict", msgId, inputType: "doubles", inputs: inputs.map((x) => encodeInput("doubles", x)) }));
  await c.writeInPieces(bytes, piece);
  for (;;) {
    const m = decodeContainerMessage(await c.nextMessage());
    if (m.kind === "response" && m.msgId === msgId) return m.outputs;
  }
}

describe.skipIf(skipReason !== undefined)(`the Python runtime's built-in ZMTP DEALER${skipReason ? ` (${skipReason})` : ""}`, () => {
  beforeAll(() => assertPythonHas(["numpy"]));

  it("greets as ZMTP 3.0 NULL, sends READY as a DEALER, and reassembles frames that arrive a byte at a time", async () => {
    const { peer } = await start();
    const c = await peer.connection(0);
    const g = await c.greeting();
    expect([g[0], g[9], g[10], g.subarray(12, 16).toString("ascii"), g[32]]).toEqual([0xff, 0x7f, 3, "NULL", 0]);
    const ready = await register(c);
    expect(ready.includes(properties({ "Socket-Type": "DEALER" }))).toBe(true);
    expect(await predict(c, 7, [[1, 2, 3], [2, 3]], 1)).toEqual(["6.0", "5.0"]);
    // 40 doubles: a 320-byte input, sent as a long frame, in 7-byte pieces.
    const long = Array.from({ length: 40 }, (_, i) => i);
    expect(await predict(c, 8, [long, [1]], 7)).toEqual(["780.0", "1.0"]);
    // Two messages in one write.
    c.socket.write(Buffer.concat([
      message(encodeFrontendMessage({ kind: "predict", msgId: 9, inputType: "doubles", inputs: [encodeInput("doubles", [4])] })),
      message(encodeFrontendMessage({ kind: "predict", msgId: 10, inputType: "doubles", inputs: [encodeInput("doubles", [5])] })),
    ]));
    const answers = [decodeContainerMessage(await c.nextMessage()), decodeContainerMessage(await c.nextMessage())]
      .filter((m) => m.kind === "response");
    expect(answers).toEqual([{ kind: "response", msgId: 9, outputs: ["4.0"] }, { kind: "response", msgId: 10, outputs: ["5.0"] }]);
  });

  it("sends a slow batch's answer before it predicts the next one, though both arrived together", async () => {
    const { peer } = await start();
    const c = await peer.connection(0);
    await register(c);
    const slow = (msgId: number) => message(encodeFrontendMessage({ kind: "predict", msgId, inputType: "doubles", inputs: [encodeInput("doubles", [-300])] }));
    c.socket.write(Buffer.concat([slow(1), slow(2)]));
    const arrivals: number[] = [];
    while (arrivals.length < 2) {
      const m = decodeContainerMessage(await c.nextMessage());
      if (m.kind === "response") arrivals.push(performance.now());
    }
    // Held back until the second batch was predicted, both would arrive together.
    expect(arrivals[1]! - arrivals[0]!).toBeGreaterThan(200);
  });

  it("answers a PING with a PONG carrying its context", async () => {
    const { peer } = await start();
    const c = await peer.connection(0);
    await register(c);
    c.socket.write(command("PING", Buffer.concat([Buffer.from([0, 10]), Buffer.from("ctx-42")])));
    for (;;) {
      const r = await c.next();
      if ("command" in r) {
        expect(r).toEqual({ command: "PONG", body: Buffer.from("ctx-42") });
        break;
      }
    }
  });

  it("drops a peer that is not speaking ZMTP, says so once, and retries until one does", async () => {
    const { peer, stderr } = await start();
    for (let n = 0; n < 3; n++) {
      const bad = await peer.connection(n);
      await bad.greeting();
      bad.socket.write(greeting("NULL", 3, 0x00));
    }
    const good = await peer.connection(3);
    await register(good);
    expect(stderr().match(/not speaking ZMTP \(bad greeting signature\)/g)).toHaveLength(1);
    expect(await predict(good, 1, [[2, 2]], 64)).toEqual(["4.0"]);
  });

  it("drops a connection whose peer announces a frame beyond the limit, and reconnects", async () => {
    const { peer, stderr, child } = await start();
    const c = await peer.connection(0);
    await register(c);
    const header = Buffer.alloc(9);
    header[0] = 0x02;
    header.writeBigUInt64BE(1n << 40n, 1);
    c.socket.write(header);
    await logged(stderr, /announced a 1099511627776-byte frame/);
    const again = await peer.connection(1);
    await again.handshakeNull();
    expect(child.exitCode).toBeNull();
  });

  it.each([
    ["a mechanism it was not given", (c: PeerConnection) => c.socket.write(greeting("PLAIN")), /wants the PLAIN mechanism, we use NULL \(set CLIPPER_RPC_SECRET\)/],
    ["an ERROR in the handshake", (c: PeerConnection) => {
      c.socket.write(greeting("NULL"));
      c.socket.write(command("ERROR", Buffer.concat([Buffer.from([7]), Buffer.from("go away")])));
    }, /refused the handshake: go away/],
    ["a message before the handshake finished", (c: PeerConnection) => {
      c.socket.write(greeting("NULL"));
      c.socket.write(message([Buffer.alloc(0), Buffer.from("x")]));
    }, /a message before the handshake finished/],
    ["a peer that is not a ROUTER", (c: PeerConnection) => {
      c.socket.write(greeting("NULL"));
      c.socket.write(command("READY", properties({ "Socket-Type": "PUB" })));
    }, /the peer is a PUB socket, not a ROUTER/],
    ["ZMTP 2", (c: PeerConnection) => c.socket.write(greeting("NULL", 2)), /speaks ZMTP 2\.0; 3\.0 or later is needed/],
    ["CURVE", (c: PeerConnection) => c.socket.write(greeting("CURVE")), /wants the CURVE mechanism, we use NULL \(this runtime speaks NULL and PLAIN only/],
  ])("refuses %s, naming it, and keeps retrying", async (_what, misbehave, pattern) => {
    const { peer, stderr, child } = await start();
    const c = await peer.connection(0);
    await c.greeting();
    misbehave(c);
    await logged(stderr, pattern);
    await peer.connection(1);
    expect(child.exitCode).toBeNull();
  });
});
