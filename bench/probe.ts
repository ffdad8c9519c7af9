// Ad-hoc: where the distinct-input latency goes (batch size, batch latency, queue wait).
import { distinctDoubles, startBenchCluster } from "./lib/cluster.js";
import { runLoad, warmUp } from "./lib/load.js";
import { metricValue, scrape } from "./lib/metrics.js";
const cluster = await startBenchCluster({});
await cluster.pythonModel("noop", 1000, { name: "noop", version: "1", file: "noop_model.py:predict", replicas: Number(process.env.R ?? 1) });
const load = { url: cluster.queryUrl, path: "/noop/predict", connections: 32, durationSec: 5, body: distinctDoubles(), overallRate: process.env.RATE ? Number(process.env.RATE) : undefined };
await warmUp(load, 3);
const before = await scrape(cluster.queryUrl);
const r = await runLoad(load);
const after = await scrape(cluster.queryUrl);
const d = (n: string) => metricValue(after, n, { model: "noop:1" }) - metricValue(before, n, { model: "noop:1" });
console.log({ rps: r.rps, p50: r.p50, p90: r.p90, p99: r.p99,
  meanBatch: d("clipper_model_batch_size_sum") / d("clipper_model_batch_size_count"),
  batchMs: 1000 * d("clipper_model_batch_latency_seconds_sum") / d("clipper_model_batch_latency_seconds_count"),
  queueWaitMs: 1000 * d("clipper_model_queue_wait_seconds_sum") / d("clipper_model_queue_wait_seconds_count") });
console.log(after.split("\n").filter((l) => l.startsWith("clipper_model_batch_latency_seconds_bucket")).join("\n"));
await cluster.stop();
