/**
 * One /metrics for all frontend workers (`--workers N`, N > 1; workers.ts). The worker that takes a
 * scrape asks the primary over the cluster IPC channel; the primary asks every worker for its
 * registry as JSON, merges them with prom-client's AggregatorRegistry.aggregate (each metric by its
 * own `aggregator`: docs/metrics.md, "Frontend workers") and sends the text back.
 *
 * Our own messages rather than prom-client's clusterMetrics(): that one waits a fixed 5 s, then
 * fails the whole scrape, and keeps each timed-out request in its table for good. Here a worker that
 * does not answer within WORKER_METRICS_TIMEOUT_MS is left out, and the answer says how many were.
 */
import type { Worker } from "node:cluster";
import { AggregatorRegistry, Gauge, type Registry } from "prom-client";
import { z } from "zod";

/** How long the primary waits for the workers' registries before answering with those that came. */
export const WORKER_METRICS_TIMEOUT_MS = 2_000;
/** The scraping worker's own bound on the primary's answer: the primary's wait and a margin for IPC. */
export const PRIMARY_METRICS_TIMEOUT_MS = WORKER_METRICS_TIMEOUT_MS + 1_000;

/** Written by the primary into each aggregate: workers whose registry it holds, and those missing. */
export const SCRAPED_WORKERS_METRIC = "clipper_frontend_scraped_workers";

const SCRAPE = "clipper:metrics-scrape"; // worker -> primary: the whole frontend's metrics, please
const SCRAPED = "clipper:metrics-scraped"; // primary -> that worker: the aggregate, or why not
const COLLECT = "clipper:metrics-collect"; // primary -> every worker: your registry as JSON
const COLLECTED = "clipper:metrics-collected"; // worker -> primary

const Id = z.number().int().nonnegative();
const ScrapeRequest = z.object({ type: z.literal(SCRAPE), id: Id });
const ScrapeAnswer = z.union([
  z.object({ type: z.literal(SCRAPED), id: Id, text: z.string() }),
  z.object({ type: z.literal(SCRAPED), id: Id, error: z.string() }),
]);
const CollectRequest = z.object({ type: z.literal(COLLECT), id: Id });
/** The shape of Registry.getMetricsAsJSON(), as far as aggregate() reads it. */
const MetricJson = z.object({
  name: z.string().min(1),
  help: z.string(),
  type: z.enum(["counter", "gauge", "histogram", "summary"]),
  aggregator: z.enum(["omit", "sum", "first", "min", "max", "average"]),
  values: z.array(z.object({
    // Any number, ±Infinity included (z.number() refuses them). The IPC channel's JSON turns NaN and
    // ±Infinity into null: written out as NaN.
    value: z.custom<number>((v) => typeof v === "number").nullable().transform((v) => v ?? NaN),
    // Only hashed and written back out; a label the worker left undefined is no reason to drop its registry.
    labels: z.record(z.string(), z.unknown()),
    metricName: z.string().optional(),
  })),
});
type RegistryJson = z.infer<typeof MetricJson>[];
const CollectAnswer = z.object({ type: z.literal(COLLECTED), id: Id, metrics: z.array(MetricJson) });

/** What a scrape of one worker answers: the aggregate text, or (503) why there is none. */
export type MetricsScrape = { ok: true; contentType: string; text: string } | { ok: false; reason: string };

/**
 * Merges the workers' registries, each metric by its `aggregator` (metrics.ts chooses them), and
 * adds how many workers are in the merge and how many are missing from it.
 */
export async function aggregateWorkerRegistries(registries: RegistryJson[], missing: number): Promise<string> {
  const merged = AggregatorRegistry.aggregate(registries);
  const scraped = new Gauge({
    name: SCRAPED_WORKERS_METRIC, help: "Frontend workers whose metrics this scrape holds (answered), and those that did not answer in time (missing)",
    labelNames: ["state"], registers: [merged],
  });
  scraped.set({ state: "answered" }, registries.length);
  scraped.set({ state: "missing" }, missing);
  return merged.metrics();
}

interface PendingCollect {
  waiting: Set<number>;
  arrived: RegistryJson[];
  finish(): void;
}

/**
 * The primary's side: attach() each forked worker. A worker's scrape is answered once every live
 * worker sent its registry, or at the deadline with those that came.
 */
export class WorkerMetricsAggregator {
  private nextId = 0;
  private readonly pending = new Map<number, PendingCollect>();

  constructor(
    private readonly options: {
      /** The workers now forked, by index (a restarting one is absent), and how many there should be. */
      workers(): ReadonlyMap<number, Pick<Worker, "send" | "isConnected">>;
      expected: number;
      timeoutMs?: number;
      /** For tests: a timer to fire by hand. */
      setTimer?(fn: () => void, ms: number): () => void;
    },
  ) {}

  /** Listens to one forked worker: its scrapes, and its registries sent for a scrape in progress. */
  attach(index: number, worker: Pick<Worker, "on" | "send" | "isConnected">): void {
    worker.on("message", (message: unknown) => {
      const scrape = ScrapeRequest.safeParse(message);
      if (scrape.success) {
        // A worker gone meanwhile needs no answer; its scrape's connection went with it.
        void this.collect().then(
          (text) => sendToWorker(worker, { type: SCRAPED, id: scrape.data.id, text }, () => undefined),
          (err: unknown) => sendToWorker(worker, { type: SCRAPED, id: scrape.data.id, error: errorText(err) }, () => undefined),
        );
        return;
      }
      const collected = CollectAnswer.safeParse(message);
      if (collected.success) this.settle(index, collected.data.id, collected.data.metrics);
    });
  }

  /** Every live worker's registry, merged; the deadline bounds the wait. */
  async collect(): Promise<string> {
    const id = this.nextId++;
    const timeoutMs = this.options.timeoutMs ?? WORKER_METRICS_TIMEOUT_MS;
    const arrived = await new Promise<RegistryJson[]>((resolve) => {
      const entry: PendingCollect = { waiting: new Set(), arrived: [], finish: () => undefined };
      const setTimer = this.options.setTimer ?? ((fn, ms) => {
        const timer = setTimeout(fn, ms);
        return () => clearTimeout(timer);
      });
      const cancel = setTimer(() => entry.finish(), timeoutMs);
      entry.finish = () => {
        cancel();
        this.pending.delete(id);
        resolve(entry.arrived);
      };
      this.pending.set(id, entry);
      // Every worker is waited for before the first send, so an early failure cannot finish the collect.
      const asked = [...this.options.workers()].filter(([, worker]) => worker.isConnected());
      for (const [index] of asked) entry.waiting.add(index);
      if (asked.length === 0) return entry.finish();
      // A worker whose channel closed meanwhile (it is exiting) will not answer: stop waiting for it.
      for (const [index, worker] of asked) sendToWorker(worker, { type: COLLECT, id }, () => this.settle(index, id));
    });
    if (arrived.length === 0) throw new Error(`no frontend worker sent its metrics within ${timeoutMs} ms`);
    return aggregateWorkerRegistries(arrived, Math.max(0, this.options.expected - arrived.length));
  }

  /** A worker's registry for collect `id`, or (without one) word that it will not send any. */
  private settle(index: number, id: number, metrics?: RegistryJson): void {
    const entry = this.pending.get(id);
    // Late (after the deadline), unasked or twice: ignored, so no worker counts more than once.
    if (!entry || !entry.waiting.delete(index)) return;
    if (metrics) entry.arrived.push(metrics);
    if (entry.waiting.size === 0) entry.finish();
  }
}

/**
 * A worker's side: answers the primary's requests for this registry, and scrapes the whole frontend
 * through the primary (for GET /metrics). close() stops listening.
 */
export class PrimaryMetricsClient {
  private nextId = 0;
  private readonly waiting = new Map<number, (answer: MetricsScrape) => void>();
  private readonly onMessage = (message: unknown): void => {
    const collect = CollectRequest.safeParse(message);
    if (collect.success) {
      // Nothing to do when it cannot be sent: the primary's deadline stops it waiting for this worker.
      void this.registry.getMetricsAsJSON().then(
        (metrics) => sendToPrimary(this.channel, { type: COLLECTED, id: collect.data.id, metrics }, () => undefined),
        () => undefined,
      );
      return;
    }
    const answer = ScrapeAnswer.safeParse(message);
    if (!answer.success) return;
    const resolve = this.waiting.get(answer.data.id);
    if (!resolve) return;
    resolve("text" in answer.data
      ? { ok: true, contentType: this.registry.contentType, text: answer.data.text }
      : { ok: false, reason: `the frontend's metrics could not be aggregated: ${answer.data.error}` });
  };

  constructor(
    private readonly registry: Registry,
    private readonly channel: Pick<NodeJS.Process, "on" | "off" | "send"> = process,
    private readonly timeoutMs = PRIMARY_METRICS_TIMEOUT_MS,
  ) {
    channel.on("message", this.onMessage);
  }

  scrape(): Promise<MetricsScrape> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish({
        ok: false, reason: `the frontend primary did not answer with the workers' metrics within ${this.timeoutMs} ms`,
      }), this.timeoutMs);
      const finish = (answer: MetricsScrape): void => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(answer);
      };
      this.waiting.set(id, finish);
      sendToPrimary(this.channel, { type: SCRAPE, id }, () => finish({ ok: false, reason: "this frontend worker has no channel to its primary" }));
    });
  }

  close(): void {
    this.channel.off("message", this.onMessage);
    for (const finish of [...this.waiting.values()]) finish({ ok: false, reason: "the frontend worker is stopping" });
  }
}

/**
 * Sends with a callback: without one, a send on a channel that closed (a worker exiting) emits
 * 'error', which would crash the primary.
 */
function sendToWorker(worker: Pick<Worker, "send" | "isConnected">, message: object, failed: () => void): void {
  if (!worker.isConnected()) return failed();
  worker.send(message, (err) => {
    if (err) failed();
  });
}

/** The worker's side of sendToWorker (process.send, present in a cluster worker). */
function sendToPrimary(channel: Pick<NodeJS.Process, "send">, message: object, failed: () => void): void {
  if (!channel.send) return failed();
  channel.send(message, undefined, {}, (err: Error | null) => {
    if (err) failed();
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
