/**
 * A model container written by hand on a raw DEALER, for tests of the frontend's RPC port: it sends
 * only what the test tells it to (well-formed messages through our codec, or raw frames) and keeps
 * what the frontend sends it. Close every peer a test made with `closePeers` (afterEach).
 */
import { Dealer } from "zeromq";
import {
  decodeFrontendMessage,
  encodeContainerMessage,
  type ContainerMessage,
  type FrontendMessage,
} from "../../runtime/rpc/codec.js";
import { plainUsername, replicaRoutingId, versionSecret, type RpcPrincipal } from "../../runtime/shared/rpc-auth.js";

const open: Peer[] = [];

/** Closes every peer made since the last call. */
export function closePeers(): void {
  open.splice(0).forEach((p) => p.close());
}

export class Peer {
  readonly dealer: Dealer;
  private readonly inbox: FrontendMessage[] = [];
  private waiters: Array<() => void> = [];

  constructor(address: string, options: { routingId?: string; username?: string; password?: string } = {}) {
    this.dealer = new Dealer({
      linger: 0,
      ...(options.routingId !== undefined ? { routingId: options.routingId } : {}),
      ...(options.username !== undefined ? { plainUsername: options.username, plainPassword: options.password ?? "" } : {}),
    });
    this.dealer.connect(address);
    open.push(this);
    void this.pump();
  }

  /** A peer holding `holder`'s credential (issued by `key`), with a routing id for `holder`. */
  static credentialed(address: string, key: string, holder: RpcPrincipal): Peer {
    const secret = versionSecret(key, holder);
    return new Peer(address, { routingId: replicaRoutingId(holder, secret), username: plainUsername(holder), password: secret });
  }

  private async pump(): Promise<void> {
    try {
      for await (const frames of this.dealer) {
        this.inbox.push(decodeFrontendMessage(frames));
        this.waiters.splice(0).forEach((w) => w());
      }
    } catch {
      // closed
    }
  }

  send(message: ContainerMessage): Promise<void> {
    return this.dealer.send(encodeContainerMessage(message));
  }

  /** The next message of `kind` within `ms`, or undefined. */
  async next<K extends FrontendMessage["kind"]>(kind: K, ms: number): Promise<Extract<FrontendMessage, { kind: K }> | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.inbox.findIndex((m) => m.kind === kind);
      if (i >= 0) return this.inbox.splice(i, 1)[0] as Extract<FrontendMessage, { kind: K }>;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Heartbeat, and metadata claiming `claim` once the frontend asks for it (false if it never does). */
  async hello(claim: RpcPrincipal, ms = 3000): Promise<boolean> {
    await this.send({ kind: "heartbeat" });
    const reply = await this.next("heartbeat", ms);
    if (!reply?.requestMetadata) return false;
    await this.send({ kind: "metadata", ...claim, rpcVersion: 3 });
    return true;
  }

  close(): void {
    if (!this.dealer.closed) this.dealer.close();
  }
}
