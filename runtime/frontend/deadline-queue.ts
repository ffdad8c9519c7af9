/**
 * Earliest-deadline-first queue of pending queries for one model version, shared by its replicas.
 * A binary min-heap keyed by deadline; ties keep arrival order so equal deadlines stay FIFO.
 */

export interface QueuedTask {
  /** Absolute deadline in the frontend clock's milliseconds. */
  deadline: number;
  /** Set once the query has been answered (by the model or the SLO timer). */
  settled: boolean;
}

interface Entry<T> {
  task: T;
  seq: number;
}

export class DeadlineQueue<T extends QueuedTask> {
  private heap: Entry<T>[] = [];
  private seq = 0;
  /** No queued task's deadline is later (an upper bound: kept until the queue empties). */
  private latest = -Infinity;

  get size(): number {
    return this.heap.length;
  }

  push(task: T): void {
    this.heap.push({ task, seq: this.seq++ });
    this.latest = Math.max(this.latest, task.deadline);
    this.siftUp(this.heap.length - 1);
  }

  /**
   * Removes and returns up to `max` live tasks in deadline order. Tasks already settled or whose
   * deadline has passed are dropped on the way: no replica time is spent on answers nobody awaits.
   */
  takeBatch(max: number, now: number): T[] {
    return this.takeBatchBefore(max, now, now).batch;
  }

  /**
   * As `takeBatch`, but live tasks due at or before `cutoff` (when a batch sent now would be back)
   * are removed into `late`, in deadline order, for the caller to answer, instead of the batch.
   */
  takeBatchBefore(max: number, now: number, cutoff: number): { batch: T[]; late: T[] } {
    const batch: T[] = [];
    const late: T[] = [];
    while (batch.length < max && this.heap.length > 0) {
      const task = this.pop();
      if (task.settled || task.deadline <= now) continue;
      if (task.deadline <= cutoff) late.push(task);
      else batch.push(task);
    }
    return { batch, late };
  }

  /** The task with the earliest deadline (live or not), without removing it. */
  peek(): T | undefined {
    return this.heap[0]?.task;
  }

  /**
   * Drops settled and expired tasks from the front of the queue (where expired ones gather, the
   * queue being ordered by deadline), so `size` and `peek` describe live work. Returns how many went.
   */
  dropDead(now: number): number {
    let dropped = 0;
    while (this.heap.length > 0) {
      const top = this.heap[0]!.task;
      if (!top.settled && top.deadline > now) break;
      this.pop();
      dropped++;
    }
    return dropped;
  }

  /**
   * How many live tasks would be served before a new task with this deadline: those with an earlier
   * or equal deadline. When no queued deadline is later (one SLO per queue, the usual case) that is
   * the whole queue, so call `dropDead` first; otherwise it visits only the tasks it counts (a subtree
   * whose root is later holds only later tasks).
   */
  countAhead(deadline: number, now: number): number {
    if (deadline >= this.latest) return this.heap.length;
    let count = 0;
    const stack = this.heap.length > 0 ? [0] : [];
    while (stack.length > 0) {
      const i = stack.pop()!;
      const task = this.heap[i]!.task;
      if (task.deadline > deadline) continue;
      if (!task.settled && task.deadline > now) count++;
      const l = 2 * i + 1;
      if (l < this.heap.length) stack.push(l);
      if (l + 1 < this.heap.length) stack.push(l + 1);
    }
    return count;
  }

  private pop(): T {
    const top = this.heap[0]!;
    const last = this.heap.pop()!;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
    } else {
      this.latest = -Infinity;
    }
    return top.task;
  }

  private less(a: Entry<T>, b: Entry<T>): boolean {
    return a.task.deadline < b.task.deadline || (a.task.deadline === b.task.deadline && a.seq < b.seq);
  }

  private siftUp(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private siftDown(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      if (l < h.length && this.less(h[l]!, h[smallest]!)) smallest = l;
      if (r < h.length && this.less(h[r]!, h[smallest]!)) smallest = r;
      if (smallest === i) return;
      [h[i], h[smallest]] = [h[smallest]!, h[i]!];
      i = smallest;
    }
  }
}
