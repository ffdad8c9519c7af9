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

  get size(): number {
    return this.heap.length;
  }

  push(task: T): void {
    this.heap.push({ task, seq: this.seq++ });
    this.siftUp(this.heap.length - 1);
  }

  /**
   * Removes and returns up to `max` live tasks in deadline order. Tasks already settled or whose
   * deadline has passed are dropped on the way: no replica time is spent on answers nobody awaits.
   */
  takeBatch(max: number, now: number): T[] {
    const batch: T[] = [];
    while (batch.length < max && this.heap.length > 0) {
      const task = this.pop();
      if (task.settled || task.deadline <= now) continue;
      batch.push(task);
    }
    return batch;
  }

  private pop(): T {
    const top = this.heap[0]!;
    const last = this.heap.pop()!;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
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
