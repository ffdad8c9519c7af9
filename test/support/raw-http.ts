/**
 * HTTP/1.1 on a raw socket (net.connect), for tests of what node:http clients hide: pipelined
 * requests on one connection, uploads that keep going after the answer, connections held open.
 */
import { connect, type Socket } from "node:net";

export interface RawResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: string;
}

/** A connection to 127.0.0.1:port that keeps everything it receives, and how it ended. */
export class RawConnection {
  readonly socket: Socket;
  received = Buffer.alloc(0);
  /** The socket error, if one ended it (ECONNRESET, EPIPE). */
  error: NodeJS.ErrnoException | undefined;
  readonly closed: Promise<void>;
  /** The server is done: it closed its side (FIN), or the connection is gone. */
  readonly finished: Promise<void>;
  isFinished = false;
  readonly connected: Promise<void>;

  constructor(port: number) {
    // Half-open allowed: a client still uploading keeps sending after the server's FIN, as curl does.
    this.socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    this.socket.on("data", (chunk: Buffer) => (this.received = Buffer.concat([this.received, chunk])));
    this.socket.on("error", (err) => (this.error ??= err));
    this.closed = new Promise((resolve) => this.socket.once("close", () => resolve()));
    this.finished = new Promise((resolve) => {
      const done = () => {
        this.isFinished = true;
        resolve();
      };
      this.socket.once("end", done);
      this.socket.once("close", done);
    });
    this.connected = new Promise((resolve, reject) => {
      this.socket.once("connect", resolve);
      this.socket.once("error", reject);
    });
  }

  get isClosed(): boolean {
    return this.socket.closed;
  }

  write(data: string | Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  /** The complete responses received so far, in order. */
  responses(): RawResponse[] {
    return parseResponses(this.received).responses;
  }

  /** Waits until `count` complete responses arrived (or the socket closed, or `timeoutMs` passed). */
  async waitForResponses(count: number, timeoutMs = 5_000): Promise<RawResponse[]> {
    const until = Date.now() + timeoutMs;
    while (this.responses().length < count && !this.isFinished && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    return this.responses();
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Opens a connection and waits until it is established. */
export async function rawConnect(port: number): Promise<RawConnection> {
  const conn = new RawConnection(port);
  await conn.connected;
  return conn;
}

/** One request's bytes; `body` gets a Content-Length unless `headers` names a length or encoding. */
export function rawRequest(method: string, path: string, headers: Record<string, string | number> = {}, body = ""): string {
  const all: Record<string, string | number> = { Host: "127.0.0.1", ...headers };
  const named = Object.keys(all).map((h) => h.toLowerCase());
  if (body !== "" && !named.includes("content-length") && !named.includes("transfer-encoding")) all["Content-Length"] = Buffer.byteLength(body);
  return `${method} ${path} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n${body}`;
}

/** Parses back-to-back responses (Content-Length or chunked bodies); stops at the first incomplete one. */
export function parseResponses(data: Buffer): { responses: RawResponse[]; rest: Buffer } {
  const responses: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const headEnd = data.indexOf("\r\n\r\n", at);
    if (headEnd < 0) break;
    const [statusLine, ...lines] = data.subarray(at, headEnd).toString("latin1").split("\r\n");
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "")?.[1]);
    if (!Number.isInteger(status)) throw new Error(`not an HTTP response: ${JSON.stringify(statusLine)}`);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    let next = headEnd + 4;
    let body: Buffer;
    if (headers["transfer-encoding"]?.toLowerCase() === "chunked") {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = data.indexOf("\r\n", next);
        if (lineEnd < 0) return { responses, rest: data.subarray(at) };
        const size = parseInt(data.subarray(next, lineEnd).toString("latin1"), 16);
        if (data.length < lineEnd + 2 + size + 2) return { responses, rest: data.subarray(at) };
        parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
        next = lineEnd + 2 + size + 2;
        if (size === 0) break;
      }
      body = Buffer.concat(parts);
    } else {
      const length = Number(headers["content-length"] ?? 0);
      if (data.length < next + length) break;
      body = data.subarray(next, next + length);
      next += length;
    }
    responses.push({ status, headers, body: body.toString("utf8") });
    at = next;
  }
  return { responses, rest: data.subarray(at) };
}

/**
 * Keeps uploading `chunk` every `everyMs` until the socket closes or `forMs` passes: a client
 * that has not noticed the server's early answer.
 */
export async function keepSending(conn: RawConnection, chunk: Buffer, everyMs: number, forMs: number): Promise<void> {
  const until = Date.now() + forMs;
  while (!conn.socket.destroyed && Date.now() < until) {
    conn.write(chunk);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
