/**
 * Scrape cost of the query frontend's /metrics at 10,000 applications and 10,000 model versions,
 * each with its series (a query, a default, a batch, a policy choice, a cache hit and miss): the
 * registry as a scrape reads it, with the sweep for deleted names on every scrape (before: every
 * series read twice) and only when names were deleted (now: metric-names.ts). One process, the
 * same registry, interleaved rounds, medians; plus a scrape right after one application was deleted,
 * which sweeps. Writes docs/bench/metrics-scrape.md.
 *
 *   npm run build && flock /tmp/clipper-bench.lock node dist/bench/metrics-scrape.js
 */
import { performance } from "node:perf_hooks";
import { positiveEnv } from "./lib/env.js";
import { formatNumber, markdownTable, runContext, writeReport } from "./lib/report.js";
import { CacheMetrics } from "../runtime/frontend/cache-metrics.js";
import { MetricNames, removedNames } from "../runtime/frontend/metric-names.js";
import { FrontendMetrics } from "../runtime/frontend/metrics.js";
import { dict } from "../runtime/shared/dict.js";
import { type ClusterState, emptyState } from "../runtime/shared/state.js";

const NAMES = positiveEnv("BENCH_NAMES", 10_000);
const ROUNDS = positiveEnv("BENCH_ROUNDS", 9);

function seed(): ClusterState {
  const state = emptyState();
  for (let i = 0; i < NAMES; i++) {
    const name = `m${i}`;
    state.models[name] = {
      name, current_version: "1",
      versions: dict([["1", { model_name: name, model_version: "1", labels: [], input_type: "doubles", container_name: "c", model_data_path: "p", batch_size: -1 }]]),
    };
    state.applications[`app${i}`] = { name: `app${i}`, input_type: "doubles", default_output: "-1", latency_slo_micros: 100_000, linked_models: [name] };
  }
  return state;
}

const current = { state: seed() };
const names = MetricNames.of(() => current.state);
const metrics = new FrontendMetrics({ queueDepths: () => new Map(), replicaCounts: () => new Map() }, names);
const cache = new CacheMetrics(metrics.registry, () => ({ bytes: 0, entries: 0, maxBytes: 1 }), undefined, names);
for (let i = 0; i < NAMES; i++) {
  const app = `app${i}`;
  const key = `m${i}:1`;
  metrics.query(app, 0.002);
  metrics.query(app, 0.004, "slo_missed");
  metrics.batchSent(key, 1, { replicaId: 0, reason: "queue_drained", queueWaitSeconds: [0.001], cap: 4 });
  metrics.batchDone(key, 0.001);
  metrics.policyChoice(app, "exp3", `m${i}`);
  cache.hit(key);
  cache.miss(key);
}
const registry = metrics.registry;

async function timed(scrape: () => Promise<string>): Promise<{ ms: number; bytes: number }> {
  const started = performance.now();
  const text = await scrape();
  return { ms: performance.now() - started, bytes: text.length };
}

const variants = {
  "sweep on every scrape (before)": async () => (await registry.sweep(), registry.metrics()),
  "sweep only after a deletion (now)": () => registry.metrics(),
};
const samples = new Map<string, number[]>(Object.keys(variants).map((k) => [k, []]));
const afterDeletion: number[] = [];
let bytes = 0;
await registry.metrics(); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  const order = Object.entries(variants);
  if (round % 2 === 1) order.reverse();
  for (const [name, scrape] of order) {
    const run = await timed(scrape);
    samples.get(name)!.push(run.ms);
    bytes = run.bytes;
  }
  // One application deleted: the next scrape sweeps (its own cost, then back to the cheap path).
  const gone = `app${round}`;
  const next = { ...current.state, applications: dict(Object.entries(current.state.applications).filter(([k]) => k !== gone)) };
  const removed = removedNames(current.state, next);
  current.state = next;
  void metrics.forget(removed);
  afterDeletion.push((await timed(() => registry.metrics())).ms);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const rows = [...samples].map(([name, values]) => [name, formatNumber(median(values)), formatNumber(Math.min(...values))]);
rows.push(["the scrape right after one application was deleted (sweeps)", formatNumber(median(afterDeletion)), formatNumber(Math.min(...afterDeletion))]);
const before = median(samples.get("sweep on every scrape (before)")!);
const now = median(samples.get("sweep only after a deletion (now)")!);
const markdown = `# /metrics scrape cost at ${NAMES} applications and ${NAMES} model versions

${runContext("npm run build && flock /tmp/clipper-bench.lock node dist/bench/metrics-scrape.js")}

One process, no HTTP: FrontendMetrics and CacheMetrics on a configuration of ${NAMES} applications
each linking its own model version, every one with series (a scrape of ${formatNumber(bytes / 1e6)} MB).
${ROUNDS} interleaved rounds (the order alternates), medians of the scrape's wall time.

${markdownTable(["scrape", "median ms", "min ms"], rows)}

The scrape without a deletion costs ${formatNumber(now / before * 100)}% of what it cost when every
scrape swept (${formatNumber(before)} → ${formatNumber(now)} ms).
`;
writeReport("metrics-scrape", markdown, {});
process.stdout.write(markdown);
