/**
 * Routes queries to model replicas. Each model version has one earliest-deadline-first queue shared
 * by its replicas; a replica pulls its next batch as soon as it has room for one.
 *
 * Pipelining (in-flight.ts): a replica may have up to `maxInFlight` batches sent and unanswered, so
 * that it finds its next batch waiting when it finishes one rather than idling while its answer goes
 * through the frontend's event loop and the next batch comes back. Idle replicas are served first; a
 * busy one is sent another batch only when none is idle, and only a full one (its cap): a partial
 * batch sent behind another splits the queue into small batches that each pay the per-batch cost
 * (docs/bench/python-runtime.md measured mean batches halve and container CPU per answer double),
 * while queries left to wait for the answer make one bigger batch. So pipelining acts when the queue
 * holds more than one batch, and a closed loop that never fills a batch is served as with one. A
 * replica still reads one message at a time, so Clipper's containers work unchanged. Batch latencies
 * (AIMD, admission) are service times: a batch queued behind another starts when that one is answered.
 *
 * Every batch in flight to a replica that dies goes back to the queue, so another replica can answer
 * it while deadlines allow. A replica that drains (it is stopping, rpc-server.ts) gets no new batch
 * and stops counting as a replica of its version, but its batches in flight are still answered by it:
 * nothing is re-queued (the drain acknowledgement follows them on the same socket).
 *
 * Batching (see batch-controller.ts): each replica has an AIMD controller that sets its batch cap
 * from the measured batch latencies against the model's budget. When a free replica finds fewer
 * queued queries than its cap and the model version has a batch wait, it holds on (one replica at a
 * time per version) until the batch fills, the wait ends, or the earliest query's deadline minus the
 * measured batch latency (padded for jitter, see admission.ts) comes — whichever is first — and
 * then sends what there is. Each batch records why it went: full, wait_expired or queue_drained.
 *
 * Admission (see admission.ts): `submit` refuses a task that cannot be answered by its deadline
 * with the work queued ahead of it, and says so. When a batch is formed, a task due before the batch
 * could come back is answered at once as late (`{ ok: false, late: true }`) instead of spending model
 * time; but a free replica always gets at least the one with the most slack (the latest deadline):
 * otherwise an estimate that is too high (a cold first batch, a model that was slow a while) would
 * leave every query out, no batch would ever be sent, and the estimate would never learn again.
 */
import type { Logger } from "pino";
import type { InputType } from "../shared/input-types.js";
import { BATCH_ERROR_PREFIX } from "../rpc/codec.js";
import type { ReplicaConnection, RpcServer } from "../rpc/rpc-server.js";
import { admits, LatencyEstimate, retryAfterSeconds, type AdmissionView } from "./admission.js";
import { BatchController, type ModelBatchConfig } from "./batch-controller.js";
import { DEFAULT_BATCH_BUDGET_MS, DEFAULT_MAX_IN_FLIGHT } from "../shared/frontend-defaults.js";
import { DeadlineQueue, type QueuedTask } from "./deadline-queue.js";
import { checkInFlightLimit, InFlightBatches } from "./in-flight.js";

/**
 * `replica`: the key of the replica that answered (the cache forgets a banned replica's answers).
 * `late`: left out of a batch at dispatch, because the measured batch latency said it could not come
 * back by the query's deadline (`latencyMs`: that estimate).
 */
export type ModelResult =
  | { ok: true; output: string; replica?: string }
  | { ok: false; reason: string }
  | { ok: false; late: true; latencyMs: number };

export interface PredictTask extends QueuedTask {
  readonly input: Buffer;
  readonly inputType: InputType;
  readonly enqueuedAt: number;
  resolve(result: ModelResult): void;
}

/** Why a batch was sent. */
export type SendReason = "full" | "wait_expired" | "queue_drained";

export interface BatchSendDetail {
  reason: SendReason;
  /** The replica's cap when the batch was formed. */
  cap: number;
  /** Per query: seconds from enqueue to send. */
  queueWaitSeconds: number[];
  /** The replica the batch went to. */
  replicaId: number;
}

/** Hooks for metrics; all optional so tests can omit them. */
export interface DispatchObserver {
  batchSent?(model: string, size: number, detail?: BatchSendDetail): void;
  batchDone?(model: string, seconds: number): void;
  requeued?(model: string, count: number): void;
  /** A replica began to drain: it gets no new batch. */
  drained?(model: string): void;
  /** A task refused at submit: it could not be answered by its deadline. */
  shed?(model: string): void;
  /** Tasks left out of a batch at dispatch: the measured batch latency said they would be late. */
  dropped?(model: string, count: number): void;
}

/** Timers for the batch wait, injectable so tests run on a fake clock. */
export interface DispatchTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const systemTimers: DispatchTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** What the dispatcher needs of the RPC server. */
export type BatchSender = Pick<RpcServer, "sendPredict" | "drop" | "ban">;

export function modelKey(name: string, version: string): string {
  return `${name}:${version}`;
}

interface Slot {
  replica: ReplicaConnection;
  controller: BatchController;
  inFlight: InFlightBatches<PredictTask>;
  /** Stopping: answers its batches in flight, takes no new one. */
  draining?: boolean;
}

interface Hold {
  slot: Slot;
  startedAt: number;
  until: number;
  timer: unknown;
}

class VersionQueue {
  readonly queue = new DeadlineQueue<PredictTask>();
  readonly replicas = new Map<string, Slot>();
  readonly latency: LatencyEstimate;
  /** The replica holding a small batch to fill it, if any. */
  hold?: Hold;

  constructor(readonly key: string, public config: ModelBatchConfig, alpha: number, halfLifeMs?: number) {
    this.latency = new LatencyEstimate(alpha, halfLifeMs);
  }

  /** Replicas draining: kept as a count so the per-query replica check stays O(1). */
  draining = 0;

  /** The replicas that take batches: every one but those draining. */
  active(): Slot[] {
    const slots = [...this.replicas.values()];
    return this.draining === 0 ? slots : slots.filter((s) => !s.draining);
  }

  /** How many replicas take batches, without building the list. */
  activeCount(): number {
    return this.replicas.size - this.draining;
  }
}

export interface DispatcherOptions {
  /** Largest batch when the model sets no fixed batch size (the adaptive cap's ceiling). */
  defaultMaxBatch: number;
  log: Logger;
  observer?: DispatchObserver;
  now?: () => number;
  timers?: DispatchTimers;
  /** Batch latency budget of a model version until its configuration says otherwise (ms, default 50). */
  defaultBudgetMs?: number;
  /** The adaptive cap's additive step (default 1). */
  batchStep?: number;
  /** Weight of the newest batch in the measured batch latency (default 0.2). */
  latencyAlpha?: number;
  /** How fast the measured batch latency forgets old batches (ms; default DEFAULT_LATENCY_HALF_LIFE_MS). */
  latencyHalfLifeMs?: number;
  /** Deadline-aware admission (default on). */
  admission?: boolean;
  /** Batches one replica may have sent and unanswered (an integer ≥ 1; 1: no pipelining; default DEFAULT_MAX_IN_FLIGHT). */
  maxInFlight?: number;
}

export class Dispatcher {
  private readonly versions = new Map<string, VersionQueue>();
  private nextMsgId = 0;
  private readonly now: () => number;
  private readonly timers: DispatchTimers;
  private rpc?: BatchSender;
  private readonly maxInFlight: number;

  constructor(private readonly options: DispatcherOptions) {
    this.now = options.now ?? (() => performance.now());
    this.timers = options.timers ?? systemTimers;
    // Checked here, not when a replica arrives: a bad setting fails at start.
    this.maxInFlight = checkInFlightLimit(options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
  }

  setObserver(observer: DispatchObserver): void {
    this.options.observer = observer;
  }

  attach(rpc: BatchSender): void {
    this.rpc = rpc;
  }

  /** Applies a model version's batching configuration (fixed size, batch wait, latency budget). */
  configure(name: string, version: string, config: ModelBatchConfig): void {
    const vq = this.version(modelKey(name, version));
    vq.config = { ...config };
    for (const slot of vq.replicas.values()) {
      slot.controller.configure({ budgetMs: config.budgetMs, fixedBatchSize: config.batchSize });
    }
    if (config.batchWaitMicros <= 0 && vq.hold) {
      this.endHold(vq);
      this.pump(vq);
    }
  }

  liveReplicaCount(name: string, version: string): number {
    return this.versions.get(modelKey(name, version))?.activeCount() ?? 0;
  }

  queueDepth(name: string, version: string): number {
    const vq = this.versions.get(modelKey(name, version));
    return vq ? this.liveDepth(vq) : 0;
  }

  /** Queue depth per model version, for metrics. */
  queueDepths(): Map<string, number> {
    return new Map([...this.versions].map(([key, vq]) => [key, this.liveDepth(vq)]));
  }

  /** Connected replicas per model version, for metrics. */
  replicaCounts(): Map<string, number> {
    return new Map([...this.versions].map(([key, vq]) => [key, vq.activeCount()]));
  }

  /** The current batch cap of every live replica, for metrics. */
  batchCaps(): Array<{ model: string; replica: string; cap: number }> {
    return [...this.versions.values()].flatMap((vq) =>
      vq.active().map((s) => ({ model: vq.key, replica: String(s.replica.replicaId), cap: s.controller.cap })),
    );
  }

  /** Each version's queue depth and live replicas with their caps, for the live stats feed. */
  liveVersions(): Array<{ key: string; queueDepth: number; replicas: Array<{ replicaId: number; cap: number }> }> {
    return [...this.versions.values()].map((vq) => ({
      key: vq.key,
      queueDepth: this.liveDepth(vq),
      replicas: vq.active().map((s) => ({ replicaId: s.replica.replicaId, cap: s.controller.cap })),
    }));
  }

  /** The measured batch latency of a model version (ms), once a batch has been answered. */
  batchLatencyMs(name: string, version: string): number | undefined {
    return this.versions.get(modelKey(name, version))?.latency.ms;
  }

  /**
   * Queues a task, or refuses it (false) when it cannot be answered by its deadline given the work
   * queued ahead of it and the measured batch latency. A refused task is left untouched.
   */
  submit(name: string, version: string, task: PredictTask): boolean {
    const vq = this.version(modelKey(name, version));
    if (this.options.admission !== false) {
      const now = this.now();
      vq.queue.dropDead(now);
      if (!admits(this.admissionView(vq, vq.queue.countAhead(task.deadline, now), now), task.deadline)) {
        this.options.observer?.shed?.(vq.key);
        return false;
      }
    }
    vq.queue.push(task);
    this.pump(vq);
    return true;
  }

  /** A Retry-After (whole seconds, ≥ 1) for a query refused now: about when the queue will have drained. */
  retryAfterSeconds(name: string, version: string): number {
    const vq = this.versions.get(modelKey(name, version));
    if (!vq) return 1;
    const now = this.now();
    vq.queue.dropDead(now);
    return retryAfterSeconds(this.admissionView(vq, vq.queue.size, now));
  }

  replicaAdded(replica: ReplicaConnection): void {
    const vq = this.version(modelKey(replica.name, replica.version));
    const controller = new BatchController({
      budgetMs: vq.config.budgetMs,
      fixedBatchSize: vq.config.batchSize,
      maxCap: this.options.defaultMaxBatch,
      step: this.options.batchStep,
    });
    // A replica registering again under the same key replaces its old slot, draining or not.
    if (vq.replicas.get(replica.key)?.draining) vq.draining--;
    vq.replicas.set(replica.key, { replica, controller, inFlight: new InFlightBatches(this.maxInFlight) });
    this.pump(vq);
  }

  /** Takes a stopping replica out of rotation; its batches in flight stay its own to answer. */
  replicaDraining(replica: ReplicaConnection): void {
    const vq = this.versions.get(modelKey(replica.name, replica.version));
    const slot = vq?.replicas.get(replica.key);
    if (!vq || !slot || slot.draining) return;
    slot.draining = true;
    vq.draining++;
    this.options.observer?.drained?.(vq.key);
    // A batch it was holding to fill goes to the next free replica instead.
    if (vq.hold?.slot === slot) this.endHold(vq);
    this.pump(vq);
  }

  replicaRemoved(replica: ReplicaConnection): void {
    const vq = this.versions.get(modelKey(replica.name, replica.version));
    const slot = vq?.replicas.get(replica.key);
    if (!vq || !slot) return;
    vq.replicas.delete(replica.key);
    if (slot.draining) vq.draining--;
    if (vq.hold?.slot === slot) this.endHold(vq);
    // Every batch it had, not only the one it was serving: the ones queued behind it were never read.
    const now = this.now();
    const alive = slot.inFlight.takeAll().flatMap((b) => b.tasks).filter((t) => !t.settled && t.deadline > now);
    for (const task of alive) vq.queue.push(task);
    if (alive.length > 0) {
      this.options.log.warn({ model: vq.key, count: alive.length }, "re-queued the batches in flight to a lost replica");
      this.options.observer?.requeued?.(vq.key, alive.length);
    }
    this.pump(vq);
  }

  response(replica: ReplicaConnection, msgId: number, outputs: string[]): void {
    const vq = this.versions.get(modelKey(replica.name, replica.version));
    const slot = vq?.replicas.get(replica.key);
    const expected = slot?.inFlight.find(msgId);
    if (!vq || !slot || !expected) {
      this.options.log.warn({ model: replica.name, msgId }, "unexpected response ignored");
      return;
    }
    if (outputs.length !== expected.tasks.length) {
      // A replica that lies about its batch is not trusted with more: banning it re-queues its
      // batches as when a replica dies (replicaRemoved), and the cache forgets its earlier answers.
      this.rpc?.ban(replica, `answered ${outputs.length} outputs for a batch of ${expected.tasks.length}`);
      return;
    }
    const now = this.now();
    const { tasks, sentAt, serviceMs, cap } = slot.inFlight.answer(msgId, now)!;
    // The model's own time on the batch, not its wait behind the batch before it (in-flight.ts).
    vq.latency.observe(serviceMs, now);
    slot.controller.observe(tasks.length, serviceMs, cap);
    this.options.observer?.batchDone?.(vq.key, (now - sentAt) / 1000);
    tasks.forEach((task, i) => {
      const output = outputs[i]!;
      if (output.startsWith(BATCH_ERROR_PREFIX)) {
        task.resolve({ ok: false, reason: output.slice(BATCH_ERROR_PREFIX.length) });
      } else {
        task.resolve({ ok: true, output, replica: replica.key });
      }
    });
    this.pump(vq);
  }

  private version(key: string): VersionQueue {
    let vq = this.versions.get(key);
    if (!vq) {
      const config = { batchSize: -1, batchWaitMicros: 0, budgetMs: this.options.defaultBudgetMs ?? DEFAULT_BATCH_BUDGET_MS };
      vq = new VersionQueue(key, config, this.options.latencyAlpha ?? 0.2, this.options.latencyHalfLifeMs);
      this.versions.set(key, vq);
    }
    return vq;
  }

  /**
   * Queued tasks still awaited. Settled and expired ones are dropped first: a version with no
   * replica has no pump to drop them, and a query that gave up waiting must not keep counting.
   */
  private liveDepth(vq: VersionQueue): number {
    vq.queue.dropDead(this.now());
    return vq.queue.size;
  }

  private admissionView(vq: VersionQueue, ahead: number, now: number): AdmissionView {
    return {
      now,
      latencyMs: vq.latency.ms,
      jitterMs: vq.latency.deviationMs,
      ahead,
      replicas: vq.active().map((s) => ({ cap: s.controller.cap, busySince: s.inFlight.busySince, batchesInFlight: s.inFlight.size })),
    };
  }

  /**
   * Gives each replica with room its next batch, idle replicas first, or lets one idle replica hold
   * a small batch to fill it.
   */
  private pump(vq: VersionQueue): void {
    const now = this.now();
    vq.queue.dropDead(now);
    if (vq.queue.size === 0) {
      this.endHold(vq); // what it held expired: nothing left to fill
      return;
    }
    // The holding replica first: once its batch is full and gone, the others may take the rest.
    const slots = vq.active();
    if (vq.hold) slots.sort((a, b) => Number(b === vq.hold?.slot) - Number(a === vq.hold?.slot));
    // By level of batches in flight: every idle replica gets a batch before a busy one gets its second.
    for (let level = 0; level < this.maxInFlight; level++) {
      for (const slot of slots) {
        if (vq.queue.size === 0) return;
        if (slot.inFlight.size === level) this.offer(vq, slot, now);
      }
    }
  }

  /** Sends one replica with room for a batch its next batch, or lets it hold a small one to fill it. */
  private offer(vq: VersionQueue, slot: Slot, now: number): void {
    if (vq.hold && vq.hold.slot !== slot) return; // another replica is filling a batch
    const cap = slot.controller.cap;
    const waitMs = vq.config.batchWaitMicros / 1000;
    // A busy replica is sent only full batches: the queries wait in the queue for its answer
    // instead, and make a bigger batch then (see the file comment).
    if (vq.queue.size >= cap || (waitMs <= 0 && slot.inFlight.size === 0)) {
      this.dispatch(vq, slot, "queue_drained");
      return;
    }
    if (slot.inFlight.size > 0) return;
    // Fewer than the cap, and a wait configured: hold, but never past the point where the earliest
    // query could still be answered in time.
    const startedAt = vq.hold?.startedAt ?? now;
    const earliest = vq.queue.peek()!.deadline;
    const until = Math.min(startedAt + waitMs, earliest - (vq.latency.paddedMs ?? 0));
    if (until <= now) {
      this.dispatch(vq, slot, "wait_expired");
      return;
    }
    if (vq.hold && vq.hold.until === until) return;
    this.startHold(vq, slot, startedAt, until, now);
  }

  private startHold(vq: VersionQueue, slot: Slot, startedAt: number, until: number, now: number): void {
    if (vq.hold) this.timers.clearTimeout(vq.hold.timer);
    const hold: Hold = { slot, startedAt, until, timer: undefined };
    hold.timer = this.timers.setTimeout(() => {
      if (vq.hold !== hold) return;
      vq.hold = undefined;
      if (vq.replicas.get(slot.replica.key) === slot && !slot.inFlight.full) this.dispatch(vq, slot, "wait_expired");
      this.pump(vq);
    }, until - now);
    vq.hold = hold;
  }

  private endHold(vq: VersionQueue): void {
    if (!vq.hold) return;
    this.timers.clearTimeout(vq.hold.timer);
    vq.hold = undefined;
  }

  /** Sends a replica with room up to its cap; `otherwise` is the reason when the batch is not full. */
  private dispatch(vq: VersionQueue, slot: Slot, otherwise: Exclude<SendReason, "full">): void {
    if (vq.hold?.slot === slot) this.endHold(vq);
    const now = this.now();
    const cap = slot.controller.cap;
    // With admission on, a task whose deadline falls before a batch could come back is left out
    // too, and answered at once: the model's time goes to queries that can still succeed. A batch
    // sent behind others in flight comes back after them too.
    // (Deadlines at or before the cutoff are late; one due exactly when its batch returns makes it.)
    const latencyMs = vq.latency.ms ?? 0;
    const cutoff = this.options.admission === false ? now : slot.inFlight.startsAt(now, latencyMs) + Math.max(0, latencyMs - 0.001);
    const { batch: tasks, late } = vq.queue.takeBatchBefore(cap, now, cutoff);
    // An idle replica is taken from nobody: rather than stay idle, it tries the late query with the
    // most slack, whose answer tells the estimate whether the model is still that slow.
    if (tasks.length === 0 && late.length > 0) tasks.push(late.pop()!);
    if (late.length > 0) {
      for (const task of late) task.resolve({ ok: false, late: true, latencyMs });
      this.options.observer?.dropped?.(vq.key, late.length);
    }
    if (tasks.length === 0) return;
    this.sendBatch(vq, slot, tasks, { reason: tasks.length >= cap ? "full" : otherwise, cap, now });
  }

  private sendBatch(vq: VersionQueue, slot: Slot, tasks: PredictTask[], how: { reason: SendReason; cap: number; now: number }): void {
    const rpc = this.rpc;
    if (!rpc) throw new Error("dispatcher used before an rpc server was attached");
    const msgId = this.nextMsgId;
    this.nextMsgId = (this.nextMsgId + 1) >>> 0;
    slot.inFlight.add({ msgId, tasks, sentAt: how.now, cap: how.cap });
    this.options.observer?.batchSent?.(vq.key, tasks.length, {
      reason: how.reason,
      cap: how.cap,
      queueWaitSeconds: tasks.map((t) => Math.max(0, how.now - t.enqueuedAt) / 1000),
      replicaId: slot.replica.replicaId,
    });
    rpc
      .sendPredict(slot.replica, msgId, tasks[0]!.inputType, tasks.map((t) => t.input))
      .catch((err: unknown) => rpc.drop(slot.replica, `send failed: ${err instanceof Error ? err.message : String(err)}`));
  }
}
