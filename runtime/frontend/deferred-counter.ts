/**
 * A labelled prom-client Counter for the query path: an increment is a plain addition on a child
 * bound once per label set, and the sums go into the Counter when it is collected (every scrape,
 * and the --workers primary's merge, both read it through `get()`). prom-client's own `inc`
 * validates and hashes the labels on every call, bound child or not: on a cache hit that was
 * a measurable share of the frontend's work per query (docs/benchmarks.md).
 */
import { Counter, type CounterConfiguration, type LabelValues } from "prom-client";

/** What the query path holds: one label set's counter. */
export interface CountChild {
  inc(): void;
}

interface Child<L extends string> extends CountChild {
  readonly labels: LabelValues<L>;
  pending: number;
}

export class DeferredCounter<L extends string> {
  private readonly children = new Map<string, Child<L>>();
  readonly counter: Counter<L>;

  constructor(config: Omit<CounterConfiguration<L>, "collect">) {
    const children = this.children;
    this.counter = new Counter<L>({
      ...config,
      collect() {
        for (const child of children.values()) {
          if (child.pending === 0) continue;
          this.inc(child.labels, child.pending);
          child.pending = 0;
        }
      },
    });
  }

  /** Forgets the child bound under `key` and its series (its name was deleted). */
  forget(key: string): void {
    const child = this.children.get(key);
    if (!child) return;
    this.children.delete(key);
    this.counter.remove(child.labels);
  }

  /** The child for `labels`, created on first use; `key` names the label set (e.g. its one value). */
  child(key: string, labels: LabelValues<L>): CountChild {
    let child = this.children.get(key);
    if (!child) {
      const created: Child<L> = { labels, pending: 0, inc: () => void created.pending++ };
      child = created;
      this.children.set(key, child);
    }
    return child;
  }
}
