/**
 * State writes benchmark (issue 16 §1, the daemon side): what one admin write costs the management
 * daemon when the state holds 10,000 applications and 2,000 model versions. In one process, in
 * interleaved rounds, the same operations (add a link, remove it, register an application) go
 * through:
 *   - "whole state": the write path before the journal (runtime/management/store.ts at 6597fd6):
 *     the operation copies the state, the store reads the serialized next state back through the
 *     schema and every invariant, freezes it, and rewrites state.json (temp, fsync, rename, fsync dir);
 *   - "journal": today's StateStore: the operation answers the entries it changes, the store checks
 *     those, appends one journal line and fdatasyncs it.
 * Per write: wall latency (p50, p99) and the process's CPU (user + system, libuv threads included).
 * Writes docs/bench/state-writes.md and docs/bench/state-writes.svg.
 *
 *   npm run build && flock /tmp/clipper-bench.lock node dist/bench/state-writes.js
 */
import { link, mkdtemp, open, readdir, rename, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { positiveEnv } from "./lib/env.js";
import { barChartSvg, formatNumber, markdownTable, runContext, writeReport } from "./lib/report.js";
import { dict } from "../runtime/shared/dict.js";
import { applyStateDelta } from "../runtime/shared/state-delta.js";
import { stateViolations } from "../runtime/shared/state-invariants.js";
import { cloneState, type ClusterState, ClusterStateSchema, emptyState } from "../runtime/shared/state.js";
import { addApp, addModelLinks, deleteModelLinks, type WriteOperation } from "../runtime/management/operations.js";
import { STATE_FILE, StateStore } from "../runtime/management/store.js";

const APPS = positiveEnv("BENCH_APPS", 10_000);
const MODELS = positiveEnv("BENCH_MODELS", 1_000); // two versions each
const ROUNDS = positiveEnv("BENCH_ROUNDS", 3);
const WRITES = positiveEnv("BENCH_WRITES", 20);
const IN_FLIGHT = Math.min(200, Math.floor(APPS / 10));

function seed(): ClusterState {
  const state = emptyState();
  for (let m = 0; m < MODELS; m++) {
    const name = `model-${m}`;
    const version = (v: string) => ({
      model_name: name, model_version: v, labels: ["bench"], input_type: "doubles" as const,
      container_name: "bench/noop:latest", model_data_path: "/tmp/model", batch_size: -1,
    });
    state.models[name] = { name, current_version: "2", versions: dict([["1", version("1")], ["2", version("2")]]) };
  }
  for (let a = 0; a < APPS; a++) {
    const name = `app-${a}`;
    const learns = a % 10 === 0;
    state.applications[name] = {
      name, input_type: "doubles", default_output: "-1", latency_slo_micros: 100_000,
      linked_models: learns ? [`model-${a % MODELS}`, `model-${(a + 1) % MODELS}`] : [`model-${a % MODELS}`],
      ...(learns ? { policy: { name: "exp3" as const } } : {}),
    };
    if (learns) (state.policy_state ??= dict())[name] = dict([["*", dict([[`model-${a % MODELS}`, 0.5], [`model-${(a + 1) % MODELS}`, 0.5]])]]);
  }
  return state;
}

/** The write path before the journal, step for step (store.ts and the operations at 6597fd6). */
class WholeStateWriter {
  private counter = 0;
  constructor(private readonly dir: string, public state: ClusterState) {}

  async write(op: WriteOperation, body: string): Promise<void> {
    // The operation copied the whole state and changed the copy.
    const outcome = op(this.state, body);
    const next = cloneState(this.state);
    applyStateDelta(next, { base: next.revision, revision: next.revision + 1, changes: outcome.changes ?? [] });
    // The store read it back as the loader would and checked every invariant...
    const text = JSON.stringify(next, null, 2) + "\n";
    const parsed = ClusterStateSchema.parse(JSON.parse(text));
    if (stateViolations(parsed).length > 0) throw new Error("inconsistent");
    const committed = parsed;
    // ...kept the replaced file as a generation, and rewrote state.json durably.
    const path = join(this.dir, STATE_FILE);
    const kept = join(this.dir, `${STATE_FILE}.gen-${this.state.revision}`);
    await unlink(kept).catch(() => undefined);
    await link(path, kept).catch(() => undefined);
    const temp = join(this.dir, `${STATE_FILE}.tmp-${++this.counter}`);
    const file = await open(temp, "w", 0o600);
    await file.writeFile(JSON.stringify(committed, null, 2) + "\n", "utf8");
    await file.sync();
    await file.close();
    await rename(temp, path);
    const dir = await open(this.dir, "r");
    await dir.sync();
    await dir.close();
    const generations = (await readdir(this.dir)).filter((f) => f.startsWith(`${STATE_FILE}.gen-`)).sort();
    for (const old of generations.slice(0, Math.max(0, generations.length - 5))) await unlink(join(this.dir, old)).catch(() => undefined);
    this.state = deepFreeze(committed);
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

type Path = "whole state" | "journal";
type OpName = "add link" | "remove link" | "register app";
interface Sample { latencyMs: number; cpuMs: number }
const samples = new Map<string, Sample[]>();
const record = (path: Path, op: OpName, sample: Sample) => {
  const key = `${path}|${op}`;
  samples.set(key, [...(samples.get(key) ?? []), sample]);
};

async function measure(path: Path, op: OpName, write: () => Promise<unknown>): Promise<void> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  await write();
  const latencyMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  record(path, op, { latencyMs, cpuMs: (used.user + used.system) / 1000 });
}

const initial = JSON.stringify(seed());
const stateBytes = initial.length;
const oldDir = await mkdtemp(join(tmpdir(), "bench-state-old-"));
const newDir = await mkdtemp(join(tmpdir(), "bench-state-new-"));
let concurrent: { writes: number; ms: number; cpuMs: number } | undefined;
try {
  await writeFile(join(oldDir, STATE_FILE), initial);
  await writeFile(join(newDir, STATE_FILE), initial);
  const whole = new WholeStateWriter(oldDir, deepFreeze(ClusterStateSchema.parse(JSON.parse(initial))));
  const store = await StateStore.open(newDir);
  const viaStore = (op: WriteOperation, body: string) => store.update((state, links) => {
    const outcome = op(state, body, [], links);
    return { changes: outcome.changes, result: outcome };
  });
  const link = (a: number) => JSON.stringify({ app_name: `app-${a}`, model_names: [`model-${(a + 7) % MODELS}`] });
  const exp3App = (round: number, i: number) => ((round * WRITES + i) * 10) % APPS; // learning apps may link more than one model
  let registered = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Each round starts with the other path, so drift on the machine hits both alike.
    const order: Path[] = round % 2 === 0 ? ["whole state", "journal"] : ["journal", "whole state"];
    for (const path of order) {
      const write = (op: WriteOperation, body: string) => (path === "journal" ? viaStore(op, body) : whole.write(op, body));
      for (let i = 0; i < WRITES; i++) {
        const a = exp3App(round, i);
        await measure(path, "add link", () => write(addModelLinks, link(a)));
        await measure(path, "remove link", () => write(deleteModelLinks, link(a)));
        const name = `new-${path === "journal" ? "j" : "w"}-${registered++}`;
        await measure(path, "register app", () => write(addApp, JSON.stringify({ name, input_type: "doubles", default_output: "-1", latency_slo_micros: 100_000 })));
      }
    }
  }
  // Many writers at once: the journal's group commit shares one fdatasync among the writes queued behind it.
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, (_, i) => viaStore(addModelLinks, link((i * 10) % APPS))));
  const used = process.cpuUsage(cpu);
  concurrent = { writes: IN_FLIGHT, ms: performance.now() - start, cpuMs: (used.user + used.system) / 1000 };
  await store.close();
} finally {
  await rm(oldDir, { recursive: true, force: true });
  await rm(newDir, { recursive: true, force: true });
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
};
const mean = (values: number[]) => values.reduce((s, v) => s + v, 0) / values.length;
const OPS: OpName[] = ["add link", "remove link", "register app"];
const figure = (path: Path, op: OpName) => {
  const list = samples.get(`${path}|${op}`)!;
  return { p50: quantile(list.map((s) => s.latencyMs), 0.5), p99: quantile(list.map((s) => s.latencyMs), 0.99), cpu: mean(list.map((s) => s.cpuMs)) };
};
const rows = OPS.flatMap((op) => {
  const before = figure("whole state", op);
  const after = figure("journal", op);
  return [
    [op, "whole state (before)", before.p50, before.p99, before.cpu, "1×"],
    [op, "journal (after)", after.p50, after.p99, after.cpu, `${formatNumber(before.cpu / after.cpu)}× less CPU, ${formatNumber(before.p50 / after.p50)}× faster p50`],
  ];
});

const markdown = `# State writes benchmark

${runContext("npm run build && flock /tmp/clipper-bench.lock node dist/bench/state-writes.js")}

One process, no HTTP: the admin operations and the management daemon's state store on a state of
${APPS} applications (one in ten with an exp3 policy, two links and learned weights) and ${MODELS * 2}
model versions (${MODELS} models × 2), ${formatNumber(stateBytes / 1e6)} MB as JSON. ${ROUNDS} interleaved rounds of ${WRITES}
writes per operation and path, each write awaited before the next. "Whole state" is the write path
before the journal, step for step (the operation copies the state; the store reads the serialized
next state back through the schema and every invariant, freezes it and rewrites state.json: temp,
fsync, rename, fsync dir). "Journal" is today's StateStore: the operation answers the entries it
changes, the store checks those (and the invariants they touch) and appends one fdatasync'ed line.
CPU is the process's user + system time per write (libuv threads included); latency is wall time.

${markdownTable(["operation", "write path", "latency p50 ms", "latency p99 ms", "CPU ms/write", "vs whole state"], rows)}

${concurrent ? `${concurrent.writes} add-link writes issued at once through the journal (group commit: writes queued behind an fdatasync share the next one): ` +
  `${formatNumber(concurrent.ms)} ms in all, ${formatNumber((1000 * concurrent.writes) / concurrent.ms)} writes/s, ${formatNumber(concurrent.cpuMs / concurrent.writes)} ms CPU per write.` : ""}

The state directories are under the OS temp directory (where this table was made: ext4 on a virtual disk, where an
fdatasync takes well under a millisecond); on a disk with slower flushes both paths wait longer, the
whole-state one also for the megabytes it writes.

A snapshot (state.json rewritten whole, the journal restarted) still happens once per 10,000 journaled
writes or once the journal outgrows the last state.json (and 1 MiB), after the write that crossed the line is
acknowledged; writes that arrive meanwhile wait for it. It is not in these figures.

![latency p50 per write](state-writes.svg)
`;
const svg = barChartSvg(`Admin write latency p50 at ${APPS} applications`, "ms", OPS.flatMap((op) => [
  { label: `${op}, whole state`, value: figure("whole state", op).p50 },
  { label: `${op}, journal`, value: figure("journal", op).p50 },
]));
writeReport("state-writes", markdown, { "state-writes.svg": svg });
