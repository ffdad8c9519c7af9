import { AggregatorRegistry, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { DeferredHistogram } from "../../runtime/frontend/deferred-histogram.js";

const BUCKETS = [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const CONFIG = { name: "latency_seconds", help: "End-to-end latency \\ with \"quotes\"\nand a newline", labelNames: ["app"] as const, buckets: BUCKETS };

/** prom-client's Histogram and ours, each on its own registry, fed the same observations. */
function pair() {
  const theirsRegistry = new Registry();
  const oursRegistry = new Registry();
  const theirs = new Histogram({ ...CONFIG, labelNames: [...CONFIG.labelNames], registers: [theirsRegistry] });
  const ours = new DeferredHistogram({ ...CONFIG, registers: [oursRegistry] });
  const observe = (app: string, value: number) => {
    theirs.labels({ app }).observe(value);
    ours.child(app, { app }).observe(value);
  };
  return { theirsRegistry, oursRegistry, observe };
}

// Values on bucket bounds (le is inclusive), between them, above the last, zero, and a label value
// that needs escaping or names an Object.prototype property.
const VALUES = [0, 0.0005, 0.00051, 0.001, 0.0042, 0.01, 0.3, 1, 9.99, 10, 10.0001, 1234.5, 1e-9];
const APPS = ["app", "constructor", "__proto__", "a\"b\\c\nd"];

describe("DeferredHistogram", () => {
  it("exposes the same text as prom-client's Histogram: names, labels, buckets, sums, counts, order", async () => {
    const { theirsRegistry, oursRegistry, observe } = pair();
    expect(await oursRegistry.metrics()).toBe(await theirsRegistry.metrics()); // nothing observed: no series
    VALUES.forEach((value, i) => observe(APPS[i % APPS.length]!, value));
    const text = await oursRegistry.metrics();
    expect(text).toBe(await theirsRegistry.metrics());
    expect(text).toContain('latency_seconds_bucket{le="0.0005",app="app"} 2');
    expect(text).toContain('latency_seconds_bucket{le="+Inf",app="__proto__"} 3');
    // A scrape reads and keeps: a second one shows the same counts, and later observations add to them.
    expect(await oursRegistry.metrics()).toBe(text);
    observe("app", 0.02);
    expect(await oursRegistry.metrics()).toBe(await theirsRegistry.metrics());
  });

  it("gives the --workers primary the same JSON, and merged workers the same text", async () => {
    const workers = [pair(), pair()];
    VALUES.forEach((value, i) => workers[i % 2]!.observe(APPS[i % 3]!, value));
    const theirsJson = await Promise.all(workers.map((w) => w.theirsRegistry.getMetricsAsJSON()));
    const oursJson = await Promise.all(workers.map((w) => w.oursRegistry.getMetricsAsJSON()));
    // Through IPC, as the primary receives them: undefined fields vanish, null stays.
    expect(JSON.parse(JSON.stringify(oursJson))).toEqual(JSON.parse(JSON.stringify(theirsJson)));
    expect(await AggregatorRegistry.aggregate(oursJson).metrics()).toBe(await AggregatorRegistry.aggregate(theirsJson).metrics());
  });

  it("binds one child per key, and resets with the registry like prom-client", async () => {
    const { theirsRegistry, oursRegistry, observe } = pair();
    const registry = new Registry();
    const histogram = new DeferredHistogram({ ...CONFIG, registers: [registry] });
    expect(histogram.child("a", { app: "a" })).toBe(histogram.child("a", { app: "a" }));
    observe("a", 0.1);
    theirsRegistry.resetMetrics();
    oursRegistry.resetMetrics();
    expect(await oursRegistry.metrics()).toBe(await theirsRegistry.metrics());
    observe("a", 0.2);
    expect(await oursRegistry.metrics()).toBe(await theirsRegistry.metrics());
  });

  it("refuses what prom-client refuses: a non-finite value, an unknown or reserved label, bad buckets, a taken name", () => {
    const registry = new Registry();
    const histogram = new DeferredHistogram({ ...CONFIG, registers: [registry] });
    const child = histogram.child("a", { app: "a" });
    expect(() => child.observe(Number.NaN)).toThrow(TypeError);
    expect(() => child.observe(Number.POSITIVE_INFINITY)).toThrow(TypeError);
    expect(() => histogram.child("m", { model: "m" } as never)).toThrow(/not included/);
    expect(() => new DeferredHistogram({ ...CONFIG, name: "x", labelNames: ["le"], registers: [] })).toThrow(/reserved/);
    expect(() => new DeferredHistogram({ ...CONFIG, name: "y", buckets: [1, 1], registers: [] })).toThrow(RangeError);
    expect(() => new DeferredHistogram({ ...CONFIG, registers: [registry] })).toThrow(/already been registered/);
  });
});
