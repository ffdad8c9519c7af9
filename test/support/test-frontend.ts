/**
 * A ZeroMQ ROUTER playing the query frontend, for tests that drive a model-container runtime
 * process directly: it binds, receives and decodes what the container sends, does the handshake
 * and sends predict requests through our codec.
 *
 * Like the real frontend it authenticates replicas by default (runtime/shared/rpc-auth.ts): PLAIN
 * credentials derived from TEST_RPC_KEY, and a handshake whose metadata the routing id must prove.
 * Give a runtime its credential with `testRpcEnv`; `{ auth: "none" }` admits any peer (Clipper's
 * own container code).
 */
import * as zmq from "zeromq";
import { randomUUID } from "node:crypto";
import { decodeContainerMessage, encodeFrontendMessage, type ContainerMessage } from "../../runtime/rpc/codec.js";
import { registerZapDomain, type ZapJudge } from "../../runtime/rpc/zap-handler.js";
import { canonicalInputType, encodeInput, type InputType } from "../../runtime/shared/input-types.js";
import {
  generateRpcKey,
  plainUsername,
  RPC_SECRET_ENV,
  verifyPlain,
  verifyRoutingId,
  versionSecret,
  type RpcAuthMode,
} from "../../runtime/shared/rpc-auth.js";

/** The RPC key of every test frontend in this process (a restarted one must accept the same replicas). */
export const TEST_RPC_KEY = generateRpcKey();

/** The environment that gives a runtime its credential for a model version (input type: any alias). */
export function testRpcEnv(name: string, version: string, inputType: string = "doubles", key = TEST_RPC_KEY): Record<string, string> {
  const canonical = canonicalInputType(inputType);
  if (!canonical) throw new Error(`unknown input type ${inputType}`);
  return { [RPC_SECRET_ENV]: versionSecret(key, { name, version, inputType: canonical }) };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export type Received = { identity: Buffer; frames: Buffer[]; message: ContainerMessage };

/** A ROUTER playing the query frontend. */
/** A ZAP judge admitting any credential of a model version derived from `key` (as the real frontend's). */
export function testZapJudge(key = TEST_RPC_KEY): ZapJudge {
  return (r) => {
    const who = r.mechanism === "PLAIN" ? verifyPlain(key, r.username, r.password) : undefined;
    return who ? { ok: true, userId: plainUsername(who) } : { ok: false, reason: "invalid credential" };
  };
}

/** Throws unless the routing id proves the model version the metadata names (as the real frontend checks). */
export function assertRoutingIdProves(
  identity: Buffer, meta: { name: string; version: string; inputType: InputType }, key = TEST_RPC_KEY, context = "",
): void {
  const who = verifyRoutingId(key, identity);
  if (!who || who.name !== meta.name || who.version !== meta.version || who.inputType !== meta.inputType) {
    throw new Error(`routing id ${identity.toString("utf8")} does not prove ${meta.name}:${meta.version} (${meta.inputType})\n${context}`);
  }
}

export interface FrontendAuthOptions {
  /** Default "plain" with TEST_RPC_KEY. */
  auth?: RpcAuthMode;
  key?: string;
}

export class Frontend {
  readonly router: zmq.Router;
  readonly auth: RpcAuthMode;
  readonly key: string;
  private readonly zapDomain = `test-frontend:${randomUUID()}`;
  private unregisterZap?: () => void;

  constructor(readonly port: number, private readonly describeProcess: () => string, options: FrontendAuthOptions = {}) {
    this.auth = options.auth ?? "plain";
    this.key = options.key ?? TEST_RPC_KEY;
    this.router = new zmq.Router({ linger: 0, ...(this.auth === "plain" ? { plainServer: true, zapDomain: this.zapDomain } : {}) });
  }

  /** Binds the endpoint; with plain auth the handshake is judged as the real frontend does. */
  protected async bindTo(endpoint: string): Promise<void> {
    if (this.auth === "plain" && !this.unregisterZap) {
      this.unregisterZap = await registerZapDomain(this.zapDomain, testZapJudge(this.key));
    }
    // Rebinding a port a closed ROUTER just released may take a moment.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.router.bind(endpoint);
        return;
      } catch (e) {
        if (attempt >= 50) throw e;
        await sleep(100);
      }
    }
  }

  async bind(): Promise<void> {
    await this.bindTo(`tcp://127.0.0.1:${this.port}`);
  }

  /** The next message from any container, within timeoutMs. */
  async receive(timeoutMs: number): Promise<Received> {
    this.router.receiveTimeout = Math.max(1, Math.round(timeoutMs));
    let parts: Buffer[];
    try {
      parts = await this.router.receive();
    } catch (e) {
      throw new Error(`no message from the container within ${timeoutMs} ms (${String(e)})\n${this.describeProcess()}`);
    }
    const [identity, ...frames] = parts;
    return { identity: identity!, frames, message: decodeContainerMessage(frames) };
  }

  /** The next message of `kind` (others, such as heartbeats, are skipped), within timeoutMs. */
  async next<K extends ContainerMessage["kind"]>(
    kind: K,
    timeoutMs = 10_000,
    accept: (r: Received & { message: Extract<ContainerMessage, { kind: K }> }) => boolean = () => true,
  ): Promise<Received & { message: Extract<ContainerMessage, { kind: K }> }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${kind} message within ${timeoutMs} ms\n${this.describeProcess()}`);
      const r = await this.receive(left);
      if (r.message.kind === kind) {
        const typed = r as Received & { message: Extract<ContainerMessage, { kind: K }> };
        if (accept(typed)) return typed;
      }
    }
  }

  async send(identity: Buffer, frames: Buffer[]): Promise<void> {
    await this.router.send([identity, ...frames]);
  }

  /** Waits for a heartbeat, asks for metadata, and returns the metadata message. */
  async handshake(timeoutMs = 10_000) {
    const hb = await this.next("heartbeat", timeoutMs);
    await this.send(hb.identity, encodeFrontendMessage({ kind: "heartbeat", requestMetadata: true }));
    const meta = await this.next("metadata", timeoutMs, (r) => r.identity.equals(hb.identity));
    this.checkProof(meta.identity, meta.message);
    return meta;
  }

  /** With plain auth, throws unless the routing id proves the model version the metadata names. */
  checkProof(identity: Buffer, meta: { name: string; version: string; inputType: InputType }): void {
    if (this.auth === "plain") assertRoutingIdProves(identity, meta, this.key, this.describeProcess());
  }

  async predict(identity: Buffer, msgId: number, inputType: InputType, inputs: unknown[], timeoutMs = 10_000) {
    const frames = encodeFrontendMessage({ kind: "predict", msgId, inputType, inputs: inputs.map((x) => encodeInput(inputType, x)) });
    await this.send(identity, frames);
    const r = await this.next("response", timeoutMs, (x) => x.message.msgId === msgId);
    return r.message.outputs;
  }

  close(): void {
    if (!this.router.closed) this.router.close();
    this.unregisterZap?.();
    this.unregisterZap = undefined;
  }
}
