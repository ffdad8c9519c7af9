/**
 * CLIPPER_FRONTEND_DISCOVERY=dns in both model runtimes (Python and Node): a replica connects to
 * every address CLIPPER_IP resolves to, one connection each, and serves every frontend. Frontends
 * are ROUTER stand-ins on loopback addresses sharing one port (127.0.0.1 and 127.0.0.2), as
 * frontend pods behind one headless Service do. Also: the Node FrontendSet in-process, with a
 * scripted resolver, and the Python runtime with a scripted getaddrinfo, for addresses that come
 * and go from DNS and lookups that fail.
 * The parts that start nothing are in test/unit/frontend-discovery.test.ts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PYTHON, assertPythonHas, cleanEnv, pythonRuntimeEnv, pythonSkipReason } from "./support/python.js";
import { LoopbackFrontend, freePortOn } from "./support/loopback-frontend.js";
import { sleep, testRpcEnv } from "./support/test-frontend.js";
import { encodeFrontendMessage } from "../runtime/rpc/codec.js";
import { within } from "./support/within.js";
import { readableLog } from "../src/log-lines.js";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const NODE_MAIN = join(REPO, "dist", "runtime", "container-node", "main.js");
const pythonSkip = pythonSkipReason(["numpy"]);

// Both models answer the sum of each input, "%g"-formatted: [1, 2, 3] -> "6".
const PREDICT_PY = `
def predict(batch):
    return ["%g" % float(sum(float(v) for v in x)) for x in batch]
`;
const PREDICT_MJS = `
export function predict(inputs) {
  return inputs.map((xs) => String(xs.reduce((a, b) => a + b, 0)));
}
`;

// A getaddrinfo scripted by a file: "frontends.test" resolves to the addresses listed in it, or
// fails when it says "fail". Everything else goes to the real resolver.
const FAKE_DNS_PY = `
import os, socket, sys
_real = socket.getaddrinfo

def _scripted(host, *args, **kwargs):
    if host == "frontends.test":
        with open(os.environ["FAKE_DNS_FILE"]) as f:
            words = f.read().split()
        if words == ["fail"]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 0)) for ip in words]
    return _real(host, *args, **kwargs)

socket.getaddrinfo = _scripted
from clipper_runtime.container import main
sys.exit(main())
`;

// ---- processes, frontends and clean-up -----------------------------------------------------------

interface Proc {
  proc: ChildProcess;
  /** stdout and stderr together: the Python runtime logs on stderr, the Node one on stdout. */
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readyFile: string;
}

const children: ChildProcess[] = [];
const frontends: LoopbackFrontend[] = [];
const tempDirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "clipper-discovery-"));
  tempDirs.push(dir);
  return dir;
}

/** The process environment without any CLIPPER_* settings of the machine running the tests. */
function spawnTracked(command: string, args: string[], env: NodeJS.ProcessEnv, readyFile: string): Proc {
  const proc = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  children.push(proc);
  let out = "";
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    proc.once("close", (code, signal) => res({ code, signal })),
  );
  return { proc, output: () => out, exited, readyFile };
}

async function until(what: string, check: () => boolean, ms: number, detail: () => string = () => ""): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${detail()}`);
    await sleep(20);
  }
}

async function bindFrontend(host: string, port: number, proc: () => Proc | undefined): Promise<LoopbackFrontend> {
  const f = new LoopbackFrontend(host, port, () => `--- runtime output ---\n${proc()?.output() ?? ""}`);
  frontends.push(f);
  await f.bind();
  return f;
}

afterEach(() => {
  for (const f of frontends.splice(0)) f.close();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

afterAll(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

// ---- the two runtimes, driven the same way -------------------------------------------------------

interface Runtime {
  name: string;
  skip: string | undefined;
  /** Starts the runtime serving the sum model; `env` adds to and overrides the defaults. */
  start(env: Record<string, string>): Proc;
  /** Whether the runtime logged that it added (or removed) the frontend address `endpoint`. */
  logged(p: Proc, event: "added" | "removed", endpoint: string): boolean;
  /** The runtime's line for an unknown CLIPPER_FRONTEND_DISCOVERY value. */
  unknownDiscovery: RegExp;
}

function defaults(dir: string, file: string): Record<string, string> {
  return {
    CLIPPER_MODEL_NAME: "sum",
    CLIPPER_MODEL_VERSION: "1",
    CLIPPER_INPUT_TYPE: "doubles",
    CLIPPER_MODEL_PATH: dir,
    CLIPPER_PREDICT: file,
    CLIPPER_READY_FILE: join(dir, "model_is_ready.check"),
    CLIPPER_HEARTBEAT_INTERVAL_MS: "200",
    CLIPPER_RECONNECT_AFTER_MS: "3000",
    CLIPPER_DISCOVERY_INTERVAL_MS: "200",
    ...testRpcEnv("sum", "1", "doubles"),
  };
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

const python: Runtime = {
  name: "python runtime",
  skip: pythonSkip,
  start(env) {
    const dir = tempDir();
    writeFileSync(join(dir, "predict.py"), PREDICT_PY);
    const all = { ...defaults(dir, "predict.py:predict"), ...env };
    return spawnTracked(
      PYTHON,
      ["-m", "clipper_runtime"],
      pythonRuntimeEnv(all),
      all.CLIPPER_READY_FILE!,
    );
  },
  logged(p, event, endpoint) {
    return new RegExp(`INFO frontend address ${escape(endpoint)} ${event}\\b`).test(readableLog(p.output()));
  },
  unknownDiscovery: /invalid environment: CLIPPER_FRONTEND_DISCOVERY 'consul' is not one of none, dns/,
};

const node: Runtime = {
  name: "node runtime",
  skip: undefined,
  start(env) {
    const dir = tempDir();
    writeFileSync(join(dir, "predict.mjs"), PREDICT_MJS);
    const all = { ...defaults(dir, "predict.mjs"), ...env };
    return spawnTracked(process.execPath, [NODE_MAIN], { ...cleanEnv(), ...all }, all.CLIPPER_READY_FILE!);
  },
  logged(p, event, endpoint) {
    return p
      .output()
      .split("\n")
      .some((line) => {
        if (!line.startsWith("{")) return false;
        const entry = JSON.parse(line) as { msg?: string; address?: string };
        return entry.address === endpoint && (entry.msg ?? "").startsWith(`query frontend address ${event}`);
      });
  },
  unknownDiscovery: /invalid environment: CLIPPER_FRONTEND_DISCOVERY '?consul'? is not one of none, dns/,
};

describe.each([python, node])("$name", (runtime) => {
  const skip = runtime.skip;
  describe.skipIf(skip !== undefined)(`frontend discovery${skip ? ` (${skip})` : ""}`, () => {
    beforeAll(() => {
      if (runtime === python) assertPythonHas(["numpy"]);
      if (runtime === node && !existsSync(NODE_MAIN)) throw new Error(`${NODE_MAIN} is missing: run \`npm run build\` first`);
    });

    /** Two frontends on one port, 127.0.0.1 and 127.0.0.2, and a replica discovering both. */
    async function twoFrontends(env: Record<string, string> = {}) {
      const port = await freePortOn(["127.0.0.1", "127.0.0.2"]);
      let p: Proc | undefined;
      const a = await bindFrontend("127.0.0.1", port, () => p);
      const b = await bindFrontend("127.0.0.2", port, () => p);
      p = runtime.start({
        CLIPPER_IP: "127.0.0.1,127.0.0.2",
        CLIPPER_PORT: String(port),
        CLIPPER_FRONTEND_DISCOVERY: "dns",
        ...env,
      });
      const [ma, mb] = await Promise.all([a.handshake(10_000), b.handshake(10_000)]);
      return { port, a, b, p, idA: ma.identity, idB: mb.identity, metaA: ma, metaB: mb };
    }

    it("registers with every frontend CLIPPER_IP lists and answers each on its own connection", async () => {
      const { a, b, p, idA, idB, metaA, metaB } = await twoFrontends();
      for (const meta of [metaA, metaB]) {
        expect(meta.message).toEqual({ kind: "metadata", name: "sum", version: "1", inputType: "doubles", rpcVersion: 3 });
      }
      // Message ids are per connection: both frontends use id 1, concurrently.
      const [fromA, fromB] = await Promise.all([
        a.predict(idA, 1, "doubles", [[1, 2, 3], [4]]),
        b.predict(idB, 1, "doubles", [[10, 20]]),
      ]);
      expect(fromA).toEqual(["6", "4"]);
      expect(fromB).toEqual(["30"]);
      expect(await b.predict(idB, 2, "doubles", [[0.5, 0.25]])).toEqual(["0.75"]);
      expect(await a.predict(idA, 2, "doubles", [[7]])).toEqual(["7"]);
      expect(runtime.logged(p, "added", a.endpoint)).toBe(true);
      expect(runtime.logged(p, "added", b.endpoint)).toBe(true);

      await until("the readiness file", () => existsSync(p.readyFile), 5_000, p.output);
      p.proc.kill("SIGTERM");
      // Each connection drains on its own: DRAIN, the acknowledgement, DRAIN again and its acknowledgement.
      await Promise.all(([[a, idA], [b, idB]] as const).map(async ([f, id]) => {
        for (let round = 0; round < 2; round++) {
          await f.next("drain", 5000);
          await f.send(id, encodeFrontendMessage({ kind: "drainAck" }));
        }
      }));
      expect(await within(p.exited, 5_000, "the runtime to exit")).toEqual({ code: 0, signal: null });
      expect(existsSync(p.readyFile)).toBe(false);
    });

    it("keeps serving one frontend while the other is down, and registers again when it is back", async () => {
      const { port, a, b, p, idA } = await twoFrontends();
      b.close();
      // The remaining frontend is served throughout, across several heartbeat intervals.
      for (let i = 0; i < 4; i++) {
        expect(await a.predict(idA, 10 + i, "doubles", [[i, 1]])).toEqual([String(i + 1)]);
        await sleep(150);
      }
      const back = await bindFrontend("127.0.0.2", port, () => p);
      const started = Date.now();
      const meta = await back.handshake(5_000);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(meta.message).toMatchObject({ kind: "metadata", name: "sum", version: "1" });
      expect(await back.predict(meta.identity, 1, "doubles", [[2, 3]])).toEqual(["5"]);
      expect(await a.predict(idA, 20, "doubles", [[1, 1, 1]])).toEqual(["3"]);
      // Both addresses are literals, always resolved: neither connection was dropped.
      expect(runtime.logged(p, "removed", back.endpoint)).toBe(false);
    });

    it("resolves a host name (localhost) and keeps one connection per distinct address", async () => {
      const port = await freePortOn(["127.0.0.1"]);
      let p: Proc | undefined;
      const f = await bindFrontend("127.0.0.1", port, () => p);
      // localhost and 127.0.0.1 name the same address: one connection, not two.
      p = runtime.start({ CLIPPER_IP: "localhost, 127.0.0.1", CLIPPER_PORT: String(port), CLIPPER_FRONTEND_DISCOVERY: "dns" });
      const meta = await f.handshake(10_000);
      expect(await f.predict(meta.identity, 1, "doubles", [[1, 2]])).toEqual(["3"]);
      await until("the 'added' log line", () => runtime.logged(p!, "added", f.endpoint), 5_000, p.output);
      const later = await f.drain(700); // some three heartbeats, several lookups
      expect(later.length).toBeGreaterThan(0);
      expect(later.every((r) => r.identity.equals(meta.identity))).toBe(true);
    });

    it("without CLIPPER_FRONTEND_DISCOVERY opens exactly one connection, to CLIPPER_IP:CLIPPER_PORT", async () => {
      const port = await freePortOn(["127.0.0.1"]);
      let p: Proc | undefined;
      const f = await bindFrontend("127.0.0.1", port, () => p);
      p = runtime.start({ CLIPPER_IP: "127.0.0.1", CLIPPER_PORT: String(port), CLIPPER_HEARTBEAT_INTERVAL_MS: "100" });
      const meta = await f.handshake(10_000);
      expect(await f.predict(meta.identity, 1, "doubles", [[4, 4]])).toEqual(["8"]);
      const later = await f.drain(600);
      expect(later.filter((r) => r.message.kind === "heartbeat").length).toBeGreaterThan(1);
      expect(later.every((r) => r.identity.equals(meta.identity))).toBe(true);
      expect(runtime.logged(p, "added", f.endpoint)).toBe(false);
    });

    it("connects to every port CLIPPER_PORT lists (one per frontend worker) and answers each", async () => {
      const first = await freePortOn(["127.0.0.1"]);
      let p: Proc | undefined;
      const a = await bindFrontend("127.0.0.1", first, () => p);
      const second = await freePortOn(["127.0.0.1"]);
      const b = await bindFrontend("127.0.0.1", second, () => p);
      p = runtime.start({ CLIPPER_IP: "127.0.0.1", CLIPPER_PORT: `${first}, ${second}` });
      const [ma, mb] = await Promise.all([a.handshake(10_000), b.handshake(10_000)]);
      const [fromA, fromB] = await Promise.all([
        a.predict(ma.identity, 1, "doubles", [[1, 2]]),
        b.predict(mb.identity, 1, "doubles", [[5, 5]]),
      ]);
      expect([fromA, fromB]).toEqual([["3"], ["10"]]);
    });

    it("exits 2 with one clear line for a bad CLIPPER_PORT list", async () => {
      for (const [value, message] of [
        ["7000,,7001", /CLIPPER_PORT must be a port from 1 to 65535, or a comma-separated list/],
        ["7000,70000", /CLIPPER_PORT must be a port from 1 to 65535, or a comma-separated list/],
        ["7000,7000", /CLIPPER_PORT lists port 7000 twice/],
      ] as const) {
        const bad = runtime.start({ CLIPPER_PORT: value });
        expect(await within(bad.exited, 10_000, "exit")).toEqual({ code: 2, signal: null });
        expect(bad.output().trim().split("\n"), bad.output()).toHaveLength(1);
        expect(bad.output()).toMatch(message);
      }
    });

    it("exits 2 with one clear line for an unknown CLIPPER_FRONTEND_DISCOVERY, a short interval, or a list without dns", async () => {
      const unknown = runtime.start({ CLIPPER_FRONTEND_DISCOVERY: "consul" });
      expect(await within(unknown.exited, 10_000, "exit")).toEqual({ code: 2, signal: null });
      expect(unknown.output().trim().split("\n")).toHaveLength(1);
      expect(unknown.output()).toMatch(runtime.unknownDiscovery);

      const interval = runtime.start({ CLIPPER_FRONTEND_DISCOVERY: "dns", CLIPPER_DISCOVERY_INTERVAL_MS: "50" });
      expect(await within(interval.exited, 10_000, "exit")).toEqual({ code: 2, signal: null });
      expect(interval.output()).toMatch(/CLIPPER_DISCOVERY_INTERVAL_MS must be an integer (from|of at least) 100/);

      const list = runtime.start({ CLIPPER_IP: "127.0.0.1,127.0.0.2" });
      expect(await within(list.exited, 10_000, "exit")).toEqual({ code: 2, signal: null });
      expect(list.output()).toMatch(/CLIPPER_IP lists 2 hosts, but CLIPPER_FRONTEND_DISCOVERY is none/);
    });
  });
});

// ---- addresses that come and go: the Python runtime with a scripted getaddrinfo -----------------

describe.skipIf(pythonSkip !== undefined)(`python runtime with a scripted resolver${pythonSkip ? ` (${pythonSkip})` : ""}`, () => {
  beforeAll(() => assertPythonHas(["numpy"]));

  it("closes an address gone from DNS for longer than the reconnect timeout, keeps connections when lookups fail, and reconnects when it returns", async () => {
    const dir = tempDir();
    const dnsFile = join(dir, "dns.txt");
    const setDns = (text: string) => {
      writeFileSync(`${dnsFile}.tmp`, text);
      renameSync(`${dnsFile}.tmp`, dnsFile);
    };
    setDns("127.0.0.1 127.0.0.2");
    writeFileSync(join(dir, "predict.py"), PREDICT_PY);
    writeFileSync(join(dir, "fake_dns_main.py"), FAKE_DNS_PY);
    const port = await freePortOn(["127.0.0.1", "127.0.0.2"]);
    let p: Proc | undefined;
    const a = await bindFrontend("127.0.0.1", port, () => p);
    const b = await bindFrontend("127.0.0.2", port, () => p);
    const env: Record<string, string> = {
      ...defaults(dir, "predict.py:predict"),
      CLIPPER_IP: "frontends.test",
      CLIPPER_PORT: String(port),
      CLIPPER_FRONTEND_DISCOVERY: "dns",
      CLIPPER_RECONNECT_AFTER_MS: "1000",
      CLIPPER_DISCOVERY_INTERVAL_MS: "100",
      // Its frontends here never acknowledge a drain: do not wait the default 5 s at the end.
      CLIPPER_DRAIN_TIMEOUT_MS: "300",
    };
    p = spawnTracked(
      PYTHON,
      [join(dir, "fake_dns_main.py")],
      pythonRuntimeEnv({ FAKE_DNS_FILE: dnsFile, ...env }),
      env.CLIPPER_READY_FILE!,
    );
    const proc = p;
    const [ma, mb] = await Promise.all([a.handshake(10_000), b.handshake(10_000)]);
    // Both answer like live frontends: only DNS decides which connection goes.
    const stops = [a.keepAlive(ma.identity), b.keepAlive(mb.identity)];
    expect(await b.predict(mb.identity, 1, "doubles", [[1]])).toEqual(["1"]);

    // 127.0.0.2 leaves DNS: kept through a blip, closed once missing for over 1000 ms.
    setDns("127.0.0.1");
    const gone = Date.now();
    await until("127.0.0.2 to be removed", () => python.logged(proc, "removed", b.endpoint), 5_000, proc.output);
    expect(Date.now() - gone).toBeGreaterThanOrEqual(900);
    stops.pop()!();
    await b.drain(300); // what it sent before its socket closed
    expect(await b.drain(500)).toEqual([]); // nothing since: no heartbeats, no connection
    expect(await a.predict(ma.identity, 2, "doubles", [[2, 2]])).toEqual(["4"]);

    // Lookups fail for longer than the reconnect timeout: the known connection stays and serves.
    setDns("fail");
    await until("the lookup failure to be logged", () => /could not resolve the frontend host frontends\.test/.test(proc.output()), 5_000, proc.output);
    await sleep(1_300);
    expect(await a.predict(ma.identity, 3, "doubles", [[3, 3]])).toEqual(["6"]);
    expect(python.logged(proc, "removed", a.endpoint)).toBe(false);
    // Logged once, not every 100 ms.
    expect(proc.output().match(/could not resolve the frontend host/g)).toHaveLength(1);

    // 127.0.0.2 is back in DNS: a new connection registers with it.
    setDns("127.0.0.1 127.0.0.2");
    const again = await b.handshake(5_000);
    expect(again.identity.equals(mb.identity)).toBe(false);
    expect(await b.predict(again.identity, 1, "doubles", [[5, 5]])).toEqual(["10"]);
    expect(proc.output()).toMatch(/resolved the frontend host frontends\.test again/);

    stops.forEach((stop) => stop());
    proc.proc.kill("SIGTERM");
    expect(await within(proc.exited, 10_000, "the runtime to exit")).toEqual({ code: 0, signal: null });
  });
});

// ---- addresses that come and go: the Node FrontendSet with a scripted lookup ---------------------
