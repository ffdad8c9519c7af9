/**
 * The query port's fast path (shared/http-fast-path.ts) end to end: a real frontend (in-process
 * cluster, real HTTP on loopback, a real RPC container) driven over raw sockets. Pipelined
 * answers in order whatever finishes first, the hand-off to node:http in the middle of a
 * connection, lying lengths, resets, odd header names, and shutdown with connections kept alive.
 * The connection-cap and malformed-request edges run on the fast path in test/http-edges.test.ts.
 */
import { afterEach, describe, expect, it } from "vitest";
import { addLinkedModel, startInProcessCluster, sumHandler, type InProcessCluster } from "./support/cluster-in-process.js";
import { rawConnect, rawRequest, type RawConnection } from "./support/raw-http.js";
import { decodeInput } from "../runtime/shared/input-types.js";

const JSON_TYPE = { "Content-Type": "application/json" };
const predict = (input: number[], headers: Record<string, string> = {}) =>
  rawRequest("POST", "/app/predict", { ...JSON_TYPE, ...headers }, JSON.stringify({ input }));
/** An input the model takes this long to answer. */
const SLOW = 99;
const SLOW_MS = 150;

describe("the query port's fast path", { timeout: 30_000 }, () => {
  let cluster: InProcessCluster | undefined;
  const opened: RawConnection[] = [];
  afterEach(async () => {
    for (const conn of opened.splice(0)) conn.close();
    await cluster?.close();
    cluster = undefined;
  });

  async function setup(): Promise<InProcessCluster> {
    cluster = await startInProcessCluster({ cacheBytes: 1 << 20 });
    await addLinkedModel(cluster);
    await cluster.addContainer("m", "1", "doubles", async (batch) => {
      const slow = batch.inputs.some((raw) => (decodeInput(batch.inputType, raw) as number[])[0] === SLOW);
      if (slow) await new Promise((r) => setTimeout(r, SLOW_MS));
      return sumHandler(batch);
    });
    return cluster;
  }

  async function connect(c: InProcessCluster): Promise<RawConnection> {
    const conn = await rawConnect(c.frontend.port);
    opened.push(conn);
    return conn;
  }

  /** A connection that has had one answer and is now idle between requests. */
  async function answeredOnce(c: InProcessCluster): Promise<RawConnection> {
    const conn = await connect(c);
    conn.write(predict([1]));
    await conn.waitForResponses(1);
    return conn;
  }

  it("answers pipelined requests in order when a slow one comes first, and hands the connection to node:http mid-way", async () => {
    const c = await setup();
    // Cached, so that they are ready long before the slow one ahead of them.
    expect((await c.predict("app", { input: [1, 2] })).body.output).toBe(3);
    expect((await c.predict("app", { input: [5] })).body.output).toBe(5);
    const conn = await connect(c);
    conn.write(predict([SLOW, 1]) + predict([1, 2]) + rawRequest("GET", "/health") + predict([5]) + predict([2, 2]));
    const answers = await conn.waitForResponses(5);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    expect(JSON.parse(answers[0]!.body).output).toBe(100);
    expect(JSON.parse(answers[1]!.body).output).toBe(3);
    expect(JSON.parse(answers[2]!.body).status).toBe("ok");
    expect(JSON.parse(answers[3]!.body).output).toBe(5);
    expect(JSON.parse(answers[4]!.body).output).toBe(4);
    // Still open and still served, now by node:http.
    conn.write(predict([3]));
    expect(JSON.parse((await conn.waitForResponses(6))[5]!.body).output).toBe(3);
    expect(conn.isFinished).toBe(false);
  });

  it("answers 300 pipelined requests in one write, in order (past its in-flight bound)", async () => {
    const c = await setup();
    const conn = await connect(c);
    const inputs = Array.from({ length: 300 }, (_, i) => [i % 7 === 0 ? 1 : i, 0.5]);
    conn.write(inputs.map((input) => predict(input)).join(""));
    const answers = await conn.waitForResponses(300, 10_000);
    expect(answers).toHaveLength(300);
    expect(answers.map((a) => JSON.parse(a.body).output)).toEqual(inputs.map((input) => input[0]! + 0.5));
  });

  it("answers exactly as node:http does, apart from the query id and the date", async () => {
    const c = await setup();
    await c.predict("app", { input: [4] });
    const conn = await connect(c);
    // Connection: close is outside the fast path: the second answer is node:http's.
    conn.write(predict([4]) + predict([4], { Connection: "close" }));
    const [fast, node] = await conn.waitForResponses(2);
    const comparable = (a: typeof fast) => ({ status: a!.status, type: a!.headers["content-type"], body: { ...JSON.parse(a!.body), query_id: 0 } });
    expect(comparable(fast)).toEqual(comparable(node));
    expect(fast!.headers["content-length"]).toBe(String(Buffer.byteLength(fast!.body)));
    expect(fast!.headers.connection).toBe("keep-alive");
    expect(node!.headers.connection).toBe("close");
    // Errors too: an unknown application, a body that is not JSON.
    const errors = await connect(c);
    const unknown = rawRequest("POST", "/nope/predict", JSON_TYPE, "{\"input\":[1]}");
    const notJson = rawRequest("POST", "/app/predict", JSON_TYPE, "{oops");
    errors.write(unknown + notJson + rawRequest("GET", "/health") + unknown + notJson);
    const e = await errors.waitForResponses(5);
    expect(e.map((a) => a.status)).toEqual([e[3]!.status, e[4]!.status, 200, e[3]!.status, e[4]!.status]);
    expect(e[0]!.body).toBe(e[3]!.body);
    expect(e[1]!.body).toBe(e[4]!.body);
    expect(e[1]!.status).toBe(400);
  });

  it("serves headers named __proto__ and constructor like any other", async () => {
    const c = await setup();
    const conn = await connect(c);
    conn.write(predict([2, 3], { "__proto__": "x", constructor: "y", hasOwnProperty: "z" }));
    const [answer] = await conn.waitForResponses(1);
    expect(answer!.status).toBe(200);
    expect(JSON.parse(answer!.body).output).toBe(5);
  });

  it("answers a body shorter than the bytes sent, then node:http refuses the rest as a malformed request and closes", async () => {
    const c = await setup();
    const conn = await connect(c);
    conn.write(rawRequest("POST", "/app/predict", { ...JSON_TYPE, "Content-Length": 13 }) + "{\"input\":[7]}trailing garbage\r\n\r\n");
    await conn.finished;
    const answers = conn.responses();
    expect(answers.map((a) => a.status)).toEqual([200, 400]);
    expect(JSON.parse(answers[0]!.body).output).toBe(7);
    expect(answers[1]!.headers.connection).toBe("close");
  });

  it("survives clients that reset with an answer owed, or in the middle of a head", async () => {
    const c = await setup();
    const owed = await connect(c);
    owed.write(predict([SLOW, 2]));
    await new Promise((r) => setTimeout(r, 20));
    owed.socket.resetAndDestroy();
    const cut = await connect(c);
    cut.write("POST /app/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le");
    await new Promise((r) => setTimeout(r, 20));
    cut.socket.resetAndDestroy();
    await new Promise((r) => setTimeout(r, SLOW_MS + 50));
    const next = await connect(c);
    next.write(predict([SLOW, 2]) + predict([1, 1]));
    expect((await next.waitForResponses(2)).map((a) => JSON.parse(a.body).output)).toEqual([101, 2]);
  });

  it("closes a connection idle for the keep-alive timeout (5 s), answered or silent, and keeps a busy one", async () => {
    const c = await setup();
    const answered = await answeredOnce(c);
    const silent = await connect(c);
    const started = Date.now();
    const busy = await connect(c);
    const keepBusy = setInterval(() => busy.write(predict([2])), 500);
    try {
      await Promise.all([answered.finished, silent.finished]);
      const waited = Date.now() - started;
      expect(waited).toBeGreaterThan(4_500);
      expect(waited).toBeLessThan(7_000);
      expect(busy.isFinished).toBe(false);
      expect(busy.responses().length).toBeGreaterThan(8);
    } finally {
      clearInterval(keepBusy);
    }
  });

  it("closes its kept-alive connections when the frontend stops, with an answer owed or idle", async () => {
    const c = await setup();
    const idle = await answeredOnce(c);
    const busy = await connect(c);
    busy.write(predict([SLOW, 3]));
    await new Promise((r) => setTimeout(r, 20));
    const started = Date.now();
    await c.frontend.close();
    expect(Date.now() - started).toBeLessThan(2_000);
    await Promise.all([idle.finished, busy.finished]);
  });
});
