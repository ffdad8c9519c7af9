/**
 * Routes queries to model replicas. Each model version has one earliest-deadline-first queue shared
 * by its replicas; a replica pulls its next batch as soon as it is free. A batch in flight to a
 * replica that dies goes back to the queue, so another replica can answer it while deadlines allow.
 */
import type { Logger } from "pino";
import type { InputType } from "../shared/input-types.js";
import { BATCH_ERROR_PREFIX } from "../rpc/codec.js";
import type { ReplicaConnection, RpcServer } from "../rpc/rpc-server.js";
import { DeadlineQueue, type QueuedTask } from "./deadline-queue.js";

export type ModelResult = { ok: true; output: string } | { ok: false; reason: string };

export interface PredictTask extends QueuedTask {
  readonly input: Buffer;
  readonly inputType: InputType;
  readonly enqueuedAt: number;
  resolve(result: ModelResult): void;
}

interface InFlight {
  msgId: number;
  tasks: PredictTask[];
  sentAt: number;
}

/** Hooks for metrics; all optional so tests can omit them. */
export interface DispatchObserver {
  batchSent?(model: string, size: number): void;
  batchDone?(model: string, seconds: number): void;
  requeued?(model: string, count: number): void;
}

export function modelKey(name: string, version: string): string {
  return `${name}:${version}`;
}

class VersionQueue {
  readonly queue = new DeadlineQueue<PredictTask>();
  readonly replicas = new Map<string, { replica: ReplicaConnection; inFlight?: InFlight }>();
  maxBatch: number;

  constructor(readonly key: string, maxBatch: number) {
    this.maxBatch = maxBatch;
  }
}

export interface DispatcherOptions {
  /** Largest batch when the model sets no fixed batch size. */
  defaultMaxBatch: number;
  log: Logger;
  observer?: DispatchObserver;
  now?: () => number;
}

export class Dispatcher {
  private readonly versions = new Map<string, VersionQueue>();
  private nextMsgId = 0;
  private readonly now: () => number;
  private rpc?: RpcServer;

  constructor(private readonly options: DispatcherOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  setObserver(observer: DispatchObserver): void {
    this.options.observer = observer;
  }

  attach(rpc: RpcServer): void {
    this.rpc = rpc;
  }

  /** The fixed batch size of a model version (from its configuration), or -1 for "ours to choose". */
  setBatchSize(name: string, version: string, batchSize: number): void {
    this.version(modelKey(name, version)).maxBatch = batchSize > 0 ? batchSize : this.options.defaultMaxBatch;
  }

  liveReplicaCount(name: string, version: string): number {
    return this.versions.get(modelKey(name, version))?.replicas.size ?? 0;
  }

  queueDepth(name: string, version: string): number {
    return this.versions.get(modelKey(name, version))?.queue.size ?? 0;
  }

  /** Queue depth per model version, for metrics. */
  queueDepths(): Map<string, number> {
    return new Map([...this.versions].map(([key, vq]) => [key, vq.queue.size]));
  }

  /** Connected replicas per model version, for metrics. */
  replicaCounts(): Map<string, number> {
    return new Map([...this.versions].map(([key, vq]) => [key, vq.replicas.size]));
  }

  submit(name: string, version: string, task: PredictTask): void {
    const vq = this.version(modelKey(name, version));
    vq.queue.push(task);
    this.pump(vq);
  }

  replicaAdded(replica: ReplicaConnection): void {
    const vq = this.version(modelKey(replica.name, replica.version));
    vq.replicas.set(replica.key, { replica });
    this.pump(vq);
  }

  replicaRemoved(replica: ReplicaConnection): void {
    const vq = this.versions.get(modelKey(replica.name, replica.version));
    const slot = vq?.replicas.get(replica.key);
    if (!vq || !slot) return;
    vq.replicas.delete(replica.key);
    if (slot.inFlight) {
      const alive = slot.inFlight.tasks.filter((t) => !t.settled && t.deadline > this.now());
      for (const task of alive) vq.queue.push(task);
      if (alive.length > 0) {
        this.options.log.warn({ model: vq.key, count: alive.length }, "re-queued a batch from a lost replica");
        this.options.observer?.requeued?.(vq.key, alive.length);
      }
    }
    this.pump(vq);
  }

  response(replica: ReplicaConnection, msgId: number, outputs: string[]): void {
    const vq = this.versions.get(modelKey(replica.name, replica.version));
    const slot = vq?.replicas.get(replica.key);
    if (!vq || !slot?.inFlight || slot.inFlight.msgId !== msgId) {
      this.options.log.warn({ model: replica.name, msgId }, "unexpected response ignored");
      return;
    }
    const { tasks, sentAt } = slot.inFlight;
    slot.inFlight = undefined;
    this.options.observer?.batchDone?.(vq.key, (this.now() - sentAt) / 1000);
    tasks.forEach((task, i) => {
      const output = outputs[i];
      if (output === undefined) {
        task.resolve({ ok: false, reason: `the model answered ${outputs.length} outputs for a batch of ${tasks.length}` });
      } else if (output.startsWith(BATCH_ERROR_PREFIX)) {
        task.resolve({ ok: false, reason: output.slice(BATCH_ERROR_PREFIX.length) });
      } else {
        task.resolve({ ok: true, output });
      }
    });
    this.pump(vq);
  }

  private version(key: string): VersionQueue {
    let vq = this.versions.get(key);
    if (!vq) {
      vq = new VersionQueue(key, this.options.defaultMaxBatch);
      this.versions.set(key, vq);
    }
    return vq;
  }

  /** Gives each free replica its next batch. */
  private pump(vq: VersionQueue): void {
    for (const slot of vq.replicas.values()) {
      if (vq.queue.size === 0) return;
      if (slot.inFlight) continue;
      const tasks = vq.queue.takeBatch(vq.maxBatch, this.now());
      if (tasks.length === 0) return;
      this.sendBatch(vq, slot, tasks);
    }
  }

  private sendBatch(vq: VersionQueue, slot: { replica: ReplicaConnection; inFlight?: InFlight }, tasks: PredictTask[]): void {
    const rpc = this.rpc;
    if (!rpc) throw new Error("dispatcher used before an rpc server was attached");
    const msgId = this.nextMsgId;
    this.nextMsgId = (this.nextMsgId + 1) >>> 0;
    slot.inFlight = { msgId, tasks, sentAt: this.now() };
    this.options.observer?.batchSent?.(vq.key, tasks.length);
    rpc
      .sendPredict(slot.replica, msgId, tasks[0]!.inputType, tasks.map((t) => t.input))
      .catch((err: unknown) => rpc.drop(slot.replica, `send failed: ${err instanceof Error ? err.message : String(err)}`));
  }
}
