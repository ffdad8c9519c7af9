/**
 * A fake clock and a fake RPC side for driving the Dispatcher deterministically: time moves only when
 * a test advances it, batch-wait timers fire in order, and sent batches are recorded for the test to
 * answer.
 */
import { pino } from "pino";
import type { ReplicaConnection } from "../../runtime/rpc/rpc-server.js";
import {
  Dispatcher,
  type BatchSendDetail,
  type DispatchObserver,
  type DispatcherOptions,
  type DispatchTimers,
  type ModelResult,
  type PredictTask,
} from "../../runtime/frontend/dispatcher.js";

export class FakeClock implements DispatchTimers {
  t = 0;
  private pending: Array<{ at: number; seq: number; fn: () => void }> = [];
  private seq = 0;

  readonly now = (): number => this.t;

  setTimeout(fn: () => void, ms: number): unknown {
    const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.pending.push(timer);
    return timer;
  }

  clearTimeout(handle: unknown): void {
    this.pending = this.pending.filter((t) => t !== handle);
  }

  /** Moves time forward, firing due timers in order (each at its own time). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.pending.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.pending = this.pending.filter((t) => t !== due);
      this.t = Math.max(this.t, due.at);
      due.fn();
    }
    this.t = end;
  }

  get timers(): number {
    return this.pending.length;
  }
}

export interface SentBatch {
  replica: ReplicaConnection;
  msgId: number;
  inputs: Buffer[];
  detail?: BatchSendDetail;
}

export interface TestTask extends PredictTask {
  result?: ModelResult;
  answeredAt?: number;
}

export interface Harness {
  clock: FakeClock;
  dispatcher: Dispatcher;
  sent: SentBatch[];
  shed: number;
  /** Tasks left out of batches at dispatch as late. */
  dropped: number;
  replica(id: number, name?: string, version?: string): ReplicaConnection;
  /** A task with an absolute deadline; the input is its index as a double. */
  task(deadline: number, value?: number): TestTask;
  /** Answers a sent batch: one output per input (the input's value as text). */
  answer(batch: SentBatch): void;
}

let nextKey = 0;

/** `maxInFlight` defaults to 1 here (one batch per replica at a time): tests of pipelining pass more. */
export function harness(options: Partial<DispatcherOptions> = {}): Harness {
  const clock = new FakeClock();
  const sent: SentBatch[] = [];
  let lastDetail: BatchSendDetail | undefined;
  const observer: DispatchObserver = {
    batchSent: (_model, _size, detail) => { lastDetail = detail; },
    shed: () => { h.shed++; },
    dropped: (_model, count) => { h.dropped += count; },
  };
  const dispatcher = new Dispatcher({
    defaultMaxBatch: 64, log: pino({ level: "silent" }), now: clock.now, timers: clock, observer, maxInFlight: 1, ...options,
  });
  dispatcher.attach({
    sendPredict: async (replica, msgId, _type, inputs) => {
      sent.push({ replica, msgId, inputs, detail: lastDetail });
    },
    drop: () => undefined,
    // As the RpcServer does: a banned replica is removed (its batch re-queued).
    ban: (replica) => dispatcher.replicaRemoved(replica),
  });
  const h: Harness = {
    clock, dispatcher, sent, shed: 0, dropped: 0,
    replica(id, name = "m", version = "1") {
      return {
        key: `r${nextKey++}`, identity: Buffer.from([id]), name, version, inputType: "doubles", replicaId: id, lastSeen: 0,
      };
    },
    task(deadline, value = 0) {
      const input = Buffer.alloc(8);
      input.writeDoubleLE(value);
      const task: TestTask = {
        input, inputType: "doubles", deadline, enqueuedAt: clock.t, settled: false,
        resolve(result) {
          if (task.settled) return;
          task.settled = true;
          task.result = result;
          task.answeredAt = clock.t;
        },
      };
      return task;
    },
    answer(batch) {
      dispatcher.response(batch.replica, batch.msgId, batch.inputs.map((b) => String(b.readDoubleLE(0))));
    },
  };
  return h;
}
