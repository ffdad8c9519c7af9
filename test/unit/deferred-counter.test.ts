import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { DeferredCounter } from "../../runtime/frontend/deferred-counter.js";
import { metricValue } from "../../bench/lib/metrics.js";

describe("DeferredCounter", () => {
  it("shows every increment in each scrape and in the JSON the --workers primary merges, once", async () => {
    const registry = new Registry();
    const counter = new DeferredCounter({ name: "queries_total", help: "h", labelNames: ["app"], registers: [registry] });
    const a = counter.child("a", { app: "a" });
    expect(counter.child("a", { app: "a" })).toBe(a);
    const b = counter.child("b", { app: "b" });
    expect(await registry.metrics()).not.toMatch(/queries_total\{/); // nothing counted yet: no series
    a.inc();
    a.inc();
    b.inc();
    let text = await registry.metrics();
    expect(metricValue(text, "queries_total", { app: "a" })).toBe(2);
    expect(metricValue(text, "queries_total", { app: "b" })).toBe(1);
    text = await registry.metrics(); // a second scrape adds nothing twice
    expect(metricValue(text, "queries_total", { app: "a" })).toBe(2);
    a.inc();
    const json = await registry.getMetricsAsJSON();
    const values = json.find((m) => m.name === "queries_total")!.values as Array<{ labels: { app: string }; value: number }>;
    expect(Object.fromEntries(values.map((v) => [v.labels.app, v.value]))).toEqual({ a: 3, b: 1 });
  });

});
