/**
 * A fast path in front of node:http for the one request shape a serving hot path sees by the
 * thousand: a whole HTTP/1.1 request with a Content-Length body, answered with a small JSON body.
 * node:http's per-request objects (IncomingMessage, ServerResponse, their streams and events) cost
 * more than a cache hit's own work; a server on plain sockets answers the same requests with ~40%
 * less CPU (docs/benchmarks.md, "Fifth pass").
 *
 * Only a strict subset is taken here (see parseSimpleHead): any request outside it — another
 * method or route, chunked or `Expect`, a `Connection` other than keep-alive, HTTP/1.0, duplicate
 * or unusual header bytes, a head or body not whole in what has arrived, a body over the limit —
 * hands the connection, bytes and all, to node:http, which then serves it for the rest of its life
 * with its own parser, timeouts and error answers (http-guard.ts). So node:http stays the judge of
 * everything unusual, and this module never answers a malformed request itself.
 *
 * Pipelined requests are answered in order whatever order their answers are ready in.
 */
import type { Socket } from "node:net";
import { STATUS_CODES } from "node:http";

/** Head bytes at most before the head must be whole (node:http's default maxHeaderSize). */
export const MAX_HEAD_BYTES = 16 * 1024;
/** Header lines at most on the fast path; more go to node:http. */
const MAX_HEADERS = 64;
/** Requests of one connection taken and not yet answered, beyond which it reads no more. */
const MAX_IN_FLIGHT = 128;

/** A request's head, as parseSimpleHead found it. */
export interface SimpleHead {
  readonly method: string;
  /** The request target as sent (origin form: starts with "/"). */
  readonly target: string;
  /** Header values by lower-case name; a null-prototype object, so any name is a plain key. */
  readonly headers: Readonly<Record<string, string>>;
  readonly contentLength: number;
}

const REQUEST_LINE = /^([A-Z]{1,16}) (\/[\x21-\x7e]*) HTTP\/1\.1$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e]*$/;
const DIGITS = /^[0-9]{1,15}$/;
/** Headers whose presence alone means "not the simple case". */
const HANDED_OFF = new Set(["transfer-encoding", "expect", "upgrade", "te", "trailer", "http2-settings"]);

/**
 * The head in `text` (up to, not including, the blank line) if it is in the fast path's subset:
 * `METHOD /target HTTP/1.1`, header names tokens, values visible ASCII, no name twice, a
 * Content-Length of digits, no Transfer-Encoding, Expect or Upgrade, and a Connection header, if
 * any, saying keep-alive. Anything else is undefined: node:http decides what it is.
 */
export function parseSimpleHead(text: string): SimpleHead | undefined {
  const lines = text.split("\r\n");
  if (lines.length - 1 > MAX_HEADERS) return undefined;
  const request = REQUEST_LINE.exec(lines[0]!);
  if (request === null) return undefined;
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return undefined;
    const value = line.slice(colon + 1);
    if (!FIELD_VALUE.test(value)) return undefined;
    const key = name.toLowerCase();
    if (key in headers || HANDED_OFF.has(key)) return undefined;
    headers[key] = value.trim();
  }
  const connection = headers["connection"];
  if (connection !== undefined && connection.toLowerCase() !== "keep-alive") return undefined;
  const length = headers["content-length"];
  if (length === undefined || !DIGITS.test(length)) return undefined;
  return { method: request[1]!, target: request[2]!, headers, contentLength: Number(length) };
}

/** How a fast handler answers: a JSON text and its status, with any extra headers. */
export type FastReply = (status: number, json: string, headers?: Readonly<Record<string, string>>) => void;
/** Serves one request whose body has arrived whole; must call `reply` exactly once. */
export type FastHandler = (body: Buffer, reply: FastReply) => void;
/** Picks the handler for a head, or undefined to hand the connection to node:http. */
export type FastRouter = (head: SimpleHead) => FastHandler | undefined;

/** What the fast path reports to the connection guard (http-guard.ts), as node:http's requests do. */
export interface FastPathHooks {
  /** A request was taken on the fast path. */
  requestStarted(socket: Socket): void;
  /** Its answer was written (or the socket closed under it). */
  requestEnded(socket: Socket): void;
  /** Hands the socket to node:http (its own connection listener); `buffered` was read and not served. */
  handOff(socket: Socket, buffered: Buffer | undefined): void;
}

export interface FastPathOptions {
  route: FastRouter;
  /** Bodies larger than this go to node:http, which answers 413 as the routes do. */
  maxBodyBytes: number;
  /** An idle connection (no request in flight) closes after this long without a byte, as node:http's keepAliveTimeout. */
  keepAliveMs: number;
  /** What a handler that throws answers (500): JSON in the server's own format. */
  internalError(err: unknown): string;
}

const CRLFCRLF = Buffer.from("\r\n\r\n");

/** Date header text, made at most once a second (node:http caches its own the same way). */
let dateSecond = -1;
let dateText = "";
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

function statusLine(status: number): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Unknown"}\r\n`;
}

/**
 * A whole response: status line, node:http's usual headers for a kept-alive answer, and the body.
 * Extra headers are checked as node:http's writeHead checks them (a CR or LF in a value would
 * split the response): a bad one throws, before anything is written.
 */
export function responseText(status: number, json: string, keepAliveMs: number, headers?: Readonly<Record<string, string>>): string {
  let extra = "";
  if (headers !== undefined) {
    for (const name of Object.keys(headers)) {
      const value = headers[name]!;
      if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) throw new TypeError(`invalid response header ${JSON.stringify(name)}: ${JSON.stringify(value)}`);
      extra += `${name}: ${value}\r\n`;
    }
  }
  return `${statusLine(status)}${extra}content-type: application/json\r\ncontent-length: ${Buffer.byteLength(json)}\r\n` +
    `Date: ${httpDate()}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(keepAliveMs / 1000)}\r\n\r\n${json}`;
}

/** One connection served on the fast path until (if ever) it is handed to node:http. */
class FastConnection {
  private buffered: Buffer | undefined;
  /** Sequence numbers: the next request's, and the next answer to write. */
  private nextSeq = 0;
  private writeSeq = 0;
  /** Answers ready before the ones ahead of them (pipelining). */
  private readonly early = new Map<number, string>();
  private inFlight = 0;
  /** Set once a request outside the subset arrived: no more parsing, the hand-off waits for answers in flight. */
  private handingOff = false;
  private paused = false;
  private gone = false;
  private readonly onData = (chunk: Buffer) => this.received(chunk);
  private readonly onDrain = () => this.unpause();
  private readonly onTimeout = () => {
    if (this.inFlight === 0 && !this.handingOff) this.socket.destroy();
  };
  private readonly onClose = () => this.closed();
  /** A reset or a failed write: the socket is done (its `close` follows); without a listener it would throw. */
  private readonly onError = () => this.socket.destroy();

  constructor(
    private readonly socket: Socket,
    private readonly options: FastPathOptions,
    private readonly hooks: FastPathHooks,
  ) {
    socket.on("data", this.onData);
    socket.on("drain", this.onDrain);
    socket.on("timeout", this.onTimeout);
    socket.on("close", this.onClose);
    socket.on("error", this.onError);
    socket.setTimeout(options.keepAliveMs);
  }

  private received(chunk: Buffer): void {
    this.buffered = this.buffered === undefined ? chunk : Buffer.concat([this.buffered, chunk]);
    if (this.handingOff) {
      // Waiting for the answers ahead of the hand-off: hold what arrives, but not without bound.
      if (this.buffered.length > MAX_HEAD_BYTES) this.pause();
      return;
    }
    this.serve();
  }

  /** Takes every whole request in the buffer, in order, until one is not in the subset. */
  private serve(): void {
    while (this.buffered !== undefined && !this.handingOff && !this.paused) {
      const buffer = this.buffered;
      const headEnd = buffer.indexOf(CRLFCRLF);
      // A head not whole yet (or too large) is node:http's: its parser has the timeouts and the 431.
      if (headEnd < 0 || headEnd > MAX_HEAD_BYTES) return this.startHandOff();
      const head = parseSimpleHead(buffer.toString("latin1", 0, headEnd));
      if (head === undefined || head.contentLength > this.options.maxBodyBytes) return this.startHandOff();
      const bodyStart = headEnd + 4;
      const end = bodyStart + head.contentLength;
      if (buffer.length < end) return this.startHandOff();
      const handler = this.options.route(head);
      if (handler === undefined) return this.startHandOff();
      this.buffered = buffer.length === end ? undefined : buffer.subarray(end);
      this.take(handler, buffer.subarray(bodyStart, end));
      if (this.inFlight >= MAX_IN_FLIGHT) this.pause();
    }
  }

  private take(handler: FastHandler, body: Buffer): void {
    const seq = this.nextSeq++;
    this.inFlight++;
    this.hooks.requestStarted(this.socket);
    let replied = false;
    const reply: FastReply = (status, json, headers) => {
      if (replied) return;
      replied = true;
      let text: string;
      try {
        text = responseText(status, json, this.options.keepAliveMs, headers);
      } catch (err) {
        // A header that cannot be sent: the request is still answered, as a fault of ours.
        text = responseText(500, this.options.internalError(err), this.options.keepAliveMs);
      }
      this.answered(seq, text);
    };
    try {
      handler(body, reply);
    } catch (err) {
      reply(500, this.options.internalError(err));
    }
  }

  /** Writes an answer when every answer before it is out; holds it otherwise. */
  private answered(seq: number, text: string): void {
    if (this.gone) return;
    if (seq !== this.writeSeq) {
      this.early.set(seq, text);
      return;
    }
    this.write(text);
    for (let next = this.early.get(this.writeSeq); next !== undefined; next = this.early.get(this.writeSeq)) {
      this.early.delete(this.writeSeq);
      this.write(next);
    }
    if (this.inFlight === 0 && this.handingOff) this.finishHandOff();
    else if (this.paused && !this.socket.writableNeedDrain && this.inFlight < MAX_IN_FLIGHT) this.unpause();
  }

  private write(text: string): void {
    this.writeSeq++;
    this.inFlight--;
    if (!this.socket.write(text)) this.pause();
    this.hooks.requestEnded(this.socket);
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
  }

  private unpause(): void {
    if (!this.paused || this.gone || this.socket.writableNeedDrain || this.inFlight >= MAX_IN_FLIGHT) return;
    this.paused = false;
    this.socket.resume();
    if (!this.handingOff) this.serve();
  }

  private startHandOff(): void {
    this.handingOff = true;
    if (this.inFlight === 0) this.finishHandOff();
  }

  private finishHandOff(): void {
    const socket = this.socket;
    socket.removeListener("data", this.onData);
    socket.removeListener("drain", this.onDrain);
    socket.removeListener("timeout", this.onTimeout);
    socket.removeListener("close", this.onClose);
    // node:http has its own error listener from here on (its connection listener adds it below).
    socket.removeListener("error", this.onError);
    socket.setTimeout(0);
    const buffered = this.buffered;
    this.buffered = undefined;
    this.hooks.handOff(socket, buffered);
    if (this.paused) socket.resume();
  }

  private closed(): void {
    this.gone = true;
    this.early.clear();
    // Answers still owed were never written: each request ends with its socket, as a response's `close` does.
    for (; this.inFlight > 0; this.inFlight--) this.hooks.requestEnded(this.socket);
  }
}

/** Serves `socket` on the fast path, handing it to node:http (hooks.handOff) at its first request outside the subset. */
export function serveFast(socket: Socket, options: FastPathOptions, hooks: FastPathHooks): void {
  new FastConnection(socket, options, hooks);
}
