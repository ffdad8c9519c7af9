/**
 * `--workers N`: N query frontend processes on one query port (node:cluster: the primary accepts
 * connections and hands them round-robin to the workers, since node:http has no SO_REUSEPORT).
 * Each worker is a whole frontend of its own (cache, batching, config watch, live stats) with its
 * own RPC port, `--rpc-port + index`, because a ZeroMQ ROUTER cannot be shared between processes;
 * replicas connect to every worker (CLIPPER_PORT lists the ports). The primary only supervises: a
 * worker that dies after it started is forked again, and a stop signal stops every worker (each
 * closes as a single frontend does). The primary also answers a worker's GET /metrics with every
 * worker's registry merged (cluster-metrics.ts).
 */
import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import { FlagError, type Running } from "../shared/runtime-flags.js";
import { MAX_FRONTEND_WORKERS } from "../shared/frontend-defaults.js";
import { WorkerMetricsAggregator } from "./cluster-metrics.js";

/** The environment variable that tells a forked worker its index (0..N-1). */
export const WORKER_INDEX_ENV = "CLIPPER_FRONTEND_WORKER";
export { MAX_FRONTEND_WORKERS };

const FIRST_RESTART_DELAY_MS = 250;
const MAX_RESTART_DELAY_MS = 10_000;
/** A worker that ran this long before dying restarts after the first delay again. */
const RESTART_RESET_AFTER_MS = 30_000;

/** This process's worker index under a primary; undefined in a primary or a single-process frontend. */
export function workerIndex(env: NodeJS.ProcessEnv = process.env): number | undefined {
  if (cluster.isPrimary) return undefined;
  const text = env[WORKER_INDEX_ENV];
  const index = text !== undefined && /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(index) || index >= MAX_FRONTEND_WORKERS) {
    throw new Error(`a frontend worker needs ${WORKER_INDEX_ENV} from 0 to ${MAX_FRONTEND_WORKERS - 1}, got '${text}'`);
  }
  return index;
}

/**
 * The RPC port of each worker: `rpcPort`, `rpcPort + 1`, ... A fixed base is needed with more than
 * one worker, since replicas must be told every port before the workers bind them.
 */
export function workerRpcPorts(rpcPort: number, workers: number): number[] {
  if (workers === 1) return [rpcPort];
  if (rpcPort === 0) throw new FlagError(`--rpc-port must be a fixed port with --workers ${workers} (worker i listens on rpc-port + i)`);
  if (rpcPort + workers - 1 > 65535) {
    throw new FlagError(`--rpc-port ${rpcPort} leaves no room for ${workers} workers (the last listens on rpc-port + ${workers - 1})`);
  }
  return Array.from({ length: workers }, (_, i) => rpcPort + i);
}

/** A worker's frontend id: the frontend's own id with the worker index, so each reports apart. */
export function workerFrontendId(base: string, index: number): string {
  return `${base}#w${index}`;
}

export interface WorkerSupervisorOptions {
  workers: number;
  log: Logger;
}

/**
 * Forks the workers and resolves once every one is listening; rejects (after stopping the others)
 * when a worker exits before it ever listened, e.g. on a bad flag or a port in use, since forking
 * it again would fail the same way.
 */
export async function superviseWorkers(options: WorkerSupervisorOptions): Promise<Running> {
  const { log, workers } = options;
  const live = new Map<number, Worker>();
  let stopping = false;
  let started = false;
  let failStart: (err: Error) => void = () => undefined;
  const restarts = new Map<number, { delayMs: number }>();
  // GET /metrics on any worker answers them all (cluster-metrics.ts).
  const metrics = new WorkerMetricsAggregator({ workers: () => live, expected: workers });

  const fork = (index: number): void => {
    const worker = cluster.fork({ [WORKER_INDEX_ENV]: String(index) });
    const forkedAt = Date.now();
    let listened = false;
    live.set(index, worker);
    metrics.attach(index, worker);
    worker.on("listening", () => {
      // The query port, shared through the primary; the worker bound its RPC port just before.
      if (listened) return;
      listened = true;
      listening.add(index);
      if (!started && listening.size === workers) onAllListening();
    });
    worker.on("exit", (code, signal) => {
      if (live.get(index) === worker) live.delete(index);
      listening.delete(index);
      if (stopping) return;
      if (!started) {
        failStart(new Error(`frontend worker ${index} exited during startup (${signal ?? `code ${code}`}); see its log lines above`));
        return;
      }
      const ranMs = Date.now() - forkedAt;
      const previous = restarts.get(index)?.delayMs ?? 0;
      const delayMs = ranMs >= RESTART_RESET_AFTER_MS || previous === 0
        ? FIRST_RESTART_DELAY_MS
        : Math.min(previous * 2, MAX_RESTART_DELAY_MS);
      restarts.set(index, { delayMs });
      log.error({ worker: index, pid: worker.process.pid, code, signal, ranMs, restartInMs: delayMs }, "frontend worker died; restarting it");
      setTimeout(() => {
        if (!stopping) fork(index);
      }, delayMs);
    });
  };

  const stopAll = async (): Promise<void> => {
    stopping = true;
    const exits = [...live.values()].map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.isDead()) return resolve();
          worker.once("exit", () => resolve());
          // SIGTERM rather than disconnect(): the worker closes as a single frontend does (runMain).
          worker.process.kill("SIGTERM");
        }),
    );
    await Promise.all(exits);
  };

  const listening = new Set<number>();
  let onAllListening: () => void = () => undefined;
  const ready = new Promise<void>((resolve, reject) => {
    onAllListening = resolve;
    failStart = reject;
  });
  for (let i = 0; i < workers; i++) fork(i);
  try {
    await ready;
  } catch (err) {
    await stopAll();
    throw err;
  }
  started = true;
  log.info({ workers, pids: [...live.values()].map((w) => w.process.pid) }, "query frontend workers listening");
  return { stop: stopAll };
}
