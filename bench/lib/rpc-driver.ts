/**
 * Drives one model container over RPC v3 at full speed, without HTTP and without a frontend's event
 * loop in the way: the frontend's own RPC server (runtime/rpc/rpc-server.ts) on a free port, and a
 * loop that keeps `inFlight` batches of `batchSize` distinct inputs queued at the container, sending
 * the next one the moment an answer comes. What it measures is what the container itself can answer,
 * so two runtimes can be compared where the container is the bottleneck.
 */
import { pino } from "pino";
import type { ReplicaConnection } from "../../runtime/rpc/rpc-server.js";
import { RpcServer } from "../../runtime/rpc/rpc-server.js";

/**
 * Distinct inputs of 8 random doubles, made once: drawing them per batch would make the driver,
 * not the container, the bottleneck. (A container keeps no cache: that they recur does not matter.)
 */
const INPUTS = Array.from({ length: 8192 }, () => {
  const input = Buffer.alloc(64);
  for (let i = 0; i < 8; i++) input.writeDoubleLE(Math.random(), i * 8);
  return input;
});

export interface DriverRound {
  /** Outputs answered per second. */
  answersPerSec: number;
  answers: number;
  seconds: number;
}

export class RpcDriver {
  private readonly server: RpcServer;
  private replica?: ReplicaConnection;
  private registered!: Promise<void>;
  private onRegistered?: () => void;
  private nextMsgId = 0;
  private nextInput = 0;
  /** Set while a round runs: counts answers and sends the next batch. */
  private round?: { answers: number; running: boolean; pending: number; idle?: () => void };
  private failure?: Error;

  constructor(private readonly options: { model: string; batchSize: number; inFlight: number }) {
    this.registered = new Promise((resolve) => { this.onRegistered = resolve; });
    this.server = new RpcServer({
      host: "127.0.0.1", port: 0, replicaTimeoutMs: 30_000, auth: { mode: "none" }, log: pino({ level: "silent" }),
      handlers: {
        replicaAdded: (replica) => {
          if (replica.name !== this.options.model) return;
          this.replica = replica;
          this.onRegistered?.();
        },
        replicaRemoved: (replica, reason) => {
          if (replica === this.replica) this.failure = new Error(`the container went away: ${reason}`);
        },
        response: (_replica, _msgId, outputs) => this.answered(outputs.length),
      },
    });
  }

  /** Binds the RPC port; the container is to connect to it. */
  async listen(): Promise<number> {
    await this.server.start();
    return this.server.boundPort;
  }

  /** Resolves once the container has registered (its metadata message). */
  async waitForContainer(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.registered,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no container registered as ${this.options.model} within ${timeoutMs} ms`)), timeoutMs); }),
    ]).finally(() => clearTimeout(timer));
  }

  /** Keeps the container busy for `seconds`, then waits for the batches still out. */
  async run(seconds: number): Promise<DriverRound> {
    if (!this.replica) throw new Error("no container registered");
    const round = { answers: 0, running: true, pending: 0, idle: undefined as (() => void) | undefined };
    this.round = round;
    const started = performance.now();
    for (let i = 0; i < this.options.inFlight; i++) this.send();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    round.running = false;
    const elapsed = (performance.now() - started) / 1000;
    const counted = round.answers;
    if (round.pending > 0) await new Promise<void>((resolve) => { round.idle = resolve; });
    this.round = undefined;
    if (this.failure) throw this.failure;
    return { answersPerSec: counted / elapsed, answers: counted, seconds: elapsed };
  }

  async close(): Promise<void> {
    await this.server.close();
  }

  private answered(count: number): void {
    const round = this.round;
    if (!round) return;
    round.pending--;
    if (!round.running) {
      if (round.pending === 0) round.idle?.();
      return;
    }
    round.answers += count;
    this.send();
  }

  private send(): void {
    const round = this.round!;
    round.pending++;
    const inputs: Buffer[] = [];
    for (let i = 0; i < this.options.batchSize; i++) {
      inputs.push(INPUTS[this.nextInput]!);
      this.nextInput = (this.nextInput + 1) % INPUTS.length;
    }
    const msgId = this.nextMsgId;
    this.nextMsgId = (this.nextMsgId + 1) >>> 0;
    this.server.sendPredict(this.replica!, msgId, "doubles", inputs).catch((err: unknown) => {
      this.failure = err instanceof Error ? err : new Error(String(err));
    });
  }
}
