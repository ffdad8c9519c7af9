/**
 * Ranks the costs of a cache hit inside the frontend's process: its request handler and the bare
 * server's (bench/servers/bare-handler.ts) driven in-process on fake sockets, one request at a time,
 * then each step of the query path alone. NOT the measurement of target 3 (no kernel, no sockets, no
 * other process: bench/frontend.ts is); it says which part of the frontend's extra CPU per request
 * is its own JavaScript. Writes docs/bench/frontend-handler.md.
 *
 *   npm run build && node dist/bench/frontend-handler.js
 */
import { positiveEnv } from "./lib/env.js";
import { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { Writable } from "node:stream";
import { pino } from "pino";
import { CacheMetrics } from "../runtime/frontend/cache-metrics.js";
import type { Dispatcher } from "../runtime/frontend/dispatcher.js";
import { createQueryServer } from "../runtime/frontend/http-server.js";
import { FrontendMetrics } from "../runtime/frontend/metrics.js";
import { ModelCaller } from "../runtime/frontend/model-caller.js";
import { PredictionCache } from "../runtime/frontend/prediction-cache.js";
import { QueryAuth } from "../runtime/frontend/query-auth.js";
import { QueryProcessor } from "../runtime/frontend/query-processor.js";
import { dict } from "../runtime/shared/dict.js";
import { utf8Text } from "../runtime/shared/http-body.js";
import { GuardedResponse } from "../runtime/shared/http-guard.js";
import { encodeInput } from "../runtime/shared/input-types.js";
import { emptyState } from "../runtime/shared/state.js";
import { markdownTable, runContext, writeReport } from "./lib/report.js";
import { bareHandler } from "./servers/bare-handler.js";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const REQUESTS = positiveEnv("BENCH_REQUESTS", 20_000);
const ROUNDS = positiveEnv("BENCH_ROUNDS", 5);
const INPUT = [1, 2, 3, 4, 5, 6, 7, 8];
const BODY = Buffer.from(JSON.stringify({ input: INPUT })); // bench/lib/body.ts fixedBody()

const state = emptyState();
state.applications.hits = { name: "hits", input_type: "doubles", default_output: "-1", latency_slo_micros: 1_000_000, linked_models: ["noop"] };
state.models.noop = {
  name: "noop", current_version: "1",
  versions: dict([["1", { model_name: "noop", model_version: "1", labels: [], input_type: "doubles", container_name: "c", model_data_path: "p", batch_size: -1 }]]),
};
const metrics = new FrontendMetrics({ queueDepths: () => new Map(), replicaCounts: () => new Map() });
const cache = new PredictionCache({ maxBytes: 64 << 20, observer: new CacheMetrics(metrics.registry, () => ({ bytes: 0, entries: 0, maxBytes: 0 })) });
// One replica connected, as far as the cache path asks (a hit never reaches the dispatcher).
const dispatcher = { liveReplicaCount: () => 1 } as unknown as Dispatcher;
const caller = new ModelCaller({ dispatcher, cache });
const model = { name: "noop", version: "1" };
await cache.call(model, "doubles", encodeInput("doubles", INPUT), Number.POSITIVE_INFINITY, async () => ({ kind: "output", output: "8" }));
const processor = new QueryProcessor({ caller, metrics, state: () => state });
const server = createQueryServer({
  processor, metrics, log: pino({ level: "silent" }), maxBodyBytes: 1 << 20, requestTimeoutMs: 30_000,
  allowedHosts: { names: new Set(), any: false }, auth: new QueryAuth("none"), health: () => ({}),
});
const frontend = server.listeners("request")[0] as Handler;
const bare = bareHandler();

/** A socket that takes whatever is written and counts it. */
let written = 0;
function fakeSocket(): Socket {
  const socket = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      written += chunk.length;
      callback();
    },
  });
  return Object.assign(socket, { cork() {}, uncork() {}, setTimeout() {}, destroy() {} }) as unknown as Socket;
}

/**
 * A keep-alive connection per server, as wrk's: the frontend's goes through its guard's
 * `connection` listener (shared/http-guard.ts: the per-connection state its request listener
 * reads, the idle list), and its responses are the guard's, as on a real socket.
 */
type Connection = { socket: Socket; Response: new (req: IncomingMessage) => ServerResponse };
const bareConnection: Connection = { socket: fakeSocket(), Response: ServerResponse };
const frontendConnection: Connection = { socket: fakeSocket(), Response: GuardedResponse };
(server.listeners("connection")[0] as (socket: Socket) => void)(frontendConnection.socket);

/** One POST /hits/predict through `handler`, its body in one chunk, as wrk sends it. */
function request(handler: Handler, { socket, Response }: Connection): Promise<number> {
  return new Promise((resolve) => {
    const req = new IncomingMessage(socket);
    Object.assign(req, { method: "POST", url: "/hits/predict", httpVersionMajor: 1, httpVersionMinor: 1 });
    req.headers = { host: "127.0.0.1:1337", "content-type": "application/json", "content-length": String(BODY.length) };
    const res = new Response(req);
    res.shouldKeepAlive = true;
    res.assignSocket(socket);
    res.on("finish", () => {
      res.detachSocket(socket);
      resolve(res.statusCode);
    });
    handler(req, res);
    req.push(BODY);
    // As Node's parser does at the end of a message: the guard reads it (a body still unread closes the connection).
    req.complete = true;
    req.push(null);
  });
}

/** Microseconds per request, one after another. */
async function perRequest(handler: Handler, connection: Connection): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) {
    const status = await request(handler, connection);
    if (status !== 200) throw new Error(`the handler answered ${status}`);
  }
  return Number(process.hrtime.bigint() - start) / 1000 / REQUESTS;
}

let sink: unknown;
/** Nanoseconds per call of `fn`, the best of 5 runs (the least disturbed by other work). */
function nanos(fn: () => unknown, n = 200_000): number {
  for (let i = 0; i < n / 10; i++) sink = fn();
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < 5; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink = fn();
    best = Math.min(best, Number(process.hrtime.bigint() - start) / n);
  }
  return best;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

await perRequest(bare, bareConnection);
await perRequest(frontend, frontendConnection);
const handlers = { bare: [] as number[], frontend: [] as number[] };
for (let round = 0; round < ROUNDS; round++) {
  handlers.bare.push(await perRequest(bare, bareConnection));
  handlers.frontend.push(await perRequest(frontend, frontendConnection));
}
const bareUs = median(handlers.bare);
const frontendUs = median(handlers.frontend);
process.stdout.write(`handlers: bare ${bareUs.toFixed(2)} µs, frontend ${frontendUs.toFixed(2)} µs per request (${written} bytes written)\n`);

const body = JSON.parse(BODY.toString("utf8")) as unknown;
const prepared = processor.prepare("hits", body);
const encoded = encodeInput("doubles", INPUT);
const steps: Array<[string, () => unknown]> = [
  ["bare: body to text, JSON.parse", () => JSON.parse(BODY.toString("utf8"))],
  ["bare: answer object, JSON.stringify", () => JSON.stringify({ query_id: 1, output: 8, default: false })],
  ["frontend: body to text (UTF-8 checked), JSON.parse", () => JSON.parse(utf8Text(BODY))],
  ["frontend: prepare (validate, encode the input)", () => processor.prepare("hits", body)],
  ["  of which encodeInput (8 doubles)", () => encodeInput("doubles", INPUT)],
  ["frontend: answerNowJson (policy, cache lookup, metrics, answer text)", () => processor.answerNowJson(prepared)],
  ["  of which the cache lookup", () => cache.lookup(model, "doubles", encoded)],
  ["frontend: whole query path, body in, answer text out", () => processor.answerNowJson(processor.prepare("hits", JSON.parse(utf8Text(BODY))))],
];
const rows = steps.map(([name, fn]) => {
  const ns = nanos(fn);
  process.stdout.write(`${name}: ${ns.toFixed(0)} ns\n`);
  return [name, ns.toFixed(0)];
});
void sink;

writeReport("frontend-handler", [
  "# Frontend handler, in-process (ranking, not target 3)",
  "",
  runContext("npm run build && node dist/bench/frontend-handler.js"),
  "",
  `Both request handlers driven in one process on fake sockets (no kernel, no event-loop I/O; one keep-alive connection each, the frontend's through its HTTP guard), ${REQUESTS} cache-hit`,
  `requests one after another, ${ROUNDS} interleaved rounds, medians; then each step of the frontend's query path`,
  "alone (best of 5 runs). Target 3 is measured by bench/frontend.ts (docs/bench/frontend.md): what",
  "the frontend spends per request beyond the bare server there and not here is outside its handler.",
  "",
  markdownTable(["handler", "µs per request", "rounds"], [
    ["bare node:http (bench/servers/bare-handler.ts)", bareUs.toFixed(2), handlers.bare.map((x) => x.toFixed(2)).join(", ")],
    ["query frontend (createQueryServer)", frontendUs.toFixed(2), handlers.frontend.map((x) => x.toFixed(2)).join(", ")],
    ["difference", (frontendUs - bareUs).toFixed(2), ""],
  ]),
  "",
  markdownTable(["step", "ns per call"], rows),
  "",
].join("\n"), {});
