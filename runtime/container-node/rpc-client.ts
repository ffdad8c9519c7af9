/**
 * The container side of Clipper RPC v3 over a ZeroMQ DEALER, independent of how predictions are
 * made: connect, heartbeat, send metadata when the frontend asks for it, then answer predict
 * requests one batch at a time, in order. An idle connection heartbeats; a silent one is replaced
 * by a fresh DEALER (new identity), which is how a container finds a restarted frontend again.
 *
 * Stopping by draining (`drainAndStop`, our extension of RPC v3, docs/compatibility.md): the
 * container sends DRAIN and keeps answering; the frontend's acknowledgement comes after every batch
 * it sent us, and no batch follows it. Once those are answered, a second DRAIN and its
 * acknowledgement prove that the answers arrived (ZeroMQ keeps order on a connection), and the
 * socket closes. A frontend that never acknowledges (Clipper's, or one that went away) is waited
 * for at most the drain timeout; then the container answers what it holds and stops.
 */
import { Dealer } from "zeromq";
import type { Logger } from "pino";
import {
  BATCH_ERROR_PREFIX,
  RPC_VERSION,
  decodeFrontendMessage,
  encodeContainerMessage,
  type FrontendMessage,
} from "../rpc/codec.js";
import type { InputType } from "../shared/input-types.js";
import { plainUsername, replicaRoutingId } from "../shared/rpc-auth.js";

export interface ContainerMetadata {
  name: string;
  version: string;
  inputType: InputType;
}

/** One predict request, as the frontend sent it: raw input frames, not yet decoded. */
export interface PredictBatch {
  msgId: number;
  inputType: InputType;
  inputs: Buffer[];
}

/** Returns one output string per input; a throw or rejection fails the batch. */
export type BatchHandler = (batch: PredictBatch) => Promise<string[]> | string[];

/**
 * Wraps a handler so that its calls run one at a time, in the order they were made, however many
 * clients share it: with several frontends (CLIPPER_FRONTEND_DISCOVERY=dns) each connection has its
 * own client and queue, and the predict function still sees one batch at a time.
 */
export function oneAtATime(handler: BatchHandler): BatchHandler {
  let tail: Promise<unknown> = Promise.resolve();
  return (batch) => {
    const result = tail.then(() => handler(batch));
    tail = result.catch(() => undefined);
    return result;
  };
}

/**
 * A failed batch with a reason meant for the log and for the BATCH_ERROR_PREFIX outputs. `cause`,
 * when given, is the error whose stack is logged (e.g. what the user's predict threw).
 */
export class BatchError extends Error {
  override readonly name = "BatchError";
}

/** Time, injectable for tests. */
export interface RpcClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: RpcClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** What the client needs from a socket; a zeromq Dealer by default. */
export interface DealerLike {
  readonly closed: boolean;
  connect(address: string): void;
  send(frames: Buffer[]): Promise<void>;
  close(): void;
  [Symbol.asyncIterator](): AsyncIterator<Buffer[]>;
  /** Socket events (a zeromq Dealer has them); "connect" fires on every TCP (re)connection. */
  readonly events?: { on(type: "connect", listener: () => void): unknown };
}

/**
 * How a drain ended: `drained` (acknowledged, every answer delivered), `unacknowledged` (the
 * frontend did not answer in time; what was held was answered, delivery unknown), `stopped` (no
 * connection, or stopped already).
 */
export type DrainOutcome = "drained" | "unacknowledged" | "stopped";

/** The logging calls the client makes (a pino Logger fits). */
export type RpcLogger = Pick<Logger, "info" | "warn" | "error" | "debug">;

export interface ContainerRpcClientOptions {
  /** The frontend's RPC endpoint, e.g. "tcp://127.0.0.1:7000". */
  address: string;
  metadata: ContainerMetadata;
  handleBatch: BatchHandler;
  /** Send a heartbeat after this long without hearing from the frontend (default 5000). */
  heartbeatIntervalMs?: number;
  /** Replace the connection after this long without hearing from the frontend (default 30000). */
  reconnectAfterMs?: number;
  clock?: RpcClock;
  logger?: RpcLogger;
  /**
   * This model version's RPC credential (CLIPPER_RPC_SECRET). With it, the default socket
   * authenticates with PLAIN and carries a routing id proving the version, with a fresh nonce per
   * socket (rpc-auth.ts); without it, the NULL mechanism (a frontend started with --rpc-auth none).
   */
  rpcSecret?: string;
  /** Creates each connection's socket (default: a zeromq Dealer with linger 0, see rpcSecret). */
  createSocket?: () => DealerLike;
  /** Called after each metadata message is queued for sending (the readiness file goes here). */
  onRegistered?: () => void;
  /** Called when a silent connection is replaced; `connection` counts from 1. */
  onReconnect?: (connection: number) => void;
}

interface Connection {
  socket: DealerLike;
  id: number;
  /** Sends are chained: a zeromq socket allows one send in flight. */
  sending: Promise<void>;
  lastReceived: number;
  lastHeartbeat: number;
  /** Whether the frontend was sent our metadata on this connection (only then may it send batches). */
  registered?: boolean;
}

interface Queued {
  batch: PredictBatch;
  connection: Connection;
}

const noopLogger: RpcLogger = { info() {}, warn() {}, error() {}, debug() {} };

export class ContainerRpcClient {
  private readonly address: string;
  private readonly metadata: ContainerMetadata;
  private readonly handleBatch: BatchHandler;
  private readonly heartbeatIntervalMs: number;
  private readonly reconnectAfterMs: number;
  private readonly clock: RpcClock;
  private readonly log: RpcLogger;
  private readonly createSocket: () => DealerLike;
  private readonly onRegistered: (() => void) | undefined;
  private readonly onReconnect: ((connection: number) => void) | undefined;
  /** "name:version", on every log line. */
  private readonly model: string;

  private current: Connection | undefined;
  private connectionCount = 0;
  private timer: unknown;
  private stopped = false;
  private started = false;
  private readonly queue: Queued[] = [];
  /** The loop answering queued batches, while it runs. */
  private serving: Promise<void> | undefined;
  private batchesServed = 0;
  /** Set once a drain began: no reconnect, no new registration. */
  private drainStarted = false;
  /** Drain acknowledgements received on the current connection, and who waits for the next. */
  private drainAcks = 0;
  private ackWaiters: Array<() => void> = [];
  /** Set when a drain went unacknowledged: batches arriving after that are not taken. */
  private refuseBatches = false;

  constructor(options: ContainerRpcClientOptions) {
    this.address = options.address;
    this.metadata = options.metadata;
    this.handleBatch = options.handleBatch;
    this.heartbeatIntervalMs = positive(options.heartbeatIntervalMs ?? 5000, "heartbeatIntervalMs");
    this.reconnectAfterMs = positive(options.reconnectAfterMs ?? 30000, "reconnectAfterMs");
    this.clock = options.clock ?? systemClock;
    this.log = options.logger ?? noopLogger;
    this.createSocket = options.createSocket ?? (() => createDealer(options.metadata, options.rpcSecret));
    this.onRegistered = options.onRegistered;
    this.onReconnect = options.onReconnect;
    this.model = `${this.metadata.name}:${this.metadata.version}`;
  }

  /** Connects and starts the handshake; returns at once. */
  start(): void {
    if (this.started) throw new Error("ContainerRpcClient already started");
    this.started = true;
    this.open();
    this.schedule();
  }

  /** Closes the connection; queued batches are dropped and a running one is not answered. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    const connection = this.current;
    this.current = undefined;
    if (connection) closeQuietly(connection.socket);
  }

  /**
   * Stops by draining: DRAIN, answer every batch received until the acknowledgement, prove their
   * delivery with a second DRAIN, then close. Each acknowledgement is waited for at most
   * `ackTimeoutMs`; without the first, what is held is answered and the client stops as `stop` does.
   */
  async drainAndStop(ackTimeoutMs: number): Promise<DrainOutcome> {
    const connection = this.current;
    // A connection that never registered has no batch to wait for, and its frontend would not answer.
    if (this.stopped || this.drainStarted || !connection?.registered) {
      await this.stop();
      return "stopped";
    }
    this.drainStarted = true;
    this.log.info({ model: this.model, address: this.address, connection: connection.id }, "draining: asking the query frontend for no new batches");
    let outcome: DrainOutcome = "unacknowledged";
    if (await this.drainRoundTrip(connection, ackTimeoutMs)) {
      await this.idle();
      // Everything the frontend sent came before its acknowledgement and is answered now.
      if (await this.drainRoundTrip(connection, ackTimeoutMs)) outcome = "drained";
      else this.log.warn({ model: this.model, address: this.address, timeoutMs: ackTimeoutMs }, "the query frontend did not acknowledge the end of the drain; stopping");
    } else {
      this.log.warn({ model: this.model, address: this.address, timeoutMs: ackTimeoutMs }, "the query frontend did not acknowledge the drain; stopping after the batches held");
      // A frontend that does not know DRAIN keeps sending: what comes now is left to it.
      this.refuseBatches = true;
      await this.idle();
    }
    if (outcome === "drained") this.log.info({ model: this.model, address: this.address, batches: this.batchesServed }, "drained: every batch answered");
    await this.stop();
    return outcome;
  }

  /** How many connections have been opened (1 + reconnects). */
  get connections(): number {
    return this.connectionCount;
  }

  /** Batches answered so far (failed ones included). */
  get batches(): number {
    return this.batchesServed;
  }

  private open(): void {
    const socket = this.createSocket();
    const now = this.clock.now();
    const connection: Connection = {
      socket,
      id: ++this.connectionCount,
      sending: Promise.resolve(),
      lastReceived: now,
      lastHeartbeat: now,
    };
    this.current = connection;
    let connects = 0;
    socket.events?.on("connect", () => {
      // The first connection carries the opening heartbeat. A later one is a new frontend behind
      // the same address (a restart): say hello now rather than at the next heartbeat, so the
      // frontend asks for our metadata and we are serving again within milliseconds.
      if (++connects === 1 || connection !== this.current || this.stopped) return;
      connection.lastHeartbeat = this.clock.now();
      this.send(connection, encodeContainerMessage({ kind: "heartbeat" }));
    });
    socket.connect(this.address);
    this.log.info({ model: this.model, address: this.address, connection: connection.id }, "connecting to the query frontend");
    this.send(connection, encodeContainerMessage({ kind: "heartbeat" }));
    void this.receive(connection);
  }

  private reconnect(): void {
    const old = this.current;
    if (old) closeQuietly(old.socket);
    // Requests from the old connection cannot be answered on a new one.
    this.queue.length = 0;
    this.log.warn(
      { model: this.model, address: this.address, silentMs: old ? this.clock.now() - old.lastReceived : undefined },
      "no message from the query frontend: reconnecting",
    );
    this.open();
    this.onReconnect?.(this.connectionCount);
  }

  /** One timer drives heartbeats and the reconnect deadline. */
  private schedule(): void {
    if (this.stopped) return;
    const c = this.current;
    if (!c) return;
    const now = this.clock.now();
    // A draining client keeps its connection (its batches can only be answered there; the drain's
    // own timeouts bound the wait for a silent frontend): only heartbeats are due.
    const reconnectAt = this.drainStarted ? Infinity : c.lastReceived + this.reconnectAfterMs;
    const heartbeatAt = Math.max(c.lastReceived, c.lastHeartbeat) + this.heartbeatIntervalMs;
    const wait = Math.max(1, Math.min(reconnectAt, heartbeatAt) - now);
    this.timer = this.clock.setTimeout(() => this.tick(), wait);
  }

  private tick(): void {
    this.timer = undefined;
    if (this.stopped) return;
    const c = this.current;
    if (!c) return;
    const now = this.clock.now();
    if (now - c.lastReceived >= this.reconnectAfterMs && !this.drainStarted) {
      this.reconnect();
    } else if (now - Math.max(c.lastReceived, c.lastHeartbeat) >= this.heartbeatIntervalMs) {
      c.lastHeartbeat = now;
      this.send(c, encodeContainerMessage({ kind: "heartbeat" }));
    }
    this.schedule();
  }

  private async receive(connection: Connection): Promise<void> {
    try {
      for await (const frames of connection.socket) {
        if (connection !== this.current) break;
        connection.lastReceived = this.clock.now();
        this.onMessage(connection, frames);
      }
    } catch (err) {
      if (connection === this.current && !connection.socket.closed) {
        this.log.error({ model: this.model, err, connection: connection.id }, "receiving from the query frontend failed");
      }
    }
  }

  private onMessage(connection: Connection, frames: Buffer[]): void {
    let message: FrontendMessage;
    try {
      message = decodeFrontendMessage(frames);
    } catch (err) {
      this.log.warn(
        { model: this.model, reason: (err as Error).message, frames: frames.length },
        "ignoring a malformed message from the query frontend",
      );
      return;
    }
    if (message.kind === "heartbeat") {
      // Registering again while draining would bring new batches (a frontend that restarted).
      if (message.requestMetadata && !this.drainStarted) this.sendMetadata(connection);
      return;
    }
    if (message.kind === "drainAck") {
      if (connection !== this.current) return;
      this.drainAcks += 1;
      this.ackWaiters.splice(0).forEach((wake) => wake());
      return;
    }
    if (this.refuseBatches) {
      this.log.warn({ model: this.model, msgId: message.msgId }, "stopping: a batch that arrived after the drain timed out is left unanswered");
      return;
    }
    this.queue.push({ batch: { msgId: message.msgId, inputType: message.inputType, inputs: message.inputs }, connection });
    this.serve();
  }

  /** Starts the loop answering queued batches, unless it runs. */
  private serve(): void {
    if (this.serving) return;
    this.serving = this.serveQueue().finally(() => {
      this.serving = undefined;
      // A batch that arrived after the loop found the queue empty, but before this ran, saw the loop
      // still running and did not start it: a frontend keeping several batches in flight sends the
      // next one as soon as it reads an answer, so this happens, and that batch would never be answered.
      if (this.queue.length > 0) this.serve();
    });
  }

  /** Sends DRAIN and waits for one more acknowledgement than before, at most `timeoutMs`. */
  private drainRoundTrip(connection: Connection, timeoutMs: number): Promise<boolean> {
    const wanted = this.drainAcks + 1;
    this.send(connection, encodeContainerMessage({ kind: "drain" }));
    return new Promise<boolean>((resolve) => {
      const timer = this.clock.setTimeout(() => {
        this.ackWaiters = this.ackWaiters.filter((w) => w !== check);
        resolve(false);
      }, timeoutMs);
      const check = (): void => {
        if (this.drainAcks < wanted) return void this.ackWaiters.push(check);
        this.clock.clearTimeout(timer);
        resolve(true);
      };
      check();
    });
  }

  /** Resolves once no batch is queued or running. */
  private async idle(): Promise<void> {
    while (this.serving) await this.serving;
  }

  private sendMetadata(connection: Connection): void {
    const { name, version, inputType } = this.metadata;
    this.send(connection, encodeContainerMessage({ kind: "metadata", name, version, inputType, rpcVersion: RPC_VERSION }));
    connection.registered = true;
    this.log.info({ model: this.model, address: this.address, inputType, connection: connection.id }, "sent container metadata");
    try {
      this.onRegistered?.();
    } catch (err) {
      this.log.warn({ model: this.model, err }, "onRegistered failed");
    }
  }

  private async serveQueue(): Promise<void> {
    for (let next = this.queue.shift(); next; next = this.queue.shift()) {
      if (next.connection !== this.current) continue;
      const outputs = await this.run(next.batch);
      this.batchesServed += 1;
      if (next.connection !== this.current || this.stopped) {
        this.log.warn({ model: this.model, msgId: next.batch.msgId }, "dropping the answer to a batch from a closed connection");
        continue;
      }
      this.send(next.connection, encodeContainerMessage({ kind: "response", msgId: next.batch.msgId, outputs }));
    }
  }

  /** Runs the handler; any failure becomes one log line and BATCH_ERROR_PREFIX outputs. */
  private async run(batch: PredictBatch): Promise<string[]> {
    const n = batch.inputs.length;
    try {
      const outputs = await this.handleBatch(batch);
      if (!Array.isArray(outputs) || outputs.length !== n || outputs.some((o) => typeof o !== "string")) {
        throw new BatchError(`the batch handler did not return ${n} output strings`);
      }
      return outputs;
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      const reason = e instanceof BatchError ? e.message : `batch handler failed: ${e.message}`;
      const cause = e instanceof BatchError && e.cause instanceof Error ? e.cause : e instanceof BatchError ? undefined : e;
      this.log.error(
        { model: this.model, msgId: batch.msgId, batchSize: n, reason, ...(cause ? { stack: cause.stack } : {}) },
        `batch ${batch.msgId} failed: ${reason}`,
      );
      return new Array<string>(n).fill(BATCH_ERROR_PREFIX + reason);
    }
  }

  private send(connection: Connection, frames: Buffer[]): void {
    connection.sending = connection.sending
      .then(() => (connection.socket.closed ? undefined : connection.socket.send(frames)))
      .catch((err: unknown) => {
        if (!connection.socket.closed) this.log.warn({ model: this.model, err, connection: connection.id }, "sending to the query frontend failed");
      });
  }
}

/** A DEALER for one connection; each call gets a new routing id (libzmq admits one connection per id). */
export function createDealer(metadata: ContainerMetadata, rpcSecret: string | undefined): Dealer {
  if (rpcSecret === undefined) return new Dealer({ linger: 0 });
  return new Dealer({
    linger: 0,
    plainUsername: plainUsername(metadata),
    plainPassword: rpcSecret,
    routingId: replicaRoutingId(metadata, rpcSecret),
  });
}

function positive(value: number, what: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${what} must be a positive number of milliseconds`);
  return value;
}

function closeQuietly(socket: DealerLike): void {
  try {
    if (!socket.closed) socket.close();
  } catch {
    // already closed
  }
}
