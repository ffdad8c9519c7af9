/**
 * The query frontend's side of RPC v3: a ROUTER that model containers connect to. It answers
 * heartbeats, registers replicas from their metadata, hands predict responses to the dispatcher,
 * and drops replicas that disconnect or fall silent.
 *
 * A replica that is stopping sends DRAIN (our extension, docs/compatibility.md): it is marked
 * draining, gets no new batch, no longer counts as connected, and is answered DRAIN at once on the
 * same connection. A batch it holds is still answered and accepted; ZeroMQ keeps the order of one
 * connection, so the replica receives every batch sent to it before the answer, and none after.
 *
 * Who may register (docs/security.md, runtime/shared/rpc-auth.ts): with auth "plain", a peer must
 * pass the PLAIN handshake with a credential derived from the cluster's RPC key, and its routing id
 * must prove the very model version, and input type, its metadata names. In every mode a replica
 * must state the input type the configuration records for its version, and a model name and version
 * the admin API would accept (shared/names.ts: at most 63 characters). A peer that breaks the
 * protocol (a malformed or unknown message, a batch answered with the wrong number of outputs) is
 * banned until it disconnects: its messages are ignored and its heartbeats go unanswered, so our
 * runtimes and Clipper's replace it with a new socket.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { InputType } from "../shared/input-types.js";
import { nameProblem } from "../shared/names.js";
import { plainUsername, verifyPlain, verifyRoutingId, ZAP_DOMAIN } from "../shared/rpc-auth.js";
import {
  decodeContainerMessage,
  encodeFrontendMessage,
  RPC_VERSION,
  RpcFrameError,
  type ContainerMessage,
} from "./codec.js";
import { isPeerNotification, NotifyingRouter } from "./notifying-router.js";
import { RefusalLog } from "./refusal-log.js";
import { registerZapDomain, type ZapRequest, type ZapVerdict } from "./zap-handler.js";

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
  /** Set when the replica said it is stopping: it gets no new batch and is not counted as connected. */
  draining?: boolean;
}

export interface RpcServerHandlers {
  replicaAdded(replica: ReplicaConnection): void;
  replicaRemoved(replica: ReplicaConnection, reason: string): void;
  response(replica: ReplicaConnection, msgId: number, outputs: string[]): void;
  /** Once per replica, when it asks to drain; the acknowledgement is sent after this returns. */
  replicaDraining?(replica: ReplicaConnection): void;
  /** After `replicaRemoved`, when the replica was removed for breaking the protocol. */
  replicaBanned?(replica: ReplicaConnection, reason: string): void;
}

/** "plain": PLAIN credentials derived from `key` (rpc-auth.ts). "none": any peer may register. */
export type RpcServerAuth = { mode: "plain"; key: string } | { mode: "none" };

const NO_CREDENTIAL_HINT =
  "containers deployed by this cluster get their credential in CLIPPER_RPC_SECRET; to serve Clipper's own container images, which cannot authenticate, start the cluster with --rpc-auth none";

export interface RpcServerOptions {
  host: string;
  port: number;
  /** A replica silent for this long is dropped (Clipper: 30 s). */
  replicaTimeoutMs: number;
  auth: RpcServerAuth;
  /** A peer that sends a bigger frame is disconnected (ZMQ_MAXMSGSIZE); absent: no limit. */
  maxFrameBytes?: number;
  /** The input type the configuration records for a model version, if it records the version. */
  expectedInputType?: (name: string, version: string) => InputType | undefined;
  log: Logger;
  handlers: RpcServerHandlers;
  now?: () => number;
}

export class RpcServer {
  private readonly router: NotifyingRouter;
  private readonly replicas = new Map<string, ReplicaConnection>();
  /** Routing ids (hex) of peers ignored until they disconnect. */
  private readonly banned = new Set<string>();
  private readonly refusals: RefusalLog;
  private readonly zapDomain = `${ZAP_DOMAIN}:${randomUUID()}`;
  private unregisterZap?: () => void;
  private sending: Promise<unknown> = Promise.resolve();
  private sweeper?: NodeJS.Timeout;
  private closed = false;
  private readonly now: () => number;
  boundPort = 0;

  constructor(private readonly options: RpcServerOptions) {
    this.now = options.now ?? (() => performance.now());
    this.refusals = new RefusalLog(this.now);
    this.router = new NotifyingRouter({
      maxMessageSize: options.maxFrameBytes,
      plainZapDomain: options.auth.mode === "plain" ? this.zapDomain : undefined,
    });
  }

  async start(): Promise<void> {
    const { auth, log } = this.options;
    if (auth.mode === "plain") {
      this.unregisterZap = await registerZapDomain(this.zapDomain, (request) => this.judge(auth.key, request));
      this.router.events.on("handshake:error:protocol", (event) => {
        if (this.refusals.shouldLog("no credential")) {
          log.warn({ endpoint: event.address, reason: event.error.message, hint: NO_CREDENTIAL_HINT },
            "refused a model container that did not authenticate on the rpc port");
        }
      });
    } else {
      log.warn("rpc authentication is off (--rpc-auth none): any process that reaches the rpc port can register as a replica of any model and answer its queries");
    }
    const host = this.options.host === "0.0.0.0" ? "*" : this.options.host;
    try {
      await this.router.bind(`tcp://${host}:${this.options.port}`);
    } catch (err) {
      this.unregisterZap?.();
      throw err;
    }
    const endpoint = this.router.lastEndpoint ?? "";
    this.boundPort = Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
    void this.receiveLoop();
    const sweepEvery = Math.max(50, Math.min(1000, this.options.replicaTimeoutMs / 4));
    this.sweeper = setInterval(() => this.dropSilentReplicas(), sweepEvery);
    this.sweeper.unref();
  }

  /** The registered replicas that take batches (draining ones excluded). */
  liveReplicas(): ReplicaConnection[] {
    return [...this.replicas.values()].filter((r) => !r.draining);
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

  /**
   * Applies the input-type check to the replicas already registered: one that registered before the
   * configuration recorded its version, or whose version was registered again with another input
   * type, is removed and ignored until it reconnects. `models`: only replicas of these (a change
   * touched only them).
   */
  recheckInputTypes(models?: ReadonlySet<string>): void {
    for (const replica of [...this.replicas.values()]) {
      if (models && !models.has(replica.name)) continue;
      const expected = this.options.expectedInputType?.(replica.name, replica.version);
      if (expected === undefined || expected === replica.inputType) continue;
      this.banned.add(replica.key);
      this.drop(replica, `the model version takes ${expected} inputs, the replica ${replica.inputType}`);
    }
  }

  /** Drops a replica that broke the protocol and ignores its connection until it disconnects. */
  ban(replica: ReplicaConnection, reason: string): void {
    if (this.replicas.get(replica.key) !== replica) return;
    this.banned.add(replica.key);
    this.drop(replica, `banned until it reconnects: ${reason}`);
    this.options.handlers.replicaBanned?.(replica, reason);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    for (const replica of [...this.replicas.values()]) this.drop(replica, "frontend shutting down");
    this.router.close();
    this.unregisterZap?.();
  }

  /** The ZAP verdict on one handshake: a credential of some model version of this cluster. */
  private judge(key: string, request: ZapRequest): ZapVerdict {
    const who = request.mechanism === "PLAIN" ? verifyPlain(key, request.username, request.password) : undefined;
    if (who) return { ok: true, userId: plainUsername(who) };
    // The username is what the peer claims to be; the password is never logged.
    if (this.refusals.shouldLog(`credential ${request.address} ${clip(request.username)}`)) {
      this.options.log.warn(
        { peer: request.address, username: clip(request.username), hint: "its CLIPPER_RPC_SECRET does not belong to this cluster's rpc key" },
        "refused a model container with an invalid rpc credential",
      );
    }
    return { ok: false, reason: "invalid credential" };
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
      // A connect needs no action; a disconnect of a registered replica means it is gone. A banned
      // peer's identity only notifies again when it disconnects (libzmq admits no second
      // connection with an identity in use).
      if (known) this.drop(known, "disconnected");
      this.banned.delete(key);
      return;
    }
    if (this.banned.has(key)) return;
    let decoded: ContainerMessage;
    try {
      decoded = decodeContainerMessage(message.slice(1));
    } catch (err) {
      const reason = `malformed rpc message: ${err instanceof RpcFrameError ? err.message : String(err)}`;
      if (known) this.ban(known, reason);
      else this.refuse(key, reason);
      return;
    }
    if (known) known.lastSeen = this.now();
    switch (decoded.kind) {
      case "heartbeat":
        // An unknown sender is asked for its metadata: that is how a container (re)registers.
        void this.send(identity, encodeFrontendMessage({ kind: "heartbeat", requestMetadata: !known })).catch(() => undefined);
        return;
      case "drain":
        this.drain(identity, known);
        return;
      case "metadata":
        this.register(identity, key, decoded);
        return;
      case "response":
        if (!known) {
          // Legitimate after the frontend dropped a replica mid-batch (silence, restart). Never log the
          // routing id: with plain auth it is what proves a version, and another credential holder
          // could reuse it once its owner has gone.
          if (this.refusals.shouldLog("response from an unregistered container")) {
            this.options.log.warn({ msgId: decoded.msgId }, "response from an unregistered container ignored");
          }
          return;
        }
        this.options.handlers.response(known, decoded.msgId, decoded.outputs);
        return;
    }
  }

  /**
   * Marks a replica draining and acknowledges. Acknowledged again when asked again: a container
   * sends a second DRAIN after its last answer, and the second acknowledgement tells it that every
   * answer before it arrived. A peer that is not a registered replica gets nothing.
   */
  private drain(identity: Buffer, known: ReplicaConnection | undefined): void {
    if (!known) {
      if (this.refusals.shouldLog("drain from an unregistered container")) {
        this.options.log.warn("drain from an unregistered container ignored");
      }
      return;
    }
    if (!known.draining) {
      // Out of rotation before the acknowledgement is queued behind its last batch; a handler that
      // throws leaves it in rotation and unacknowledged (the container then stops as without drain).
      this.options.handlers.replicaDraining?.(known);
      known.draining = true;
      this.options.log.info({ model: `${known.name}:${known.version}`, replica: known.replicaId }, "replica draining: no new batches");
    }
    void this.send(identity, encodeFrontendMessage({ kind: "drainAck" })).catch(() => undefined);
  }

  private register(identity: Buffer, key: string, meta: Extract<ContainerMessage, { kind: "metadata" }>): void {
    const claimed = { model: `${meta.name}:${meta.version}`, inputType: meta.inputType };
    if (meta.rpcVersion !== RPC_VERSION) {
      this.refuse(key, `container speaks rpc v${meta.rpcVersion}, not v${RPC_VERSION}`, claimed);
      return;
    }
    // A name the admin API would refuse can never be a version of the configuration (the codec
    // already refused any over MAX_NAME bytes, so the reason quotes at most that).
    const badName = nameProblem("model name", meta.name) ?? nameProblem("model version", meta.version);
    if (badName) {
      this.refuse(key, badName, claimed);
      return;
    }
    const { auth } = this.options;
    if (auth.mode === "plain") {
      const who = verifyRoutingId(auth.key, identity);
      if (!who || who.name !== meta.name || who.version !== meta.version || who.inputType !== meta.inputType) {
        const proven = who ? `${who.name}:${who.version} (${who.inputType})` : "nothing";
        this.refuse(key, `its credential proves ${proven}, not the model version it claims`, claimed);
        return;
      }
    }
    const expected = this.options.expectedInputType?.(meta.name, meta.version);
    if (expected !== undefined && expected !== meta.inputType) {
      this.refuse(key, `the model version takes ${expected} inputs, the container ${meta.inputType}`, claimed);
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

  /** Ignores a peer that may not register until it disconnects; logs each reason once. */
  private refuse(key: string, reason: string, claimed?: { model: string; inputType: InputType }): void {
    this.banned.add(key);
    // Both come from the peer's frames (up to --max-rpc-frame-bytes): clipped before they are kept
    // or logged, and keyed without their numbers so that varying them does not defeat "log once".
    const model = clip(claimed?.model ?? "");
    const why = clip(reason);
    if (this.refusals.shouldLog(`refused ${model} ${why.replace(/\d+/g, "#")}`)) {
      this.options.log.warn({ ...(claimed ? { model, inputType: claimed.inputType } : {}), reason: why }, "refused a model container on the rpc port");
    }
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

/** Peer-supplied text as it may be logged: at most 200 characters. */
function clip(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
