/**
 * Who may register as a replica on the frontend's RPC port (runtime/shared/rpc-auth.ts): real
 * ZeroMQ peers, honest and not, against a real frontend serving an application.
 * The parts that start nothing are in test/unit/rpc-auth.test.ts.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { NO_CONNECTED_MODELS } from "../runtime/frontend/query-processor.js";
import { runtimeEntry } from "../runtime/shared/package-root.js";
import {
  generateRpcKey,
  plainUsername,
  replicaRoutingId,
  verifyRoutingId,
  versionSecret,
  type RpcPrincipal,
} from "../runtime/shared/rpc-auth.js";
import { startInProcessCluster, sumHandler, waitFor, type InProcessCluster } from "./support/cluster-in-process.js";
import { freePort } from "./support/cli.js";
import { Frontend } from "./support/test-frontend.js";
import { closePeers, Peer } from "./support/rpc-peer.js";

// ---- rpc-auth.ts --------------------------------------------------------------------------------

// ---- rogue peers against a real frontend -------------------------------------------------------

afterEach(closePeers);

interface LogLine {
  level: number;
  msg: string;
  reason?: string;
  [k: string]: unknown;
}

function capturingLogger(): { log: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { log, lines };
}

const doubles = (name: string): RpcPrincipal => ({ name, version: "1", inputType: "doubles" });

async function addModelApp(c: InProcessCluster, model: string, sloMicros: number): Promise<void> {
  const app = `app-${model}`;
  await c.admin.postText("/admin/add_app", { name: app, input_type: "doubles", default_output: "-1.0", latency_slo_micros: sloMicros });
  await c.admin.postText("/admin/add_model", {
    model_name: model, model_version: "1", labels: [], input_type: "doubles",
    container_name: "NO_CONTAINER", model_data_path: "x", batch_size: -1,
  });
  await c.admin.postText("/admin/add_model_links", { app_name: app, model_names: [model] });
  await c.waitForConfig((f) => f.state()?.models[model]?.current_version === "1" && Boolean(f.state()?.applications[app]));
}

describe("the frontend's rpc port with --rpc-auth plain", () => {
  let c: InProcessCluster;
  let lines: LogLine[];
  let address: string;
  const FRAME_LIMIT = 64 * 1024;

  beforeAll(async () => {
    const captured = capturingLogger();
    lines = captured.lines;
    c = await startInProcessCluster({ replicaTimeoutMs: 10_000, cacheBytes: 1024 * 1024, maxRpcFrameBytes: FRAME_LIMIT, log: captured.log });
    address = `tcp://127.0.0.1:${c.frontend.rpcPort}`;
    await addModelApp(c, "a", 3_000_000);
    await addModelApp(c, "b", 3_000_000);
  });
  afterAll(async () => {
    await c?.close();
  });

  const registered = (name: string) => lines.filter((l) => l.msg === "replica registered" && l.model === `${name}:1`).length;

  it("never completes a handshake with a peer without credentials, and logs it once", async () => {
    const before = lines.length;
    const peer = new Peer(address);
    expect(await peer.hello(doubles("a"), 1500)).toBe(false); // not even a heartbeat reply
    const reply = await c.predict("app-a", { input: [1] });
    expect(reply.body).toMatchObject({ default: true, default_explanation: NO_CONNECTED_MODELS });
    // ZeroMQ retries the connection; the refusal is logged once, with the way out for Clipper's containers.
    const refusals = lines.slice(before).filter((l) => l.msg === "refused a model container that did not authenticate on the rpc port");
    expect(refusals).toHaveLength(1);
    expect(String(refusals[0]!.hint)).toMatch(/--rpc-auth none/);
    expect(registered("a")).toBe(0);
  });

  it("refuses a wrong password, logging the claimed name but never the password", async () => {
    const peer = new Peer(address, { username: "a:1:doubles", password: "guessed-secret" });
    expect(await peer.hello(doubles("a"), 1000)).toBe(false);
    const refusal = lines.find((l) => l.msg === "refused a model container with an invalid rpc credential");
    expect(refusal).toMatchObject({ username: "a:1:doubles" });
    expect(JSON.stringify(lines)).not.toContain("guessed-secret");
  });

  it("refuses a peer holding model B's credential that claims model A, and one claiming another input type", async () => {
    const before = lines.length;
    // B's credential, B's routing id, A in its metadata.
    const bAsA = Peer.credentialed(address, c.rpcKey, doubles("b"));
    expect(await bAsA.hello(doubles("a"))).toBe(true); // authenticated: the frontend asks who it is
    // A routing id naming A, made with B's secret.
    const secretB = versionSecret(c.rpcKey, doubles("b"));
    const forged = new Peer(address, { routingId: replicaRoutingId(doubles("a"), secretB), username: plainUsername(doubles("b")), password: secretB });
    expect(await forged.hello(doubles("a"))).toBe(true);
    // A's own credential, but metadata stating strings inputs.
    const retyped = Peer.credentialed(address, c.rpcKey, doubles("a"));
    expect(await retyped.hello({ name: "a", version: "1", inputType: "strings" })).toBe(true);
    // A valid credential for a:1:strings: the configuration records doubles for a:1.
    const strings = Peer.credentialed(address, c.rpcKey, { name: "a", version: "1", inputType: "strings" });
    expect(await strings.hello({ name: "a", version: "1", inputType: "strings" })).toBe(true);

    await waitFor(() => lines.slice(before).filter((l) => l.msg === "refused a model container on the rpc port").length >= 4, 3000, "the refusals");
    const reply = await c.predict("app-a", { input: [1] });
    expect(reply.body).toMatchObject({ default: true, default_explanation: NO_CONNECTED_MODELS });
    expect(registered("a")).toBe(0);
    const reasons = lines.slice(before).filter((l) => l.msg === "refused a model container on the rpc port").map((l) => l.reason);
    expect(reasons).toContain("its credential proves b:1 (doubles), not the model version it claims");
    expect(reasons).toContain("its credential proves nothing, not the model version it claims");
    expect(reasons).toContain("its credential proves a:1 (doubles), not the model version it claims");
    expect(reasons).toContain("the model version takes doubles inputs, the container strings");
    // A refused peer is ignored until it reconnects: its heartbeats go unanswered.
    await bAsA.send({ kind: "heartbeat" });
    expect(await bAsA.next("heartbeat", 500)).toBeUndefined();
  });

  it("drops and bans a replica that answers a batch with the wrong number of outputs, re-queues the batch, and forgets its cached answers", async () => {
    const liar = Peer.credentialed(address, c.rpcKey, doubles("a"));
    expect(await liar.hello(doubles("a"))).toBe(true);
    await waitFor(() => registered("a") === 1, 3000, "the replica to register");

    // Honest at first: its answer to [1] goes into the cache.
    const first = c.predict("app-a", { input: [1] });
    const p1 = await liar.next("predict", 3000);
    await liar.send({ kind: "response", msgId: p1!.msgId, outputs: ["from-the-liar"] });
    expect((await first).body).toMatchObject({ output: "from-the-liar", default: false });
    expect((await c.predict("app-a", { input: [1] })).body).toMatchObject({ output: "from-the-liar" }); // a cache hit
    expect(await liar.next("predict", 200)).toBeUndefined();

    // Then two outputs for a batch of one.
    const second = c.predict("app-a", { input: [2] });
    const p2 = await liar.next("predict", 3000);
    await liar.send({ kind: "response", msgId: p2!.msgId, outputs: ["x", "y"] });
    await waitFor(() => lines.some((l) => l.msg === "replica removed" && /banned until it reconnects: answered 2 outputs for a batch of 1/.test(String(l.reason))), 3000, "the ban");
    await liar.send({ kind: "heartbeat" });
    expect(await liar.next("heartbeat", 500)).toBeUndefined(); // ignored, so it will reconnect

    // An honest replica comes: the re-queued query is answered by it, and [1] is asked again.
    await c.addContainer("a", "1", "doubles", sumHandler);
    expect((await second).body).toMatchObject({ output: 2, default: false });
    expect((await c.predict("app-a", { input: [1] })).body).toMatchObject({ output: 1, default: false });
    await Promise.all(c.containers.splice(0).map((x) => x.stop()));
  });

  it("bans a replica that sends an unknown message until it comes back on a new socket", async () => {
    const before = lines.length;
    const odd = Peer.credentialed(address, c.rpcKey, doubles("b"));
    expect(await odd.hello(doubles("b"))).toBe(true);
    await waitFor(() => lines.slice(before).some((l) => l.msg === "replica registered" && l.model === "b:1"), 3000, "the replica to register");
    await odd.dealer.send([Buffer.alloc(0), Buffer.from([7, 0, 0, 0])]); // message type 7
    await waitFor(() => lines.slice(before).some((l) => l.msg === "replica removed" && /banned until it reconnects: malformed rpc message: unknown message type 7/.test(String(l.reason))), 3000, "the ban");
    await odd.send({ kind: "heartbeat" });
    expect(await odd.next("heartbeat", 500)).toBeUndefined();
    // What our runtimes do after unanswered heartbeats: a new socket, a new nonce, a new routing id.
    odd.close();
    const renewed = Peer.credentialed(address, c.rpcKey, doubles("b"));
    expect(await renewed.hello(doubles("b"))).toBe(true);
    await waitFor(() => lines.slice(before).filter((l) => l.msg === "replica registered" && l.model === "b:1").length === 2, 3000, "the new socket to register");
    const query = c.predict("app-b", { input: [8] });
    const p = await renewed.next("predict", 3000);
    await renewed.send({ kind: "response", msgId: p!.msgId, outputs: ["8"] });
    expect((await query).body).toMatchObject({ output: 8, default: false });
    renewed.close();
    await waitFor(() => lines.slice(before).filter((l) => l.msg === "replica removed" && l.model === "b:1").length === 2, 3000, "the replica to leave");
  });

  it("removes a registered replica once the configuration records its version with another input type", async () => {
    const before = lines.length;
    const early = { name: "c", version: "1", inputType: "strings" } as const;
    const peer = Peer.credentialed(address, c.rpcKey, early);
    expect(await peer.hello(early)).toBe(true); // c:1 is not registered yet: nothing to compare with
    await waitFor(() => lines.slice(before).some((l) => l.msg === "replica registered" && l.model === "c:1"), 3000, "the replica to register");
    await addModelApp(c, "c", 3_000_000); // c:1 takes doubles
    await waitFor(() => lines.slice(before).some((l) => l.msg === "replica removed" && l.model === "c:1"
      && l.reason === "the model version takes doubles inputs, the replica strings"), 3000, "the removal");
    await peer.send({ kind: "heartbeat" });
    expect(await peer.next("heartbeat", 500)).toBeUndefined();
  });

  it("disconnects a peer that sends a frame above --max-rpc-frame-bytes", async () => {
    const before = lines.length;
    const peer = Peer.credentialed(address, c.rpcKey, doubles("b"));
    expect(await peer.hello(doubles("b"))).toBe(true);
    await waitFor(() => lines.slice(before).some((l) => l.msg === "replica registered" && l.model === "b:1"), 3000, "the replica to register");
    const query = c.predict("app-b", { input: [3] });
    const p = await peer.next("predict", 3000);
    await peer.send({ kind: "response", msgId: p!.msgId, outputs: ["3"] });
    expect((await query).body).toMatchObject({ output: 3, default: false });

    const big = "x".repeat(3 * FRAME_LIMIT);
    for (let i = 0; i < 20; i++) await peer.send({ kind: "response", msgId: 99, outputs: [big] });
    await waitFor(() => lines.slice(before).some((l) => l.msg === "replica removed" && l.model === "b:1" && l.reason === "disconnected"), 5000, "the disconnect");
    expect((await c.predict("app-b", { input: [4] })).body).toMatchObject({ default: true, default_explanation: NO_CONNECTED_MODELS });
  });
});

describe("the process-wide ZAP handler", () => {
  it("serves frontends bound at once in one process, each judging with its own key", async () => {
    const keys = [generateRpcKey(), generateRpcKey()];
    const frontends = await Promise.all(keys.map(async (key) => new Frontend(await freePort(), () => "", { key })));
    try {
      await Promise.all(frontends.map((f) => f.bind()));
      const address = (f: Frontend) => `tcp://127.0.0.1:${f.port}`;
      // Each frontend admits its own cluster's replica and not the other's.
      const own = frontends.map((f, i) => Peer.credentialed(address(f), keys[i]!, doubles("a")));
      const other = frontends.map((f, i) => Peer.credentialed(address(f), keys[1 - i]!, doubles("a")));
      await Promise.all(other.map((p) => p.send({ kind: "heartbeat" })));
      const metas = await Promise.all(frontends.map(async (f, i) => {
        await own[i]!.send({ kind: "heartbeat" });
        return f.next("heartbeat", 3000);
      }));
      metas.forEach((m, i) => expect(verifyRoutingId(keys[i]!, m.identity)).toEqual(doubles("a")));
      // The other cluster's replicas never got through.
      for (const f of frontends) await expect(f.receive(300)).rejects.toThrow(/no message from the container/);
    } finally {
      frontends.forEach((f) => f.close());
    }
  });
});

describe("the frontend's rpc port with --rpc-auth none", () => {
  let c: InProcessCluster;
  let lines: LogLine[];

  beforeAll(async () => {
    const captured = capturingLogger();
    lines = captured.lines;
    c = await startInProcessCluster({ rpcAuth: "none", log: captured.log });
    await addModelApp(c, "a", 3_000_000);
  });
  afterAll(async () => {
    await c?.close();
  });

  it("warns at start, admits a Clipper-frame-layout peer without credentials, and still checks the input type", async () => {
    expect(lines.some((l) => l.level === 40 && /rpc authentication is off \(--rpc-auth none\)/.test(l.msg))).toBe(true);
    const address = `tcp://127.0.0.1:${c.frontend.rpcPort}`;
    const retyped = new Peer(address);
    expect(await retyped.hello({ name: "a", version: "1", inputType: "strings" })).toBe(true);
    await waitFor(() => lines.some((l) => l.reason === "the model version takes doubles inputs, the container strings"), 3000, "the refusal");

    const peer = new Peer(address); // libzmq picks its routing id, as for Clipper's containers
    expect(await peer.hello(doubles("a"))).toBe(true);
    await waitFor(() => lines.some((l) => l.msg === "replica registered" && l.model === "a:1"), 3000, "the registration");
    const query = c.predict("app-a", { input: [5] });
    const p = await peer.next("predict", 3000);
    await peer.send({ kind: "response", msgId: p!.msgId, outputs: ["5.0"] });
    expect((await query).body).toMatchObject({ output: 5, default: false });
  });
});

describe("frontend flags", () => {
  const main = runtimeEntry("frontend/main.js");
  const run = (args: string[]) => spawnSync(process.execPath, [main, "--management-url", "http://127.0.0.1:9", ...args], { encoding: "utf8", timeout: 20_000 });

  it.skipIf(!existsSync(main))("refuses an unknown --rpc-auth and plain auth without a key file, with exit 2", () => {
    expect(run(["--rpc-auth", "maybe"])).toMatchObject({ status: 2, stderr: expect.stringMatching(/--rpc-auth must be one of plain, none, got 'maybe'/) });
    expect(run([])).toMatchObject({ status: 2, stderr: expect.stringMatching(/--rpc-key-file is required/) });
    const dir = mkdtempSync(join(tmpdir(), "clipper-rpc-key-"));
    try {
      writeFileSync(join(dir, "empty"), "\n");
      expect(run(["--rpc-key-file", join(dir, "empty")])).toMatchObject({ status: 2, stderr: expect.stringMatching(/--rpc-key-file .* is empty/) });
      expect(run(["--rpc-auth", "none", "--max-rpc-frame-bytes", "10"])).toMatchObject({ status: 2, stderr: expect.stringMatching(/--max-rpc-frame-bytes must be an integer from 1024/) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
