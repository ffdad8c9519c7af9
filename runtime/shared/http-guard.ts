/**
 * The connection handling both HTTP servers (query frontend, management daemon) share on top of
 * node:http, for three edges Node leaves open (docs/operations.md, "HTTP connections"):
 *
 * - A malformed request pipelined behind well-formed ones: Node's default answers the 400 at once
 *   and destroys the socket, losing the earlier requests' answers. Here the earlier requests are
 *   answered in order, then the 400 (or 408, 413, 431) with `Connection: close`, then the close.
 * - An answer sent before the request's body arrived (413, 401, 415, 404, ...): Node closes the
 *   socket as soon as a `Connection: close` answer is flushed, with the upload still unread, and
 *   the kernel then resets the connection, so a client still sending may read ECONNRESET instead
 *   of our answer. Here the rest of the upload is read and discarded for at most DRAIN_MS and
 *   DRAIN_BYTES after the answer, then the socket closes.
 * - A connection cap (`--max-connections`): at the cap a new connection first closes the
 *   connection idle the longest (no request in progress: a keep-alive connection between requests,
 *   or one that never sent a byte), so idle clients cannot lock out new ones; when every
 *   connection is busy the new one is answered 503 with `Connection: close` and closed (at most
 *   MAX_REFUSING such answers at a time; beyond that a new connection is closed unanswered).
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerOptions, ServerResponse, STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import { type FastPathOptions, serveFast } from "./http-fast-path.js";

/** How long the rest of an upload is drained after an early answer before the socket closes. */
export const DRAIN_MS = 1_000;
/** How many bytes of it are drained at most (whichever bound comes first). */
export const DRAIN_BYTES = 8 * 2 ** 20;
/** Connections answered 503 at the cap at one time; more are closed unanswered. */
export const MAX_REFUSING = 64;

/** An error answer in the server's own format (JSON on the query API, text on the admin API). */
export interface ErrorAnswer {
  contentType: string;
  body: string;
}

export interface HttpGuardOptions {
  /** Open connections at most (connection-limit.ts has the default). */
  maxConnections: number;
  /** How this server words an error it answers outside a request handler. */
  errorAnswer(status: number, message: string): ErrorAnswer;
  /** Bounds of the drain after an early answer; tests shorten them. */
  drainMs?: number;
  drainBytes?: number;
  /** Serve the simple requests of http-fast-path.ts without node:http's request objects; the rest go to node:http. */
  fast?: FastPathOptions;
}

interface Connection {
  readonly socket: Socket;
  /** Requests received whose responses have not closed yet. */
  pending: number;
  /** An answer with `Connection: close` is out or on its way: nothing more is handled, input is drained. */
  closing: boolean;
  /** `socket.bytesRead` when the drain began. */
  drainFrom: number;
  /** The answer to a malformed request, written once the requests before it are answered. */
  afterPending?: () => void;
  /** The server's drain bounds. */
  readonly drain: { readonly ms: number; readonly bytes: number };
  /** The server's list of idle connections, and this one's place in it (IdleList). */
  readonly idle: IdleList | undefined;
  idleSince: number;
  prevIdle: Connection | undefined;
  nextIdle: Connection | undefined;
  inIdle: boolean;
}

/**
 * A socket's Connection, as a property of the socket: read on every request, where a property
 * costs less than a WeakMap lookup.
 */
const kConnection = Symbol("clipper.guardedConnection");
type GuardedSocket = Socket & { [kConnection]?: Connection };

function connectionOf(socket: Socket): Connection | undefined {
  return (socket as GuardedSocket)[kConnection];
}

function newConnection(socket: Socket, drain: Connection["drain"], idle: IdleList | undefined): Connection {
  const conn: Connection = {
    socket, pending: 0, closing: false, drainFrom: 0, afterPending: undefined, drain,
    idle, idleSince: 0, prevIdle: undefined, nextIdle: undefined, inIdle: false,
  };
  (socket as GuardedSocket)[kConnection] = conn;
  return conn;
}

/**
 * Connections with no request in progress, idle the longest first: a list threaded through the
 * Connection records, so that the moves every request makes (out when it arrives, back in when
 * its response closes) are O(1) and allocate nothing.
 */
class IdleList {
  private head: Connection | undefined;
  private tail: Connection | undefined;

  /** Puts `conn` last (idle from now), with the bytes its socket had read then. */
  push(conn: Connection): void {
    if (conn.inIdle) this.remove(conn);
    conn.idleSince = conn.socket.bytesRead;
    conn.inIdle = true;
    conn.prevIdle = this.tail;
    conn.nextIdle = undefined;
    if (this.tail) this.tail.nextIdle = conn;
    else this.head = conn;
    this.tail = conn;
  }

  remove(conn: Connection): void {
    if (!conn.inIdle) return;
    if (conn.prevIdle) conn.prevIdle.nextIdle = conn.nextIdle;
    else this.head = conn.nextIdle;
    if (conn.nextIdle) conn.nextIdle.prevIdle = conn.prevIdle;
    else this.tail = conn.prevIdle;
    conn.prevIdle = conn.nextIdle = undefined;
    conn.inIdle = false;
  }

  /** Takes the connection idle the longest out of the list. */
  shift(): Connection | undefined {
    const first = this.head;
    if (first) this.remove(first);
    return first;
  }
}

/**
 * A response that, when an answer starts before the request's body was received, answers with
 * `Connection: close` and drains the rest (see the module comment). Every answer passes through
 * writeHead (Node's implicit headers call it too), so no route can forget it. Exported for
 * bench/frontend-handler.ts, which drives a guarded server's handler in-process.
 */
export class GuardedResponse extends ServerResponse {
  /** The connection whose request this answers, set by the request listener when it tracks one. */
  declare guarded: Connection | undefined;

  override writeHead(): this {
    if (!this.headersSent && bodyUnread(this.req)) closeAfterAnswer(this.req, this);
    // `arguments` as they came: writeHead's overloads tell its forms apart by their count and types.
    return (ServerResponse.prototype.writeHead as (...a: unknown[]) => this).apply(this, arguments as unknown as unknown[]);
  }

  /**
   * The response's `close` ends its request on the connection (responseClosed), here rather than
   * through a listener added per request; before the listeners, as that one was.
   */
  override emit(event: string | symbol): boolean {
    if (event === "close" && this.guarded !== undefined) {
      const conn = this.guarded;
      this.guarded = undefined;
      responseClosed(conn);
    }
    return (ServerResponse.prototype.emit as (...a: unknown[]) => boolean).apply(this, arguments as unknown as unknown[]);
  }
}

/** A request's response closed: the connection goes idle, or answers the malformed request that waited. */
function responseClosed(conn: Connection): void {
  if (--conn.pending > 0) return;
  if (conn.afterPending !== undefined) conn.afterPending();
  else if (!conn.closing && conn.idle !== undefined && !conn.socket.destroyed) conn.idle.push(conn);
}

/** Whether the request announced a body that has not fully arrived. */
function bodyUnread(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/**
 * Marks an answer as the connection's last: `Connection: close`, the rest of the request body
 * read and discarded within the drain bounds, then the socket closed.
 */
function closeAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  if (!res.headersSent) res.setHeader("connection", "close");
  const socket = req.socket;
  const conn = connectionOf(socket);
  if (conn === undefined || conn.closing) return;
  startDrain(socket, conn);
  discard(req, socket, conn);
  res.once("finish", () => closeAfterDrain(socket, conn));
}

function startDrain(socket: Socket, conn: Connection): void {
  conn.closing = true;
  conn.drainFrom = socket.bytesRead;
  // Node ends a `Connection: close` answer with destroySoon(), which destroys the socket once the
  // answer is flushed, unread upload and all (a reset): here it only half-closes; closeAfterDrain destroys.
  socket.destroySoon = () => {
    if (!socket.writableEnded) socket.end();
  };
}

function closeAfterDrain(socket: Socket, conn: Connection): void {
  setTimeout(() => socket.destroy(), conn.drain.ms).unref();
}

/** Reads and drops a request's body on a closing connection, closing at once past the byte bound. */
function discard(req: IncomingMessage, socket: Socket, conn: Connection): void {
  req.on("data", () => checkDrainBytes(socket, conn));
  req.resume();
}

function checkDrainBytes(socket: Socket, conn: Connection): void {
  if (socket.bytesRead - conn.drainFrom > conn.drain.bytes) socket.destroy();
}

/** A whole HTTP/1.1 answer, for what is answered outside a request handler. */
function rawAnswer(status: number, answer: ErrorAnswer): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nConnection: close\r\nContent-Type: ${answer.contentType}\r\n` +
    `Content-Length: ${Buffer.byteLength(answer.body)}\r\n\r\n${answer.body}`;
}

/** The status and wording of a request Node's parser refused. */
function parseFailure(err: NodeJS.ErrnoException & { reason?: string }): { status: number; message: string } {
  switch (err.code) {
    case "HPE_HEADER_OVERFLOW":
      return { status: 431, message: "the request's headers are too large" };
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return { status: 413, message: "the request's chunk extensions are too large" };
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return { status: 408, message: "the request was not received in time" };
    default:
      return { status: 400, message: `malformed HTTP request: ${err.reason ?? err.message}` };
  }
}

/**
 * Puts the fast path (http-fast-path.ts) in place of node:http's own connection listener: each
 * guarded connection starts there and is handed to that listener at its first request outside the
 * fast path's subset. Its requests count on the connection as node:http's do (pending, idle), and
 * closeAllConnections/closeIdleConnections reach the connections node:http never saw.
 */
function takeConnectionsFast(server: Server, fast: FastPathOptions, open: Set<Socket>, idle: IdleList): void {
  const nodeListeners = server.listeners("connection").slice(1) as ((socket: Socket) => void)[];
  if (nodeListeners.length !== 1) throw new Error(`expected node:http's one connection listener, found ${nodeListeners.length}`);
  const nodeListener = nodeListeners[0]!;
  server.removeListener("connection", nodeListener);
  const hooks = {
    requestStarted(socket: Socket): void {
      const conn = connectionOf(socket)!;
      conn.pending++;
      idle.remove(conn);
    },
    requestEnded(socket: Socket): void {
      responseClosed(connectionOf(socket)!);
    },
    handOff(socket: Socket, buffered: Buffer | undefined): void {
      nodeListener.call(server, socket);
      // Straight to node:http's parser, ahead of anything the socket reads next.
      if (buffered !== undefined) socket.emit("data", buffered);
    },
  };
  server.on("connection", (socket: Socket) => {
    const conn = connectionOf(socket);
    // A connection refused at the cap is node:http's to drain (refuse above).
    if (conn === undefined || conn.closing || conn.idle === undefined) return nodeListener.call(server, socket);
    serveFast(socket, fast, hooks);
  });
  const closeAll = server.closeAllConnections.bind(server);
  server.closeAllConnections = () => {
    closeAll();
    for (const socket of open) socket.destroy();
  };
  const closeIdle = server.closeIdleConnections.bind(server);
  server.closeIdleConnections = () => {
    closeIdle();
    for (const socket of open) {
      const conn = connectionOf(socket);
      if (conn !== undefined && conn.inIdle && conn.pending === 0 && socket.bytesRead === conn.idleSince) socket.destroy();
    }
  };
}

/** An HTTP server with the guards of the module comment around `handler`. */
export function createGuardedServer(serverOptions: ServerOptions, guard: HttpGuardOptions, handler: RequestListener): Server {
  if (!Number.isSafeInteger(guard.maxConnections) || guard.maxConnections < 1) {
    throw new RangeError(`maxConnections must be a positive integer, got ${guard.maxConnections}`);
  }
  const drain = { ms: guard.drainMs ?? DRAIN_MS, bytes: guard.drainBytes ?? DRAIN_BYTES };
  const open = new Set<Socket>();
  const idle = new IdleList();
  let refusing = 0;

  /** Closes the connection idle the longest; false when every connection is busy. */
  const evictIdlest = (): boolean => {
    for (let conn = idle.shift(); conn !== undefined; conn = idle.shift()) {
      // Bytes since it went idle: a request is arriving; it goes back to idle once answered.
      if (conn.socket.bytesRead !== conn.idleSince || conn.pending > 0) continue;
      open.delete(conn.socket);
      conn.socket.destroy();
      return true;
    }
    return false;
  };

  const refuse = (socket: Socket): void => {
    if (refusing >= MAX_REFUSING) {
      socket.destroy();
      return;
    }
    refusing++;
    socket.once("close", () => refusing--);
    const conn = newConnection(socket, drain, undefined);
    startDrain(socket, conn);
    const answer = guard.errorAnswer(503, `the server is at its limit of ${guard.maxConnections} connections (--max-connections); try again`);
    socket.end(rawAnswer(503, answer), () => closeAfterDrain(socket, conn));
  };

  // GuardedResponse's overrides take `arguments` (no rest array per call), which its declared type does not show.
  const server = createServer({ ...serverOptions, ServerResponse: GuardedResponse as unknown as typeof ServerResponse }, (req, res) => {
    const socket = req.socket;
    const conn = connectionOf(socket);
    if (conn === undefined) return handler(req, res);
    if (conn.closing) {
      // After a last answer (or on a refused connection): read and drop, answer nothing.
      discard(req, socket, conn);
      return;
    }
    conn.pending++;
    idle.remove(conn);
    // Its `close` calls responseClosed (GuardedResponse.emit).
    (res as GuardedResponse).guarded = conn;
    handler(req, res);
  });

  // Before Node's own listener, so that the answer to a refused connection goes first.
  server.prependListener("connection", (socket: Socket) => {
    if (open.size >= guard.maxConnections && !evictIdlest()) return refuse(socket);
    open.add(socket);
    const conn = newConnection(socket, drain, idle);
    idle.push(conn);
    socket.once("close", () => {
      open.delete(socket);
      idle.remove(conn);
    });
  });

  if (guard.fast !== undefined) takeConnectionsFast(server, guard.fast, open, idle);

  server.on("clientError", (err: NodeJS.ErrnoException & { reason?: string }, socket: Socket) => {
    const conn = connectionOf(socket);
    // Node's parser reports every chunk after a parse error again: those are drained input.
    if (conn?.closing) return checkDrainBytes(socket, conn);
    const { status, message } = parseFailure(err);
    const broken = err.code === "ECONNRESET" || err.code === "EPIPE" || !socket.writable;
    if (conn === undefined || broken || status === 408) {
      // A broken socket cannot be answered; a client too slow to send its request is not waited for further.
      if (!broken && !(socket as { _httpMessage?: ServerResponse })._httpMessage?.headersSent) {
        socket.write(rawAnswer(status, guard.errorAnswer(status, message)));
      }
      socket.destroy();
      return;
    }
    startDrain(socket, conn);
    conn.afterPending = () => {
      if (socket.writableEnded || socket.destroyed) return;
      socket.end(rawAnswer(status, guard.errorAnswer(status, message)), () => closeAfterDrain(socket, conn));
    };
    if (conn.pending === 0) conn.afterPending();
  });

  return server;
}
