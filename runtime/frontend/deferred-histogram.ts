/**
 * A labelled histogram for the query path that prom-client's registry collects like its own: an
 * observation is a bucket search and three additions on a child bound once per label set, and the
 * counts become prom-client's exposition (same names, labels, buckets, values and order) only when
 * the registry is read (every scrape, and the --workers primary's merge through `get()`).
 * prom-client's Histogram validates and hashes the labels on every observe, bound child or not, and
 * has no public way to add counts to its buckets, hence a metric of our own (docs/benchmarks.md).
 */
import type { Aggregator, LabelValues, Metric, Registry } from "prom-client";

/** What the query path holds: one label set's histogram. */
export interface ObserveChild {
  observe(value: number): void;
}

export interface DeferredHistogramConfiguration<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  /** Upper bounds, strictly increasing (prom-client's rule); +Inf is implied. */
  buckets: readonly number[];
  registers: Registry[];
  aggregator?: Aggregator;
}

/** One exposed sample, as prom-client's Histogram.get() gives it. */
interface Sample {
  value: number;
  labels: LabelValues<string>;
  metricName: string;
  exemplar?: null;
}

class Child<L extends string> implements ObserveChild {
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly labels: LabelValues<L>, private readonly bounds: readonly number[]) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

export class DeferredHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = "histogram";
  readonly aggregator: Aggregator;
  private readonly labelNames: readonly L[];
  private readonly buckets: readonly number[];
  private readonly children = new Map<string, Child<L>>();

  constructor(config: DeferredHistogramConfiguration<L>) {
    this.name = config.name;
    this.help = config.help;
    this.aggregator = config.aggregator ?? "sum";
    this.labelNames = [...config.labelNames];
    if (this.labelNames.includes("le" as L)) throw new Error("le is a reserved label keyword");
    config.buckets.forEach((bound, i) => {
      if (!Number.isFinite(bound) || (i > 0 && bound <= config.buckets[i - 1]!)) {
        throw new RangeError(`histogram buckets must be finite and strictly increasing: ${config.buckets.join(", ")}`);
      }
    });
    this.buckets = [...config.buckets];
    // prom-client's Registry reads a metric through name, help, type, aggregator, get() and reset()
    // only; its type names just its own classes.
    for (const registry of config.registers) registry.registerMetric(this as unknown as Metric<L>);
  }

  /** The child for `labels`, created on first use; `key` names the label set (e.g. its one value). */
  child(key: string, labels: LabelValues<L>): ObserveChild {
    let child = this.children.get(key);
    if (!child) {
      for (const label of Object.keys(labels)) {
        if (!this.labelNames.includes(label as L)) throw new Error(`Added label "${label}" is not included in initial labelset: ${this.labelNames.join(", ")}`);
      }
      child = new Child(labels, this.buckets);
      this.children.set(key, child);
    }
    return child;
  }

  /** prom-client's Histogram.get(): per observed label set, cumulative buckets, +Inf, _sum and _count. */
  async get(): Promise<{ name: string; help: string; type: "histogram"; aggregator: Aggregator; values: Sample[] }> {
    const values: Sample[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const child of this.children.values()) {
      // prom-client shows a label set from its first observation on.
      if (child.count === 0) continue;
      let cumulative = 0;
      this.buckets.forEach((bound, i) => {
        cumulative += child.counts[i]!;
        values.push({ value: cumulative, labels: { le: bound, ...child.labels }, metricName: bucketName, exemplar: null });
      });
      values.push(
        { value: child.count, labels: { le: "+Inf", ...child.labels }, metricName: bucketName, exemplar: null },
        { value: child.sum, labels: { ...child.labels }, metricName: `${this.name}_sum`, exemplar: undefined },
        { value: child.count, labels: { ...child.labels }, metricName: `${this.name}_count`, exemplar: undefined },
      );
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** Forgets the child bound under `key` (its name was deleted); a later `child(key)` starts afresh. */
  forget(key: string): void {
    this.children.delete(key);
  }

  /** prom-client's remove(labels): forgets the child with exactly this label set. */
  remove(labels: LabelValues<L>): void {
    for (const [key, child] of this.children) {
      if (this.labelNames.every((name) => String(child.labels[name]) === String(labels[name]))) this.children.delete(key);
    }
  }

  /** Registry.resetMetrics(): every count back to zero (children stay bound). */
  reset(): void {
    for (const child of this.children.values()) {
      child.counts.fill(0);
      child.sum = 0;
      child.count = 0;
    }
  }
}
