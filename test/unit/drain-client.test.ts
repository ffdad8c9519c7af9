/**
 * The Node runtime's drain (ContainerRpcClient.drainAndStop) on an injected clock and an in-memory
 * socket: no time passes unless the test moves it, so the bounds are checked exactly. The same
 * client against real ZeroMQ and a real frontend is in test/drain-rpc.test.ts.
 */
import { describe, expect, it } from "vitest";
import { ContainerRpcClient, type DealerLike, type DrainOutcome, type RpcClock } from "../../runtime/container-node/rpc-client.js";
import { decodeContainerMessage, encodeFrontendMessage, type ContainerMessage, type FrontendMessage } from "../../runtime/rpc/codec.js";

/** A socket whose peer is the test: what the client sends is kept, what the test delivers is received. */
class MemoryDealer implements DealerLike {
  closed = false;
  readonly sent: ContainerMessage[] = [];
  private readonly inbox: Buffer[][] = [];
  private wake?: () => void;
  connect(): void {}
  async send(frames: Buffer[]): Promise<void> {
    this.sent.push(decodeContainerMessage(frames));
  }
  close(): void {
    this.closed = true;
    this.wake?.();
  }
  deliver(message: FrontendMessage): void {
    this.inbox.push(encodeFrontendMessage(message));
    this.wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<Buffer[]> {
    while (!this.closed) {
      const next = this.inbox.shift();
      if (next) yield next;
      else await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

/** Timers that fire only when the test advances the clock. */
class ScriptedClock implements RpcClock {
  t = 0;
  private timers: Array<{ at: number; fn: () => void }> = [];
  now = (): number => this.t;
  setTimeout(fn: () => void, ms: number): unknown {
    const timer = { at: this.t + ms, fn };
    this.timers.push(timer);
    return timer;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t !== handle);
  }
  /** Moves time, firing each due timer at its own time, and lets the client react after each. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.t = due.at;
      due.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

function registeredClient(handleBatch: ConstructorParameters<typeof ContainerRpcClient>[0]["handleBatch"] = (b) => b.inputs.map(() => "ok")) {
  const clock = new ScriptedClock();
  const sockets: MemoryDealer[] = [];
  const client = new ContainerRpcClient({
    address: "tcp://frontend:7000", metadata: { name: "m", version: "1", inputType: "doubles" }, handleBatch,
    heartbeatIntervalMs: 1000, reconnectAfterMs: 3000, clock,
    createSocket: () => {
      const s = new MemoryDealer();
      sockets.push(s);
      return s;
    },
  });
  client.start();
  const socket = sockets[0]!;
  socket.deliver({ kind: "heartbeat", requestMetadata: true });
  const kinds = () => socket.sent.map((m) => m.kind);
  const batch = (msgId: number) => socket.deliver({ kind: "predict", msgId, inputType: "doubles", inputs: [Buffer.alloc(8)] });
  return { clock, sockets, socket, client, kinds, batch };
}

describe("ContainerRpcClient.drainAndStop (injected clock)", () => {
  it("keeps its connection while draining however long the frontend is silent, and stops at each bound", async () => {
    const h = registeredClient();
    await settle();
    expect(h.kinds()).toEqual(["heartbeat", "metadata"]);
    let outcome: DrainOutcome | undefined;
    void h.client.drainAndStop(10_000).then((o) => (outcome = o));
    await settle();
    expect(h.kinds().at(-1)).toBe("drain");
    // Past the reconnect timeout (3 s): a serving client would open a new socket; a draining one does not.
    await h.clock.advance(9_999);
    expect(h.sockets).toHaveLength(1);
    expect(outcome).toBeUndefined();
    await h.clock.advance(1);
    expect(outcome).toBe("unacknowledged");
    expect(h.socket.closed).toBe(true);
    expect(h.kinds().filter((k) => k === "drain")).toHaveLength(1);
  });

  it("answers a batch that comes before the acknowledgement, proves delivery, and re-registers with no one", async () => {
    let release: (() => void) | undefined;
    const h = registeredClient(async (b) => {
      await new Promise<void>((resolve) => (release = resolve));
      return b.inputs.map(() => "late but answered");
    });
    await settle();
    h.batch(5);
    await settle();
    let outcome: DrainOutcome | undefined;
    void h.client.drainAndStop(1000).then((o) => (outcome = o));
    await settle();
    h.socket.deliver({ kind: "heartbeat", requestMetadata: true }); // a restarted frontend asks who we are
    h.socket.deliver({ kind: "drainAck" });
    await h.clock.advance(5_000); // the batch may take longer than the drain timeout: it is held, not timed
    expect(h.kinds()).toEqual(["heartbeat", "metadata", "drain", "heartbeat", "heartbeat", "heartbeat", "heartbeat", "heartbeat"]);
    release!();
    await settle();
    expect(h.kinds().slice(-2)).toEqual(["response", "drain"]);
    h.socket.deliver({ kind: "drainAck" });
    await settle();
    expect(outcome).toBe("drained");
    expect(h.socket.closed).toBe(true);
  });

  it("without an acknowledgement, answers what arrives while it waits, then stops at the bound", async () => {
    const h = registeredClient();
    await settle();
    let outcome: DrainOutcome | undefined;
    void h.client.drainAndStop(500).then((o) => (outcome = o));
    await settle();
    h.batch(1); // a frontend that does not know DRAIN keeps sending: answered while waiting
    await h.clock.advance(499);
    expect(h.kinds().filter((k) => k === "response")).toHaveLength(1);
    await h.clock.advance(1);
    expect(outcome).toBe("unacknowledged");
    expect(h.socket.closed).toBe(true);
  });
});
