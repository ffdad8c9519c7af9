/**
 * The query frontend's side of RPC v3: a ROUTER that model containers connect to. It answers
 * heartbeats, registers replicas from their metadata, hands predict responses to the dispatcher,
 * and drops replicas that disconnect or fall silent.
 */
import type { Logger } from "pino";
import type { InputType } from "../shared/input-types.js";
import {
  decodeContainerMessage,
  encodeFrontendMessage,
  RPC_VERSION,
  RpcFrameError,
  type ContainerMessage,
} from "./codec.js";
import { isPeerNotification, NotifyingRouter } from "./notifying-router.js";

/** One registered model container. */
export interface ReplicaConnection {
  /** Hex of the ROUTER identity: unique per connection. */
  readonly key: string;
  readonly identity: Buffer;
  readonly name: string;
  readonly version: string;
  readonly inputType: InputType;
  /** Small integer, unique among the live replicas of this model version. */
  readonly replicaId: number;
  lastSeen: number;
}

export interface RpcServerHandlers {
  replicaAdded(replica: ReplicaConnection): void;
  replicaRemoved(replica: ReplicaConnection, reason: string): void;
  response(replica: ReplicaConnection, msgId: number, outputs: string[]): void;
}

export interface RpcServerOptions {
  host: string;
  port: number;
  /** A replica silent for this long is dropped (Clipper: 30 s). */
  replicaTimeoutMs: number;
  log: Logger;
  handlers: RpcServerHandlers;
  now?: () => number;
}

export class RpcServer {
  private readonly router = new NotifyingRouter();
  private readonly replicas = new Map<string, ReplicaConnection>();
  private sending: Promise<unknown> = Promise.resolve();
  private sweeper?: NodeJS.Timeout;
  private closed = false;
  private readonly now: () => number;
  boundPort = 0;

  constructor(private readonly options: RpcServerOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  async start(): Promise<void> {
    const host = this.options.host === "0.0.0.0" ? "*" : this.options.host;
    await this.router.bind(`tcp://${host}:${this.options.port}`);
    const endpoint = this.router.lastEndpoint ?? "";
    this.boundPort = Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
    void this.receiveLoop();
    const sweepEvery = Math.max(50, Math.min(1000, this.options.replicaTimeoutMs / 4));
    this.sweeper = setInterval(() => this.dropSilentReplicas(), sweepEvery);
    this.sweeper.unref();
  }

  liveReplicas(): ReplicaConnection[] {
    return [...this.replicas.values()];
  }

  /** Sends a predict request; rejects when the replica is no longer reachable. */
  sendPredict(replica: ReplicaConnection, msgId: number, inputType: InputType, inputs: Buffer[]): Promise<void> {
    return this.send(replica.identity, encodeFrontendMessage({ kind: "predict", msgId, inputType, inputs }));
  }

  /** Forgets a replica (e.g. after a failed send) and tells the handlers. */
  drop(replica: ReplicaConnection, reason: string): void {
    if (this.replicas.get(replica.key) !== replica) return;
    this.replicas.delete(replica.key);
    this.options.log.warn({ model: `${replica.name}:${replica.version}`, replica: replica.replicaId, reason }, "replica removed");
    this.options.handlers.replicaRemoved(replica, reason);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    for (const replica of [...this.replicas.values()]) this.drop(replica, "frontend shutting down");
    this.router.close();
  }

  /** zeromq allows one send in flight per socket: chain them. */
  private send(identity: Buffer, frames: Buffer[]): Promise<void> {
    const next = this.sending.then(() => this.router.send([identity, ...frames]));
    this.sending = next.catch(() => undefined);
    return next;
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const message of this.router) {
        // One message that trips a handler must not stop this loop: every replica's answers come
        // through it, and without it every batch in flight waits forever.
        try {
          this.handle(message);
        } catch (err) {
          this.options.log.error({ err }, "rpc message handling failed; the message was dropped");
        }
      }
    } catch (err) {
      if (!this.closed) this.options.log.error({ err }, "rpc receive loop stopped");
    }
  }

  private handle(message: Buffer[]): void {
    const identity = message[0]!;
    const key = identity.toString("hex");
    const known = this.replicas.get(key);
    if (isPeerNotification(message)) {
      // A connect needs no action; a disconnect of a registered replica means it is gone.
      if (known) this.drop(known, "disconnected");
      return;
    }
    let decoded: ContainerMessage;
    try {
      decoded = decodeContainerMessage(message.slice(1));
    } catch (err) {
      const reason = err instanceof RpcFrameError ? err.message : String(err);
      this.options.log.warn({ peer: key, reason }, "ignoring malformed rpc message");
      return;
    }
    if (known) known.lastSeen = this.now();
    switch (decoded.kind) {
      case "heartbeat":
        // An unknown sender is asked for its metadata: that is how a container (re)registers.
        void this.send(identity, encodeFrontendMessage({ kind: "heartbeat", requestMetadata: !known })).catch(() => undefined);
        return;
      case "metadata":
        this.register(identity, key, decoded);
        return;
      case "response":
        if (!known) {
          this.options.log.warn({ peer: key, msgId: decoded.msgId }, "response from an unregistered container ignored");
          return;
        }
        this.options.handlers.response(known, decoded.msgId, decoded.outputs);
        return;
    }
  }

  private register(identity: Buffer, key: string, meta: Extract<ContainerMessage, { kind: "metadata" }>): void {
    if (meta.rpcVersion !== RPC_VERSION) {
      this.options.log.warn({ peer: key, rpcVersion: meta.rpcVersion }, "container does not speak rpc v3; not registered");
      return;
    }
    const previous = this.replicas.get(key);
    if (previous) this.drop(previous, "re-registered");
    const replica: ReplicaConnection = {
      key,
      identity: Buffer.from(identity),
      name: meta.name,
      version: meta.version,
      inputType: meta.inputType,
      replicaId: this.freeReplicaId(meta.name, meta.version),
      lastSeen: this.now(),
    };
    this.replicas.set(key, replica);
    this.options.log.info({ model: `${replica.name}:${replica.version}`, replica: replica.replicaId, inputType: replica.inputType }, "replica registered");
    this.options.handlers.replicaAdded(replica);
  }

  private freeReplicaId(name: string, version: string): number {
    const used = new Set(
      [...this.replicas.values()].filter((r) => r.name === name && r.version === version).map((r) => r.replicaId),
    );
    let id = 0;
    while (used.has(id)) id++;
    return id;
  }

  private dropSilentReplicas(): void {
    const cutoff = this.now() - this.options.replicaTimeoutMs;
    for (const replica of [...this.replicas.values()]) {
      if (replica.lastSeen < cutoff) this.drop(replica, `silent for ${this.options.replicaTimeoutMs} ms`);
    }
  }
}
