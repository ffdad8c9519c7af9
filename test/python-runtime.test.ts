/**
 * The Python model-container runtime (runtime/python/clipper_runtime) and a foreign Clipper-style
 * container (test/fixtures/foreign_container.py), each driven over real ZeroMQ by a ROUTER in the
 * test that plays the query frontend, with frames encoded and decoded by runtime/rpc/codec.ts.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  BATCH_ERROR_PREFIX,
  encodeFrontendMessage,
} from "../runtime/rpc/codec.js";
import { encodeInput, type InputType } from "../runtime/shared/input-types.js";
import { plainUsername, replicaRoutingId, RPC_SECRET_ENV } from "../runtime/shared/rpc-auth.js";
import { PYTHON, assertPythonHas, cleanEnv, pythonPathWithoutPyzmq, pythonRuntimeEnv, pythonSkipReason } from "./support/python.js";
import { freePort } from "./support/cli.js";
import { Frontend, sleep, testRpcEnv, type Received } from "./support/test-frontend.js";
import { readableLog } from "../src/log-lines.js";
import { runtimeLog } from "./support/json-lines.js";
import { lineTime } from "../src/managers/local/log-follow.js";
import { within } from "./support/within.js";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const FOREIGN = join(REPO, "test", "fixtures", "foreign_container.py");
const skipReason = pythonSkipReason(["numpy", "zmq"]);

/**
 * The runtime's two DEALERs (transport.py) pass the same tests: the built-in ZMTP one on an
 * interpreter where pyzmq cannot be imported (as on a machine with numpy only; `auto` picks it),
 * and pyzmq's.
 */
const TRANSPORTS = [
  { name: "the built-in ZMTP DEALER, pyzmq unimportable", modules: ["numpy"], env: () => ({ PYTHONPATH: pythonPathWithoutPyzmq() }) },
  { name: "pyzmq", modules: ["numpy", "zmq"], env: () => ({ CLIPPER_RPC_TRANSPORT: "pyzmq" }) },
];
/** The transport environment of the suite running now (set by its beforeAll). */
let transportEnv: Record<string, string> = {};

// ---- RPC v3 test vectors -------------------------------------------------------------------------

type Vector = { name: string; direction: string; frames: string[] };

/** The design's vectors file when it is at hand, else a copy of the messages used here. */
function loadVectors(): Vector[] {
  const candidates = [
    process.env.CLIPPER_RPC_VECTORS,
    join(REPO, "shared", "design", "rpc-v3-vectors.json"),
    join(REPO, "..", "shared", "design", "rpc-v3-vectors.json"),
  ].filter((p): p is string => !!p);
  for (const file of candidates) {
    if (existsSync(file)) return (JSON.parse(readFileSync(file, "utf8")) as { messages: Vector[] }).messages;
  }
  return [
    { name: "container heartbeat", direction: "container->frontend", frames: ["", "02000000"] },
    { name: "heartbeat reply asking for metadata", direction: "frontend->container", frames: ["", "03000000", "02000000", "01000000"] },
    { name: "new container: model sum, version 1, doubles, rpc v3", direction: "container->frontend", frames: ["", "00000000", "73756d", "31", "33", "03000000"] },
    {
      name: "predict request: msg id 7, doubles, inputs [1,2,3] and [2,3]",
      direction: "frontend->container",
      frames: ["", "03000000", "01000000", "07000000", "00000000", "2000000000000000",
        "0300000000000000020000000000000018000000000000001000000000000000",
        "000000000000f03f00000000000000400000000000000840", "00000000000000400000000000000840"],
    },
    {
      name: "predict request: msg id 8, strings 'hi' and 'cat'",
      direction: "frontend->container",
      frames: ["", "03000000", "01000000", "08000000", "00000000", "2000000000000000",
        "0400000000000000020000000000000002000000000000000300000000000000", "6869", "636174"],
    },
    {
      name: "predict request: msg id 9, ints [5, -1]",
      direction: "frontend->container",
      frames: ["", "03000000", "01000000", "09000000", "00000000", "1800000000000000",
        "010000000000000001000000000000000800000000000000", "05000000ffffffff"],
    },
    {
      name: "response to msg id 7: outputs '6.0' and '5.0'",
      direction: "container->frontend",
      frames: ["", "01000000", "07000000", "1800000000000000",
        "020000000000000003000000000000000300000000000000", "362e30", "352e30"],
    },
  ];
}

const VECTORS = loadVectors();
function vector(prefix: string): Vector {
  const v = VECTORS.find((m) => m.name.startsWith(prefix));
  if (!v) throw new Error(`no RPC v3 test vector named '${prefix}...'`);
  return v;
}
const hexFrames = (frames: Buffer[]) => frames.map((f) => f.toString("hex"));
const fromHex = (frames: string[]) => frames.map((h) => Buffer.from(h, "hex"));

// ---- the model used by the runtime ---------------------------------------------------------------

const HELPERS_PY = `
def total(values):
    return float(sum(float(v) for v in values))
`;

const PREDICT_PY = `
import json
import os
import numpy as np
from helpers import total  # a sibling module: the model directory is on sys.path

def predict(batch):
    return [str(total(x)) for x in batch]

def counting(batch):
    # one line per call, written before it returns: the test counts the calls made before registration
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log"), "a") as f:
        f.write(json.dumps(batch.tolist()) + "\\n")
    return [str(total(x)) for x in batch]

def describe(batch):
    # one dict per input: JSON-encoded by the runtime
    return [{"batch": type(batch).__name__, "ndim": getattr(batch, "ndim", None),
             "dtype": str(x.dtype), "values": x.tolist()} for x in batch]

def strings(batch):
    return ["%s:%s" % (type(s).__name__, s.upper()) for s in batch]

def encode(batch):
    # numpy scalars, bools, dicts, arrays and None: one per input, in a batch of six
    return [np.float32(1.5), np.int64(3), True, {"a": [1, 2]}, np.array([1, 2]), None]

def doubled(batch):
    return batch * 2  # a 2-D array: one row per input

def flaky(batch):
    first = batch[0][0]
    if first == 1:
        raise ValueError("the model refuses ones")
    if first == 2:
        return ["only one output"]
    if first == 3:
        return [object() for _ in batch]
    if first == 4:
        return "not a list"
    if first == 6:
        return ["caf\\u00e9", "\\ud800"]  # a lone surrogate has no UTF-8 form
    return [str(total(x)) for x in batch]

def sleepy(batch):
    import time
    time.sleep(batch[0][0] / 1000.0)  # the first value: milliseconds
    return [str(total(x)) for x in batch]
`;

// ---- helpers -------------------------------------------------------------------------------------


type Child = { proc: ChildProcess; stderr: () => string; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> };

const children: ChildProcess[] = [];
const frontends: Frontend[] = [];
const tempDirs: string[] = [];

function track(proc: ChildProcess): Child {
  children.push(proc);
  let err = "";
  proc.stderr?.setEncoding("utf8").on("data", (d: string) => (err += d));
  proc.stdout?.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    if (proc.exitCode !== null || proc.signalCode !== null) res({ code: proc.exitCode, signal: proc.signalCode });
    // "close" comes after the output streams end, so stderr is complete by then.
    else proc.once("close", (code, signal) => res({ code, signal }));
  });
  return { proc, stderr: () => err, exited };
}

/** Resolves when the process exits, or rejects after timeoutMs. */
function waitExit(child: Child, timeoutMs = 10_000) {
  return within(child.exited, timeoutMs, () => `the process to exit\n${child.stderr()}`);
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000, detail = () => ""): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${detail()}`);
    await sleep(25);
  }
}

/** Waits until the child's log, read as `LEVEL msg` lines, matches `pattern` (log lines may trail the RPC messages). */
async function waitForLog(child: Child, pattern: RegExp, timeoutMs = 5_000): Promise<void> {
  await waitFor(`a log line matching ${pattern}`, () => pattern.test(readableLog(child.stderr())), timeoutMs, child.stderr);
}

function modelDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "clipper-pyrt-"));
  tempDirs.push(dir);
  writeFileSync(join(dir, "predict.py"), PREDICT_PY);
  writeFileSync(join(dir, "helpers.py"), HELPERS_PY);
  return dir;
}

/** The process environment without any CLIPPER_* settings of the machine running the tests. */
function startRuntime(env: Record<string, string | undefined>): Child {
  const proc = spawn(PYTHON, ["-m", "clipper_runtime"], {
    env: pythonRuntimeEnv({ ...transportEnv, ...env }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  return track(proc);
}

/** A frontend on a free port and a runtime connected to it, serving `predict` from the model dir. */
async function setup(opts: { func?: string; inputType?: string; env?: Record<string, string>; bindLater?: boolean } = {}) {
  const dir = modelDir();
  const port = await freePort();
  let child: Child | undefined;
  const frontend = new Frontend(port, () => `--- runtime stderr ---\n${child?.stderr() ?? ""}`);
  frontends.push(frontend);
  if (!opts.bindLater) await frontend.bind();
  const readyFile = join(dir, "state", "nested", "model_is_ready.check");
  child = startRuntime({
    CLIPPER_MODEL_NAME: "sum",
    CLIPPER_MODEL_VERSION: "1",
    CLIPPER_IP: "127.0.0.1",
    CLIPPER_PORT: String(port),
    CLIPPER_INPUT_TYPE: opts.inputType ?? "doubles",
    CLIPPER_MODEL_PATH: dir,
    CLIPPER_PREDICT: `predict.py:${opts.func ?? "predict"}`,
    CLIPPER_READY_FILE: readyFile,
    CLIPPER_HEARTBEAT_INTERVAL_MS: "500",
    CLIPPER_RECONNECT_AFTER_MS: "60000",
    ...testRpcEnv("sum", "1", opts.inputType ?? "doubles"),
    ...opts.env,
  });
  return { dir, port, frontend, child, readyFile };
}

// ---- tests ---------------------------------------------------------------------------------------

afterEach(async () => {
  for (const f of frontends.splice(0)) f.close();
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  }
});

afterAll(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

for (const transport of TRANSPORTS) {
const transportSkip = pythonSkipReason(transport.modules);
describe.skipIf(transportSkip !== undefined)(`python model-container runtime over ${transport.name}${transportSkip ? ` (${transportSkip})` : ""}`, () => {
  beforeAll(() => {
    assertPythonHas(transport.modules);
    transportEnv = transport.env();
  });

  it("says which DEALER it uses", async () => {
    const { frontend, child } = await setup();
    await frontend.handshake();
    await waitForLog(child, transport.modules.includes("zmq") ? /RPC over pyzmq \(libzmq\)/ : /RPC over the built-in ZMTP 3\.0 DEALER/);
  });

  it("sends exactly the RPC v3 vector frames: heartbeat, metadata, and the response to msg 7", async () => {
    const { frontend } = await setup();
    const first = await frontend.receive(10_000);
    expect(hexFrames(first.frames)).toEqual(vector("container heartbeat").frames);

    await frontend.send(first.identity, fromHex(vector("heartbeat reply asking for metadata").frames));
    const meta = await frontend.next("metadata");
    expect(hexFrames(meta.frames)).toEqual(vector("new container: model sum, version 1, doubles").frames);
    expect(meta.message).toEqual({ kind: "metadata", name: "sum", version: "1", inputType: "doubles", rpcVersion: 3 });

    await frontend.send(meta.identity, fromHex(vector("predict request: msg id 7").frames));
    const response = await frontend.next("response");
    expect(hexFrames(response.frames)).toEqual(vector("response to msg id 7").frames);
  });

  it("writes the readiness file (creating its directory) after sending metadata, and removes it on SIGTERM", async () => {
    const { frontend, child, readyFile } = await setup();
    const hb = await frontend.next("heartbeat");
    await sleep(300);
    expect(existsSync(readyFile)).toBe(false); // not before the frontend asked for metadata
    await frontend.send(hb.identity, encodeFrontendMessage({ kind: "heartbeat", requestMetadata: true }));
    await frontend.next("metadata");
    await waitFor("the readiness file", () => existsSync(readyFile), 10_000, child.stderr);

    child.proc.kill("SIGTERM");
    // It drains: DRAIN, and after the acknowledgement a second one proving its answers arrived.
    for (let round = 0; round < 2; round++) {
      const drain = await frontend.next("drain", 5000);
      await frontend.send(drain.identity, encodeFrontendMessage({ kind: "drainAck" }));
    }
    const exit = await waitExit(child);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(existsSync(readyFile)).toBe(false);
    expect(child.stderr()).toMatch(/stopping on SIGTERM/);
    expect(child.stderr()).toMatch(/drain finished: 1 of 1 frontend\(s\) acknowledged/);
  });

  it("on SIGTERM answers the batches sent before the drain acknowledgement, registers no more, and exits", async () => {
    const { frontend, child } = await setup({ func: "sleepy", env: { CLIPPER_DRAIN_TIMEOUT_MS: "1000" } });
    const meta = await frontend.handshake();
    const send = (msgId: number, ms: number) =>
      frontend.send(meta.identity, encodeFrontendMessage({ kind: "predict", msgId, inputType: "doubles", inputs: [encodeInput("doubles", [ms, 1])] }));
    await send(41, 400);
    await sleep(100);
    child.proc.kill("SIGTERM");
    await send(42, 50); // sent before the frontend learned of the drain
    // A frontend that restarted would ask for metadata: a draining runtime does not register again.
    await frontend.send(meta.identity, encodeFrontendMessage({ kind: "heartbeat", requestMetadata: true }));
    await frontend.send(meta.identity, encodeFrontendMessage({ kind: "drainAck" }));
    const order: string[] = [];
    for (;;) {
      const r = await frontend.receive(5000);
      if (r.message.kind === "heartbeat") continue;
      order.push(r.message.kind === "response" ? `response ${r.message.msgId} ${r.message.outputs.join()}` : r.message.kind);
      if (order.filter((k) => k === "drain").length === 2) break;
    }
    // The first DRAIN may go out before or after the answer to 41 (SIGTERM comes mid-batch).
    expect(order.filter((k) => k !== "drain")).toEqual(["response 41 401.0", "response 42 51.0"]);
    expect(order.at(-1)).toBe("drain");
    // No second acknowledgement: it stops after CLIPPER_DRAIN_TIMEOUT_MS anyway.
    expect(await waitExit(child)).toEqual({ code: 0, signal: null });
    expect(child.stderr()).toMatch(/did not acknowledge the drain within 1000 ms/);
  });

  it("stops at once on SIGTERM, sending no drain, before any frontend asked for its metadata", async () => {
    const { frontend, child } = await setup();
    await frontend.next("heartbeat");
    child.proc.kill("SIGTERM");
    expect(await waitExit(child, 3000)).toEqual({ code: 0, signal: null });
    expect(child.stderr()).toMatch(/drain finished: 0 of 1 frontend\(s\) acknowledged/);
  });

  it("with CLIPPER_DRAIN_TIMEOUT_MS=0 stops at once on SIGTERM, sending no drain", async () => {
    const { frontend, child } = await setup({ env: { CLIPPER_DRAIN_TIMEOUT_MS: "0" } });
    await frontend.handshake();
    child.proc.kill("SIGTERM");
    expect(await waitExit(child)).toEqual({ code: 0, signal: null });
    expect(child.stderr()).not.toMatch(/draining/);
  });

  it("answers doubles batches: equal-length inputs arrive as a 2-D array, unequal as a list of 1-D arrays", async () => {
    const { frontend } = await setup({ func: "describe" });
    const { identity } = await frontend.handshake();
    const equal = (await frontend.predict(identity, 1, "doubles", [[1, 2, 3], [4, 5, 6]])).map((o) => JSON.parse(o));
    expect(equal).toEqual([
      { batch: "ndarray", ndim: 2, dtype: "float64", values: [1, 2, 3] },
      { batch: "ndarray", ndim: 2, dtype: "float64", values: [4, 5, 6] },
    ]);
    const unequal = (await frontend.predict(identity, 2, "doubles", [[1.5, 2], [3], []])).map((o) => JSON.parse(o));
    expect(unequal).toEqual([
      { batch: "list", ndim: null, dtype: "float64", values: [1.5, 2] },
      { batch: "list", ndim: null, dtype: "float64", values: [3] },
      { batch: "list", ndim: null, dtype: "float64", values: [] },
    ]);
  });

  it("serves sums through a sibling module, for equal- and unequal-length batches", async () => {
    const { frontend } = await setup();
    const { identity } = await frontend.handshake();
    expect(await frontend.predict(identity, 10, "doubles", [[1, 2, 3], [4, 5, 6]])).toEqual(["6.0", "15.0"]);
    expect(await frontend.predict(identity, 11, "doubles", [[1, 2, 3], [2, 3]])).toEqual(["6.0", "5.0"]);
    expect(await frontend.predict(identity, 12, "doubles", [[0.5]])).toEqual(["0.5"]);
  });

  it("passes integers as int32 arrays (the ints vector, msg 9)", async () => {
    const { frontend } = await setup({ func: "describe", inputType: "ints" });
    const meta = await frontend.handshake();
    expect(meta.message).toMatchObject({ inputType: "integers" });
    await frontend.send(meta.identity, fromHex(vector("predict request: msg id 9").frames));
    const r = await frontend.next("response", 10_000, (x) => x.message.msgId === 9);
    expect(r.message.outputs.map((o) => JSON.parse(o))).toEqual([{ batch: "ndarray", ndim: 2, dtype: "int32", values: [5, -1] }]);
    const outputs = await frontend.predict(meta.identity, 10, "integers", [[1, 2], [2147483647]]);
    expect(outputs.map((o) => JSON.parse(o).values)).toEqual([[1, 2], [2147483647]]);
  });

  it("passes floats as float32 arrays", async () => {
    const { frontend } = await setup({ func: "describe", inputType: "f" });
    const { identity } = await frontend.handshake();
    const [out] = await frontend.predict(identity, 3, "floats", [[0.5, -2]]);
    expect(JSON.parse(out!)).toEqual({ batch: "ndarray", ndim: 2, dtype: "float32", values: [0.5, -2] });
  });

  it("passes strings as a list of str (the strings vector, msg 8)", async () => {
    const { frontend } = await setup({ func: "strings", inputType: "strings" });
    const meta = await frontend.handshake();
    expect(meta.message).toMatchObject({ inputType: "strings" });
    await frontend.send(meta.identity, fromHex(vector("predict request: msg id 8").frames));
    const r = await frontend.next("response", 10_000, (x) => x.message.msgId === 8);
    expect(r.message.outputs).toEqual(["str:HI", "str:CAT"]);
    expect(await frontend.predict(meta.identity, 9, "strings", ["héllo ✓", ""])).toEqual(["str:HÉLLO ✓", "str:"]);
  });

  it("fails a batch naming the input that is not whole numbers or not UTF-8, and still serves equal-length batches", async () => {
    const failed = async (frontend: Frontend, identity: Buffer, msgId: number, inputType: InputType, inputs: Buffer[]) => {
      await frontend.send(identity, encodeFrontendMessage({ kind: "predict", msgId, inputType, inputs }));
      const outputs = (await frontend.next("response", 10_000, (x) => x.message.msgId === msgId)).message.outputs;
      expect(outputs).toHaveLength(inputs.length);
      expect(new Set(outputs).size).toBe(1);
      expect(outputs[0]!.startsWith(BATCH_ERROR_PREFIX)).toBe(true);
      return outputs[0]!.slice(BATCH_ERROR_PREFIX.length);
    };
    const doubles = await setup();
    const d = await doubles.frontend.handshake();
    const ragged = [encodeInput("doubles", [1]), Buffer.alloc(7), encodeInput("doubles", [2])];
    expect(await failed(doubles.frontend, d.identity, 50, "doubles", ragged)).toBe("input 1 is 7 bytes, not a whole number of 8-byte doubles");
    expect(await failed(doubles.frontend, d.identity, 51, "doubles", [Buffer.alloc(12), Buffer.alloc(12)]))
      .toBe("input 0 is 12 bytes, not a whole number of 8-byte doubles");
    expect(await doubles.frontend.predict(d.identity, 52, "doubles", [[1, 2], [3, 4], [5, 6]])).toEqual(["3.0", "7.0", "11.0"]);

    const strings = await setup({ func: "strings", inputType: "strings" });
    const s = await strings.frontend.handshake();
    expect(await failed(strings.frontend, s.identity, 53, "strings", [Buffer.from("ok"), Buffer.from([0x68, 0xff])]))
      .toMatch(/^input 1 is not valid UTF-8: /);
    expect(await strings.frontend.predict(s.identity, 54, "strings", ["ok", "fine"])).toEqual(["str:OK", "str:FINE"]);
  });

  it("JSON-encodes non-string outputs: numpy scalars, bools, dicts, arrays, None; 2-D array results by row", async () => {
    const { frontend } = await setup({ func: "encode" });
    const { identity } = await frontend.handshake();
    const inputs = Array.from({ length: 6 }, (_, i) => [i]);
    expect(await frontend.predict(identity, 1, "doubles", inputs)).toEqual(["1.5", "3", "true", '{"a": [1, 2]}', "[1, 2]", "null"]);
    frontends.splice(0).forEach((f) => f.close());

    const second = await setup({ func: "doubled" });
    const meta = await second.frontend.handshake();
    expect(await second.frontend.predict(meta.identity, 2, "doubles", [[1, 2], [3, 4]])).toEqual(["[2.0, 4.0]", "[6.0, 8.0]"]);
  });

  it("fails only the batch whose predict raises or returns a bad result, logs why, and keeps serving", async () => {
    const { frontend, child } = await setup({ func: "flaky" });
    const { identity } = await frontend.handshake();

    const raised = await frontend.predict(identity, 21, "doubles", [[1, 0], [5, 5]]);
    expect(raised).toHaveLength(2);
    for (const o of raised) {
      expect(o.startsWith(BATCH_ERROR_PREFIX)).toBe(true);
      expect(o).toContain("ValueError: the model refuses ones");
    }
    expect(await frontend.predict(identity, 22, "doubles", [[5, 1], [2, 2]])).toEqual(["6.0", "4.0"]);

    const cases: Array<[number, RegExp]> = [
      [2, /returned 1 outputs for a batch of 2 inputs/],
      [3, /output 0 \(a object\) is not a string or JSON-serializable/],
      [4, /returned a str; expected a list with one output per input/],
      [6, /output 1 cannot be encoded as UTF-8/],
    ];
    for (const [first, reason] of cases) {
      const outputs = await frontend.predict(identity, 30 + first, "doubles", [[first], [9]]);
      expect(outputs).toHaveLength(2);
      for (const o of outputs) {
        expect(o.startsWith(BATCH_ERROR_PREFIX)).toBe(true);
        expect(o.slice(BATCH_ERROR_PREFIX.length)).toMatch(reason);
      }
    }
    // A batch of the wrong input type fails too, without reaching the model.
    const wrongType = await frontend.predict(identity, 40, "integers", [[1]]);
    expect(wrongType[0]).toBe(`${BATCH_ERROR_PREFIX}received integers inputs, but this container serves doubles`);

    expect(await frontend.predict(identity, 41, "doubles", [[7], [8, 1]])).toEqual(["7.0", "9.0"]);
    await waitForLog(child, /ERROR msg 34: /);
    // One JSON line per event, the traceback inside it: the shape of every Clipper process's log.
    const records = runtimeLog(child.stderr(), "container-python");
    expect(records.find((r) => String(r.msg).startsWith("msg 21: "))).toEqual({
      level: 50, time: expect.any(Number), component: "container-python", model: "sum:1",
      stack: expect.stringMatching(/^Traceback \(most recent call last\):\n[\s\S]*ValueError: the model refuses ones$/),
      msg: "msg 21: batch of 2 inputs failed: predict raised ValueError: the model refuses ones",
    });
    expect(records.every((r) => Math.abs(Number(r.time) - Date.now()) < 120_000)).toBe(true);
    expect(readableLog(child.stderr())).toMatch(/ERROR msg 32: .*returned 1 outputs/);
    expect(child.proc.exitCode).toBeNull();
  });

  it("logs and ignores malformed frames, then still answers", async () => {
    const { frontend, child } = await setup();
    const { identity } = await frontend.handshake();
    const good = encodeFrontendMessage({ kind: "predict", msgId: 5, inputType: "doubles", inputs: [encodeInput("doubles", [1, 2])] });
    await frontend.send(identity, [Buffer.from("junk")]);
    await frontend.send(identity, [Buffer.alloc(0), Buffer.from([3, 0, 0, 0]), Buffer.from([9, 0, 0, 0])]);
    await frontend.send(identity, good.slice(0, -1)); // header announces one input, no input frame
    await frontend.send(identity, [...good.slice(0, 6), good[6]!.subarray(0, 8), ...good.slice(7)]); // short header
    expect(await frontend.predict(identity, 6, "doubles", [[1, 2]])).toEqual(["3.0"]);
    const ignored = () => child.stderr().match(/ignored a malformed message/g) ?? [];
    await waitFor("four 'ignored' log lines", () => ignored().length >= 4, 5_000, child.stderr);
    expect(ignored()).toHaveLength(4);
  });

  it("registers again with a new frontend bound on the same port", async () => {
    const { frontend, port, child } = await setup({
      env: { CLIPPER_HEARTBEAT_INTERVAL_MS: "200", CLIPPER_RECONNECT_AFTER_MS: "1500" },
    });
    await frontend.handshake();
    frontend.close();
    await sleep(300);

    const restarted = new Frontend(port, () => `--- runtime stderr ---\n${child.stderr()}`);
    frontends.push(restarted);
    await restarted.bind();
    const started = Date.now();
    const meta = await restarted.handshake(5_000);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(meta.message).toMatchObject({ name: "sum", version: "1", rpcVersion: 3 });
    expect(await restarted.predict(meta.identity, 1, "doubles", [[1, 2, 3]])).toEqual(["6.0"]);
  });

  it("says hello at once when ZeroMQ reconnects it to a frontend restarted on the same port", async () => {
    // Neither the heartbeat interval nor the reconnect deadline can fall within this test.
    const { frontend, port, child } = await setup({
      env: { CLIPPER_HEARTBEAT_INTERVAL_MS: "10000", CLIPPER_RECONNECT_AFTER_MS: "60000" },
    });
    await frontend.handshake();
    frontend.close();

    const restarted = new Frontend(port, () => `--- runtime stderr ---\n${child.stderr()}`);
    frontends.push(restarted);
    await restarted.bind();
    const started = Date.now();
    const hb = await restarted.next("heartbeat", 3_000);
    await restarted.send(hb.identity, encodeFrontendMessage({ kind: "heartbeat", requestMetadata: true }));
    const meta = await restarted.next("metadata", Math.max(1, 3_000 - (Date.now() - started)), (r) => r.identity.equals(hb.identity));
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(meta.message).toMatchObject({ name: "sum", version: "1", rpcVersion: 3 });
    expect(await restarted.predict(meta.identity, 1, "doubles", [[1, 2]])).toEqual(["3.0"]);
    // The same socket, reconnected by ZeroMQ: not the runtime's own reconnect with a new socket.
    expect(child.stderr()).not.toMatch(/reconnecting with a new socket/);
  });

  it("registers once a frontend that starts later comes up, without replaying missed heartbeats", async () => {
    const { frontend, child } = await setup({ bindLater: true, env: { CLIPPER_HEARTBEAT_INTERVAL_MS: "100", CLIPPER_RECONNECT_AFTER_MS: "20000" } });
    await waitForLog(child, /connecting to/);
    await sleep(1_500); // some 15 heartbeats fall due while nothing listens
    await frontend.bind();
    const first = await frontend.receive(5_000);
    expect(first.message.kind).toBe("heartbeat");
    await frontend.send(first.identity, encodeFrontendMessage({ kind: "heartbeat", requestMetadata: true }));
    const received: Received[] = [];
    const deadline = Date.now() + 400;
    while (Date.now() < deadline) {
      try {
        received.push(await frontend.receive(deadline - Date.now()));
      } catch {
        break;
      }
    }
    expect(received.filter((r) => r.message.kind === "metadata")).toHaveLength(1);
    // heartbeats keep their interval (about 4 in 400 ms), not a burst of the ones missed
    expect(received.filter((r) => r.message.kind === "heartbeat").length).toBeLessThanOrEqual(6);
  });

  it("opens a new socket and redoes the handshake when the frontend goes silent", async () => {
    const { frontend, child } = await setup({
      env: { CLIPPER_HEARTBEAT_INTERVAL_MS: "200", CLIPPER_RECONNECT_AFTER_MS: "1000" },
    });
    const first = await frontend.handshake();
    // Stay bound but answer nothing: heartbeats go unanswered until the runtime gives up on the socket.
    const again = await frontend.next("heartbeat", 5_000, (r) => !r.identity.equals(first.identity));
    await waitForLog(child, /nothing from the frontend at tcp:\/\/127\.0\.0\.1:\d+ for 1000 ms; reconnecting/);
    await frontend.send(again.identity, encodeFrontendMessage({ kind: "heartbeat", requestMetadata: true }));
    const meta = await frontend.next("metadata", 5_000, (r) => r.identity.equals(again.identity));
    expect(meta.message).toMatchObject({ name: "sum", version: "1" });
    // The new socket has a new nonce, hence a new routing id, and it still proves the model version.
    frontend.checkProof(meta.identity, meta.message);
    await waitForLog(child, /registered again/);
  });

  it("computes the same routing id and PLAIN username as rpc-auth.ts, and never logs its secret", async () => {
    const secret = testRpcEnv("sum", "1", "doubles")[RPC_SECRET_ENV]!;
    const nonce = "AAECAwQFBgcICQoL";
    const script = [
      "import sys",
      "from clipper_runtime import rpc",
      "print(rpc.replica_routing_id('sum', '1', 'doubles', sys.argv[1], sys.argv[2]))",
      "print(rpc.plain_username('sum', '1', 'doubles'))",
      "print(len(rpc.replica_routing_id('sum', '1', 'doubles', sys.argv[1]).split(':')[3]))",
    ].join("\n");
    const r = spawnSync(PYTHON, ["-c", script, secret, nonce], { env: pythonRuntimeEnv(), encoding: "utf8", timeout: 30_000 });
    expect(r.stderr).toBe("");
    const who = { name: "sum", version: "1", inputType: "doubles" } as const;
    expect(r.stdout.split("\n").slice(0, 3)).toEqual([replicaRoutingId(who, secret, nonce), plainUsername(who), "16"]);

    const { frontend, child } = await setup();
    const meta = await frontend.handshake();
    expect(await frontend.predict(meta.identity, 1, "doubles", [[1, 2, 3]])).toEqual(["6.0"]);
    expect(child.stderr()).not.toContain(secret);
  });

  it("logs one JSON line per event in the shape of every process: newlines, quotes and non-ASCII inside it, the time --since reads", () => {
    const script = [
      "from clipper_runtime.container import Log",
      "Log('m:1').warn('two\\nlines \\u00e9 \\\"q\\\"', 'Traceback (most recent call last):\\n  boom\\n')",
      "Log().info('no model yet')",
    ].join("\n");
    const before = Date.now();
    const r = spawnSync(PYTHON, ["-c", script], { env: pythonRuntimeEnv(), encoding: "utf8", timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(2);
    const [warn, info] = runtimeLog(r.stderr, "container-python");
    expect(warn).toEqual({
      level: 40, time: expect.any(Number), component: "container-python", model: "m:1",
      stack: "Traceback (most recent call last):\n  boom", msg: 'two\nlines \u00e9 "q"',
    });
    expect(info).toEqual({ level: 30, time: expect.any(Number), component: "container-python", msg: "no model yet" });
    expect(lineTime(lines[0]!)).toBe(warn!.time);
    expect(Number(warn!.time)).toBeGreaterThanOrEqual(before - 1000);
    expect(Number(warn!.time)).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it("exits 2 with one line for a missing or invalid environment", async () => {
    const missing = startRuntime({ CLIPPER_MODEL_VERSION: "1" });
    expect(await waitExit(missing)).toEqual({ code: 2, signal: null });
    expect(runtimeLog(missing.stderr(), "container-python")).toEqual([{
      level: 50, time: expect.any(Number), component: "container-python", msg: expect.stringMatching(/^invalid environment: CLIPPER_MODEL_NAME is required/),
    }]);

    const invalid = startRuntime({
      CLIPPER_MODEL_NAME: "sum", CLIPPER_MODEL_VERSION: "1", CLIPPER_PORT: "70000", CLIPPER_INPUT_TYPE: "tensor",
      CLIPPER_DRAIN_TIMEOUT_MS: "soon",
    });
    expect(await waitExit(invalid)).toEqual({ code: 2, signal: null });
    expect(invalid.stderr().trim().split("\n")).toHaveLength(1);
    expect(invalid.stderr()).toMatch(/CLIPPER_PORT must be a port from 1 to 65535, or a comma-separated list of them \(one per frontend worker\), got '70000'/);
    expect(invalid.stderr()).toMatch(/CLIPPER_INPUT_TYPE 'tensor' is not one of/);
    expect(invalid.stderr()).toMatch(/CLIPPER_DRAIN_TIMEOUT_MS must be an integer from 0 to 600000, got 'soon'/);
  });

  it("predicts the warm-up batches, decoded as real batches are, before it first says hello", async () => {
    const { dir, frontend, child } = await setup({
      func: "counting", env: { CLIPPER_WARMUP_INPUT: "[1, 2.5, 3]", CLIPPER_WARMUP_BATCHES: "4" },
    });
    const calls = () => (existsSync(join(dir, "calls.log")) ? readFileSync(join(dir, "calls.log"), "utf8").trim().split("\n") : []);
    await frontend.next("heartbeat");
    expect(calls()).toEqual(Array(4).fill("[[1.0, 2.5, 3.0]]"));
    expect(child.stderr()).toMatch(/warm-up batch 4 of 4 took \d+\.\d ms/);
    const meta = await frontend.handshake();
    expect(await frontend.predict(meta.identity, 1, "doubles", [[1, 2, 3]])).toEqual(["6.0"]);
    expect(calls()).toHaveLength(5);
  });

  it("predicts batches of the recorded inputs of CLIPPER_WARMUP_INPUTS (deploy-model --warmup-from-log) before it says hello", async () => {
    const { dir, frontend, child } = await setup({
      func: "counting", env: { CLIPPER_WARMUP_INPUTS: "[[1, 2], [2.5, 3]]", CLIPPER_WARMUP_BATCHES: "2" },
    });
    const calls = () => (existsSync(join(dir, "calls.log")) ? readFileSync(join(dir, "calls.log"), "utf8").trim().split("\n") : []);
    await frontend.next("heartbeat");
    expect(calls()).toEqual(Array(2).fill("[[1.0, 2.0], [2.5, 3.0]]"));
    expect(child.stderr()).toMatch(/warm-up batch 2 of 2 took \d+\.\d ms/);
  });

  it("exits 3 with the reason, without connecting, when predict fails on the warm-up input", async () => {
    const { frontend, child } = await setup({ func: "flaky", env: { CLIPPER_WARMUP_INPUT: "[1]" } });
    expect(await waitExit(child)).toEqual({ code: 3, signal: null });
    expect(child.stderr()).toMatch(/warm-up batch 1 of 3 failed: predict raised ValueError: the model refuses ones/);
    expect(child.stderr()).toMatch(/Traceback/);
    await expect(frontend.receive(300)).rejects.toThrow();
  });

  it("exits 2 for a warm-up input that does not fit the input type, or a bad batch count", async () => {
    const env = { CLIPPER_MODEL_NAME: "sum", CLIPPER_MODEL_VERSION: "1", CLIPPER_INPUT_TYPE: "ints" };
    const wrongType = startRuntime({ ...env, CLIPPER_WARMUP_INPUT: "[1.5]" });
    expect(await waitExit(wrongType)).toEqual({ code: 2, signal: null });
    expect(wrongType.stderr()).toMatch(/CLIPPER_WARMUP_INPUT does not fit input type integers: element 0 of the input is not a 32-bit integer/);
    const notJson = startRuntime({ ...env, CLIPPER_WARMUP_INPUT: "[1," });
    expect(await waitExit(notJson)).toEqual({ code: 2, signal: null });
    expect(notJson.stderr()).toMatch(/CLIPPER_WARMUP_INPUT is not JSON/);
    const batches = startRuntime({ ...env, CLIPPER_WARMUP_INPUT: "[1]", CLIPPER_WARMUP_BATCHES: "0" });
    expect(await waitExit(batches)).toEqual({ code: 2, signal: null });
    expect(batches.stderr()).toMatch(/CLIPPER_WARMUP_BATCHES must be a whole number from 1 to 1000, got '0'/);
    const alone = startRuntime({ ...env, CLIPPER_WARMUP_BATCHES: "2" });
    expect(await waitExit(alone)).toEqual({ code: 2, signal: null });
    expect(alone.stderr()).toMatch(/CLIPPER_WARMUP_BATCHES is set but CLIPPER_WARMUP_INPUT is not/);
  });

  it("exits 1 with a clear message when the predict function cannot be loaded", async () => {
    const dir = modelDir();
    writeFileSync(join(dir, "broken.py"), "import no_such_module_here\n");
    const env = { CLIPPER_MODEL_NAME: "sum", CLIPPER_MODEL_VERSION: "1", CLIPPER_MODEL_PATH: dir };

    const noFunc = startRuntime({ ...env, CLIPPER_PREDICT: "predict.py:nope" });
    expect((await waitExit(noFunc)).code).toBe(1);
    expect(noFunc.stderr()).toMatch(/cannot load the predict function: .*predict\.py defines no 'nope'/);

    const broken = startRuntime({ ...env, CLIPPER_PREDICT: join(dir, "broken.py") });
    expect((await waitExit(broken)).code).toBe(1);
    expect(broken.stderr()).toMatch(/importing .*broken\.py failed: ModuleNotFoundError/);

    const absent = startRuntime({ ...env, CLIPPER_PREDICT: "absent.py" });
    expect((await waitExit(absent)).code).toBe(1);
    expect(absent.stderr()).toMatch(/predict file .*absent\.py does not exist/);
  });
});
}

describe.skipIf(pythonSkipReason(["numpy"]) !== undefined)("choosing the runtime's DEALER", () => {
  beforeAll(() => {
    assertPythonHas(["numpy"]);
    transportEnv = {};
  });

  it("really hides pyzmq where the tests say it is unimportable", () => {
    const r = spawnSync(PYTHON, ["-c", "import zmq"], { env: pythonRuntimeEnv({ PYTHONPATH: pythonPathWithoutPyzmq() }), encoding: "utf8", timeout: 30_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/No module named 'zmq'/);
  });

  it("exits 1 with one line naming the install command when CLIPPER_RPC_TRANSPORT=pyzmq has no pyzmq", async () => {
    const child = startRuntime({
      CLIPPER_MODEL_NAME: "sum", CLIPPER_MODEL_VERSION: "1", CLIPPER_MODEL_PATH: modelDir(),
      CLIPPER_RPC_TRANSPORT: "pyzmq", PYTHONPATH: pythonPathWithoutPyzmq(),
    });
    expect(await waitExit(child)).toEqual({ code: 1, signal: null });
    const lines = child.stderr().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/CLIPPER_RPC_TRANSPORT=pyzmq, but pyzmq cannot be imported .*apt-get install python3-zmq/);
  });

  it("exits 2 for a CLIPPER_RPC_TRANSPORT it does not know", async () => {
    const child = startRuntime({ CLIPPER_MODEL_NAME: "sum", CLIPPER_MODEL_VERSION: "1", CLIPPER_RPC_TRANSPORT: "curve" });
    expect(await waitExit(child)).toEqual({ code: 2, signal: null });
    expect(child.stderr()).toMatch(/CLIPPER_RPC_TRANSPORT 'curve' is not one of auto, builtin, pyzmq/);
  });
});

describe.skipIf(skipReason !== undefined)(`foreign Clipper-style container${skipReason ? ` (${skipReason})` : ""}`, () => {
  beforeAll(() => assertPythonHas(["zmq"]));

  it("completes the handshake and answers '6.0' for [1,2,3] through our codec", async () => {
    const port = await freePort();
    let child: Child | undefined;
    // Clipper's own container code cannot authenticate: a cluster serving it runs --rpc-auth none.
    const frontend = new Frontend(port, () => `--- foreign container stderr ---\n${child?.stderr() ?? ""}`, { auth: "none" });
    frontends.push(frontend);
    await frontend.bind();
    child = track(
      spawn(PYTHON, [FOREIGN, "--ip", "127.0.0.1", "--port", String(port), "--name", "sum", "--version", "1"], {
        env: cleanEnv(),
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    const meta = await frontend.handshake();
    expect(meta.message).toEqual({ kind: "metadata", name: "sum", version: "1", inputType: "doubles", rpcVersion: 3 });
    expect(hexFrames(meta.frames)).toEqual(vector("new container: model sum, version 1, doubles").frames);
    expect(await frontend.predict(meta.identity, 1, "doubles", [[1, 2, 3]])).toEqual(["6.0"]);
    expect(await frontend.predict(meta.identity, 7, "doubles", [[1, 2, 3], [2, 3]])).toEqual(["6.0", "5.0"]);

    child.proc.kill("SIGTERM");
    expect((await waitExit(child)).code).toBe(0);
  });
});
