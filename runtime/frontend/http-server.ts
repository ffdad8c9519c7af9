/**
 * The query frontend's HTTP API on plain node:http (the hot path): Clipper's /<app>/predict and
 * /<app>/update, Prometheus text on /metrics, /health for managers and probes, and the Open
 * Inference Protocol under /v2 (handled by oip/handler.ts).
 */
import { type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from "node:http";
import type { Logger } from "pino";
import { BodyNotUtf8Error, BodyTooLargeError, collectBody, readBody, utf8Text } from "../shared/http-body.js";
import { createGuardedServer } from "../shared/http-guard.js";
import type { FastPathOptions, FastReply, FastRouter } from "../shared/http-fast-path.js";
import { defaultMaxConnections } from "../shared/connection-limit.js";
import { type AllowedHosts, hostRefusal, isForeignOrigin, isHostAllowed } from "../shared/host-check.js";
import { presentsToken, TOKEN_HEADER } from "../shared/secrets.js";
import type { FrontendMetrics } from "./metrics.js";
import type { MetricsScrape } from "./cluster-metrics.js";
import type { QueryAuth } from "./query-auth.js";
import { QueryError, type QueryProcessor } from "./query-processor.js";

export interface QueryHttpOptions {
  processor: QueryProcessor;
  metrics: FrontendMetrics;
  log: Logger;
  maxBodyBytes: number;
  /** Bounds how long a client may take to send its request. */
  requestTimeoutMs: number;
  /** Open connections at most (shared/http-guard.ts); default below the descriptor limit (shared/connection-limit.ts). */
  maxConnections?: number;
  health(): Record<string, unknown>;
  /** Host names admitted besides loopback names and IP addresses (shared/host-check.ts). */
  allowedHosts: AllowedHosts;
  /** The cluster's management token, when it has one: a request presenting it passes the Host check. */
  token?: string;
  /** API keys on predict, update and OIP model routes (query-auth.ts). */
  auth: QueryAuth;
  /** GET /metrics of a worker under a --workers primary: the whole frontend's (cluster-metrics.ts). Default: this process's registry. */
  scrapeMetrics?(): Promise<MetricsScrape>;
  /** The Open Inference Protocol (oip/handler.ts): paths under /v2 that are not Clipper's routes. */
  oip?: { handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> };
}

/** Idle keep-alive connections close after this long, on both paths. */
const KEEP_ALIVE_MS = 5_000;
const ROUTE = /^\/([^/]+)\/(predict|update)\/?$/;
/** OIP routes that stay open with API keys on, like /health: server metadata and health. */
const OPEN_OIP = /^\/v2(\/health\/(live|ready))?\/?$/;

function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  sendJsonText(res, status, JSON.stringify(body), headers);
}

function sendJsonText(res: ServerResponse, status: number, text: string, headers?: Record<string, string>): void {
  if (headers) {
    res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  } else {
    // A flat array: node:http walks it by index instead of for-in over an object's keys.
    res.writeHead(status, ["content-type", "application/json", "content-length", String(Buffer.byteLength(text))]);
  }
  res.end(text);
}

function internalErrorJson(err: unknown): string {
  return JSON.stringify({ error: "Internal error", cause: err instanceof Error ? err.message : String(err) });
}

function sendError(res: ServerResponse, status: number, error: string, cause: string, headers?: Record<string, string>): void {
  sendJson(res, status, { error, cause }, headers);
}

/** An error answered outside a route (a malformed request, a connection over the cap), as the routes word theirs. */
function errorAnswer(status: number, message: string): { contentType: string; body: string } {
  const title = STATUS_CODES[status] ?? "Error";
  return { contentType: "application/json", body: JSON.stringify({ error: title[0] + title.slice(1).toLowerCase(), cause: message }) };
}

/** A body as JSON, or the QueryError to answer (400 "Json error", as Clipper's). */
function parseJson(raw: Buffer): unknown {
  let text: string;
  try {
    text = utf8Text(raw);
  } catch (err) {
    if (err instanceof BodyNotUtf8Error) throw new QueryError(400, "Json error", `Error parsing JSON: ${err.message}`);
    throw err;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new QueryError(400, "Json error", `Error parsing JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function createQueryServer(options: QueryHttpOptions): Server {
  const { processor, metrics, log, maxBodyBytes } = options;

  /** Host headers found admitted: a client sends the same one on each request, and the check parses it every time. */
  const admittedHosts = new Set<string>();
  function hostAdmitted(host: string | undefined): boolean {
    if (host !== undefined && admittedHosts.has(host)) return true;
    if (!isHostAllowed(host, options.allowedHosts)) return false;
    if (host !== undefined) {
      // Bounded whatever Host headers clients make up; only admitted ones are remembered.
      if (admittedHosts.size >= 64) admittedHosts.clear();
      admittedHosts.add(host);
    }
    return true;
  }

  /** Routes a request; synchronous up to the route's own work (a promise only from the routes that wait). */
  function handle(req: IncomingMessage, res: ServerResponse): void | Promise<void> {
    const url = req.url ?? "/";
    const question = url.indexOf("?");
    const path = question < 0 ? url : url.slice(0, question);
    const host = Array.isArray(req.headers.host) ? req.headers.host[0] : req.headers.host;
    // The cluster's token also admits an unknown Host, as on the management API: a page cannot know
    // it, and a Kubernetes API server's proxy forwards whatever name the caller's kubeconfig uses.
    if (!hostAdmitted(host) && !presentsToken(options.token, req.headers.authorization, req.headers[TOKEN_HEADER])) {
      return sendError(res, 403, "Forbidden", hostRefusal(host ?? ""));
    }
    if (path === "/metrics" || path === "/health") {
      if (req.method !== "GET") return sendError(res, 405, "Method not allowed", `${path} accepts GET`);
      if (path === "/health") return sendJson(res, 200, options.health());
      return serveMetrics(res);
    }
    const match = ROUTE.exec(path);
    if (!match) {
      // An application named "v2" keeps /v2/predict and /v2/update: Clipper's routes match first.
      if (options.oip && (path === "/v2" || path.startsWith("/v2/"))) {
        if (!OPEN_OIP.test(path)) options.auth.check(req.headers, { oip: true });
        return options.oip.handle(req, res, path);
      }
      return sendError(res, 404, "Not found", `no route for ${req.method} ${path}`);
    }
    if (req.method !== "POST") return sendError(res, 405, "Method not allowed", `${path} accepts POST`);
    let app: string;
    try {
      app = match[1]!.includes("%") ? decodeURIComponent(match[1]!) : match[1]!;
    } catch {
      return sendError(res, 400, "Bad request", "the application name in the path is not valid URL encoding");
    }
    // Feedback trains the bandits: a web page in any browser tab must not be able to send it.
    // (Predictions change nothing, and without CORS headers no other site can read them.)
    if (match[2] === "update" && isForeignOrigin(req.headers.origin, host)) {
      return sendError(res, 403, "Forbidden", `feedback from web pages is refused: Origin '${req.headers.origin!.slice(0, 200)}' is not this server's own`);
    }
    options.auth.check(req.headers, { app });
    if (match[2] === "predict") return predict(req, res, app);
    return update(req, res, app);
  }

  async function serveMetrics(res: ServerResponse): Promise<void> {
    const scrape: MetricsScrape = options.scrapeMetrics
      ? await options.scrapeMetrics()
      : { ok: true, contentType: metrics.registry.contentType, text: await metrics.registry.metrics() };
    if (!scrape.ok) return sendError(res, 503, "Service unavailable", scrape.reason);
    res.writeHead(200, { "content-type": scrape.contentType });
    res.end(scrape.text);
  }

  async function update(req: IncomingMessage, res: ServerResponse, app: string): Promise<void> {
    sendJson(res, 200, await processor.update(app, parseJson(await readBody(req, maxBodyBytes))));
  }

  /**
   * Predict, without async functions: a query the cache answers (QueryProcessor.answerNowJson) is
   * answered on the tick its body ends, with no promise; anything else goes on asynchronously.
   */
  function predict(req: IncomingMessage, res: ServerResponse, app: string): void {
    const onError = (err: unknown) => fail(req, res, err);
    collectBody(req, maxBodyBytes, (raw) => predictBody(app, raw, (status, json) => sendJsonText(res, status, json), onError), onError);
  }

  /** The answer to a predict body whole in `raw`, on either path (node:http's above, the fast path's below). */
  function predictBody(app: string, raw: Buffer, reply: FastReply, onError: (err: unknown) => void): void {
    try {
      const prepared = processor.prepare(app, parseJson(raw));
      const now = processor.answerNowJson(prepared);
      if (now !== undefined) return reply(200, now);
      processor.answer(prepared).then((answer) => reply(200, JSON.stringify(answer))).catch(onError);
    } catch (err) {
      onError(err);
    }
  }

  /**
   * Predict on the fast path (shared/http-fast-path.ts): a whole POST /<app>/predict whose Host is
   * admitted and whose app name needs no decoding. Anything else — and every other route — is
   * node:http's, with its answers as above.
   */
  const fastRoute: FastRouter = (head) => {
    if (head.method !== "POST") return undefined;
    const question = head.target.indexOf("?");
    const match = ROUTE.exec(question < 0 ? head.target : head.target.slice(0, question));
    if (match === null || match[2] !== "predict" || match[1]!.includes("%")) return undefined;
    // No Host is node:http's 400 to answer; an unknown one the route's 403 (or the token's pass).
    const host = head.headers["host"];
    if (host === undefined || !hostAdmitted(host)) return undefined;
    const app = match[1]!;
    return (raw, reply) => {
      const onError = (err: unknown) => {
        const answer = errorAnswerOf(err, head.target);
        reply(answer.status, answer.json, answer.headers);
      };
      try {
        options.auth.check(head.headers, { app });
      } catch (err) {
        return onError(err);
      }
      predictBody(app, raw, reply, onError);
    };
  };

  /** An error's answer: the QueryError's own, 413 for a body too large, else 500 (logged: a fault of ours). */
  function errorAnswerOf(err: unknown, url: string | undefined): { status: number; json: string; headers?: Record<string, string> } {
    if (err instanceof QueryError) return { status: err.status, json: JSON.stringify({ error: err.error, cause: err.cause_ }), headers: err.headers };
    // The connection then closes after a bounded drain of the rest of the body (http-guard.ts).
    if (err instanceof BodyTooLargeError) return { status: 413, json: JSON.stringify({ error: "Payload too large", cause: err.message }) };
    log.error({ err, url }, "query request failed");
    return { status: 500, json: internalErrorJson(err) };
  }

  function fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    if (res.headersSent) return void res.destroy();
    const answer = errorAnswerOf(err, req.url);
    sendJsonText(res, answer.status, answer.json, answer.headers);
  }

  const fast: FastPathOptions = { route: fastRoute, maxBodyBytes, keepAliveMs: KEEP_ALIVE_MS, internalError: internalErrorJson };
  const server = createGuardedServer({}, { maxConnections: options.maxConnections ?? defaultMaxConnections(), errorAnswer, fast }, (req, res) => {
    try {
      handle(req, res)?.catch((err: unknown) => fail(req, res, err));
    } catch (err) {
      fail(req, res, err);
    }
  });
  server.requestTimeout = options.requestTimeoutMs;
  server.headersTimeout = Math.min(options.requestTimeoutMs, 60_000);
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  return server;
}
