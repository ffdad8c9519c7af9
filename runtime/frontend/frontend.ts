/** Assembles the query frontend: config watch, RPC server, dispatcher, query processor, HTTP. */
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "pino";
import { listen } from "../shared/listen.js";
import { defaultQueryAuth, type QueryAuthMode } from "../shared/api-keys.js";
import { parseAllowedHosts } from "../shared/host-check.js";
import { RpcServer, type RpcServerAuth } from "../rpc/rpc-server.js";
import type { RpcAuthMode } from "../shared/rpc-auth.js";
import type { ClusterState } from "../shared/state.js";
import { ConfigWatcher } from "./config-watch.js";
import { batchConfig } from "./batch-controller.js";
import { type ConfigChange, FrontendConfig } from "./frontend-config.js";
import { own } from "../shared/dict.js";
import { Dispatcher } from "./dispatcher.js";
import { createQueryServer } from "./http-server.js";
import { FrontendMetrics } from "./metrics.js";
import { MetricNames, type RemovedNames, removedByDelta, removedNames, removesAnything } from "./metric-names.js";
import { ModelCaller } from "./model-caller.js";
import { OipHandler } from "./oip/handler.js";
import {
  DEFAULT_BATCH_BUDGET_MS,
  DEFAULT_MAX_BATCH,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_RPC_FRAME_BYTES,
  DEFAULT_OIP_TIMEOUT_MS,
  DEFAULT_REPLICA_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
} from "../shared/frontend-defaults.js";
import { CacheMetrics } from "./cache-metrics.js";
import { PrimaryMetricsClient } from "./cluster-metrics.js";
import { PredictionCache } from "./prediction-cache.js";
import { httpPolicyStateSender, PolicyRegistry, PolicyStateSync } from "./policies/index.js";
import { QueryAuth } from "./query-auth.js";
import { QueryProcessor } from "./query-processor.js";
import { ReplicaReporter } from "./replica-reporter.js";
import { LiveStatsCollector } from "./live-stats-collector.js";
import { LiveStatsReporter } from "./live-stats-reporter.js";
import { DEFAULT_LIVE_STATS_INTERVAL_MS } from "../shared/live-stats.js";
import { scalesFromZero } from "../shared/autoscaling.js";
import { ShadowMirror } from "./shadow-mirror.js";
import { ShadowRecorder } from "./shadow-recorder.js";
import { QueryLogRecorder } from "./query-log-recorder.js";
import { QueryLogShipper } from "./query-log-shipper.js";

export interface QueryFrontendOptions {
  host: string;
  port: number;
  rpcPort: number;
  managementUrl: string;
  token?: string;
  log: Logger;
  maxBodyBytes?: number;
  requestTimeoutMs?: number;
  /** Open query connections at most (shared/http-guard.ts); default below the descriptor limit (shared/connection-limit.ts). */
  maxConnections?: number;
  replicaTimeoutMs?: number;
  defaultMaxBatch?: number;
  /** Batches kept in flight to one replica (dispatcher.ts; default DEFAULT_MAX_IN_FLIGHT). */
  maxInFlight?: number;
  /** Batch latency budget of a model version no application links, ms (default 50; see batch-controller.ts). */
  defaultBatchBudgetMs?: number;
  /** Deadline-aware admission: shed queries that cannot meet their SLO (default true; see admission.ts). */
  admission?: boolean;
  /** How the daemon knows this frontend (replica reports, applied revisions); default `<hostname>:<port>`. */
  frontendId?: string;
  reportIntervalMs?: number;
  /** How often a live stats sample is taken and sent to the daemon, ms (default 2000; shared/live-stats.ts). */
  liveStatsIntervalMs?: number;
  /** How long learned policy weights wait before being saved in the management daemon, ms (default 250). */
  policyFlushMs?: number;
  /** Deadline of an Open Inference Protocol request to a model no application links (default 1000). */
  oipTimeoutMs?: number;
  /** Byte bound of the prediction cache; 0 or absent disables it (the CLI and main.ts default to 64 MiB). */
  cacheBytes?: number;
  /** Uniform in [0, 1) for the selection policies' draws (default Math.random); seeded in tests. */
  random?: () => number;
  /** Host names admitted besides loopback names, IP addresses and `host` (shared/host-check.ts); `*`: any. */
  allowedHosts?: readonly string[];
  /** API keys on the query API (query-auth.ts); default: `none` on loopback, `keys` beyond. */
  queryAuth?: QueryAuthMode;
  /** Who may register as a replica on the RPC port (runtime/shared/rpc-auth.ts); "plain" needs `rpcKey`. */
  rpcAuth: RpcAuthMode;
  /** The cluster's RPC key (generateRpcKey), with rpcAuth "plain". */
  rpcKey?: string;
  /** Largest frame a container may send (default DEFAULT_MAX_RPC_FRAME_BYTES, 64 MiB). */
  maxRpcFrameBytes?: number;
  /** A worker under a --workers primary (workers.ts): GET /metrics answers all workers, aggregated by the primary. */
  clusterWorker?: boolean;
  /** Queries a version scaled to zero may hold waiting for its first replica (default 1024; model-caller.ts). */
  maxWaitingForFirstReplica?: number;
  /** How often sampled queries go to the daemon's query log, ms (default 1000; query-log-shipper.ts). */
  queryLogFlushMs?: number;
}

export interface RunningFrontend {
  queryUrl: string;
  port: number;
  rpcPort: number;
  state(): ClusterState | undefined;
  close(): Promise<void>;
}

export async function startQueryFrontend(options: QueryFrontendOptions): Promise<RunningFrontend> {
  const { log } = options;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  // The frontend's own copy of the configuration, changed in place by each delta (frontend-config.ts).
  const config = new FrontendConfig();
  const state = (): ClusterState | undefined => config.state;
  const budgets = { defaultBudgetMs: options.defaultBatchBudgetMs ?? DEFAULT_BATCH_BUDGET_MS };
  const dispatcher = new Dispatcher({
    defaultMaxBatch: options.defaultMaxBatch ?? DEFAULT_MAX_BATCH, log, defaultBudgetMs: budgets.defaultBudgetMs, admission: options.admission,
    maxInFlight: options.maxInFlight,
  });
  // Learned bandit weights, saved in the management daemon and restored from its snapshots.
  const policyState = new PolicyStateSync({
    send: httpPolicyStateSender(options.managementUrl, options.token), flushDelayMs: options.policyFlushMs, log,
  });
  // Label values only from the configuration's names (docs/metrics.md, "Bounded labels").
  const names = MetricNames.of(state);
  const metrics = new FrontendMetrics({
    policyWeights: () => policyState.appWideWeights(),
    queueDepths: () => dispatcher.queueDepths(),
    replicaCounts: () => dispatcher.replicaCounts(),
    batchCaps: () => dispatcher.batchCaps(),
  }, names);
  dispatcher.setObserver(metrics);
  const shadowRecorder = new ShadowRecorder(metrics.registry, names);
  const live = new LiveStatsCollector({
    shadows: () => shadowRecorder.take(),
    versions: () => dispatcher.liveVersions(),
    sloMs: (app) => {
      const record = own(config.state?.applications, app);
      return record ? record.latency_slo_micros / 1000 : null;
    },
  });
  metrics.live = live;
  const caching = createCache(options.cacheBytes ?? 0, metrics, live, names);
  const cache = caching?.cache;
  /** Drops the series of names a configuration change removed (apps, versions, whole models). */
  const forgetSeries = (removed: RemovedNames): void => {
    if (!removesAnything(removed)) return;
    caching?.metrics.forget(removed.versions);
    void metrics.forget(removed);
  };
  const allowedHosts = parseAllowedHosts(options.allowedHosts, options.host);
  const queryAuth = new QueryAuth(options.queryAuth ?? defaultQueryAuth(options.host));

  const rpc = new RpcServer({
    host: options.host,
    port: options.rpcPort,
    replicaTimeoutMs: options.replicaTimeoutMs ?? DEFAULT_REPLICA_TIMEOUT_MS,
    auth: rpcAuth(options),
    maxFrameBytes: options.maxRpcFrameBytes ?? DEFAULT_MAX_RPC_FRAME_BYTES,
    expectedInputType: (name, version) => recordedVersion(config.state, name, version)?.input_type,
    log,
    handlers: {
      replicaAdded: (replica) => {
        const record = recordedVersion(config.state, replica.name, replica.version);
        dispatcher.configure(replica.name, replica.version, batchConfig(record, config.tightestSloMicros(replica.name), budgets));
        dispatcher.replicaAdded(replica);
        reporter.changed();
        // A version's first replica: the autoscaler times a scale from zero by the sample that shows it.
        if (dispatcher.liveReplicaCount(replica.name, replica.version) === 1) liveReporter.reportSoon();
      },
      replicaRemoved: (replica) => {
        dispatcher.replicaRemoved(replica);
        reporter.changed();
      },
      replicaDraining: (replica) => {
        dispatcher.replicaDraining(replica);
        reporter.changed();
      },
      response: (replica, msgId, outputs) => dispatcher.response(replica, msgId, outputs),
      // Answers a lying replica gave must not outlive it.
      replicaBanned: (replica) => cache?.evictReplica(replica.key),
    },
  });
  dispatcher.attach(rpc);

  const frontendId = options.frontendId ?? defaultFrontendId(options.port);
  const liveReporter = new LiveStatsReporter({
    managementUrl: options.managementUrl, token: options.token, log, frontendId, collector: live,
    intervalMs: options.liveStatsIntervalMs ?? DEFAULT_LIVE_STATS_INTERVAL_MS,
  });
  // Sampled queries and feedback for the daemon's query log (docs/rollouts.md#query-log).
  const queryLog = new QueryLogRecorder({ frontendId });
  const queryLogShipper = new QueryLogShipper({
    managementUrl: options.managementUrl, token: options.token, log, frontendId, recorder: queryLog, registry: metrics.registry, names,
    intervalMs: options.queryLogFlushMs,
  });
  const reporter = new ReplicaReporter({
    managementUrl: options.managementUrl,
    token: options.token,
    frontendId,
    log,
    intervalMs: options.reportIntervalMs,
    applied: () => watcher.applied,
    replicas: () =>
      rpc.liveReplicas().map((r) => ({
        model_id: `${r.name}:${r.version}`,
        model_name: r.name,
        model_version: r.version,
        model_replica_id: r.replicaId,
        input_type: r.inputType,
      })),
  });

  const watcher = new ConfigWatcher({
    managementUrl: options.managementUrl,
    token: options.token,
    log,
    onSnapshot: (next) => {
      const before = config.state;
      applyConfig(config.replace(next), removedNames(before, next));
    },
    onDelta: (delta) => {
      const change = config.apply(delta);
      applyConfig(change, removedByDelta(change));
    },
    onApplied: () => reporter.reportNow(),
    observeApply: (kind, cpuSeconds, revision) => metrics.configApplied(kind, cpuSeconds, revision),
  });

  /** Tells each component what a snapshot (everything) or a delta (only what it names) changed. */
  function applyConfig(change: ConfigChange, removed: RemovedNames): void {
    const next = change.state;
    forgetSeries(removed);
    const affected = change.snapshot ? undefined : FrontendConfig.affectedModels(change);
    if (change.snapshot) cache?.reconcile(next);
    else cache?.reconcileModels(next, change.models);
    if (change.apiKeys) queryAuth.onState(next);
    if (change.snapshot) queryLog.configure(next);
    else if (change.queryLogs.size > 0) queryLog.configureApps(next, change.queryLogs);
    if (change.snapshot || change.models.size > 0) rpc.recheckInputTypes(change.snapshot ? undefined : new Set(change.models.keys()));
    if (change.snapshot) policyState.onSnapshot(next);
    else if (change.apps.size > 0 || change.policyStates.size > 0) policyState.onApps(next, new Set([...change.apps.keys(), ...change.policyStates]));
    // A version's batching depends on its record and on the SLOs of the applications linking its model.
    for (const name of affected ?? Object.keys(next.models)) configureVersions(name);
    if (change.snapshot) log.info({ revision: next.revision }, "configuration updated");
    else log.debug({ revision: next.revision, changes: change.apps.size + change.models.size }, "configuration changed");
  }

  function configureVersions(name: string): void {
    const model = own(config.state?.models, name);
    if (!model) return;
    const tightest = config.tightestSloMicros(name);
    for (const v of Object.values(model.versions)) dispatcher.configure(name, v.model_version, batchConfig(v, tightest, budgets));
  }

  // Shadow versions (docs/rollouts.md): copies go through the same caller, without being copied again.
  const shadows = new ShadowMirror({
    state, sink: shadowRecorder, random: options.random,
    call: (model, inputType, input, deadline) => caller.callWithoutShadow(model, inputType, input, deadline),
  });
  const caller: ModelCaller = new ModelCaller({
    dispatcher, cache, maxWaitingForFirstReplica: options.maxWaitingForFirstReplica, shadows,
    // Read from the state the daemon publishes, beside the version records (whose text is the cache's fingerprint).
    scalesFromZero: (model) => scalesFromZero(config.state?.autoscaling, model.name, model.version),
    // The autoscaler learns of it from the live stats: at once rather than up to an interval later.
    firstWaiting: () => liveReporter.reportSoon(),
  });
  const policies = new PolicyRegistry({ weights: policyState, metrics, random: options.random });
  const processor = new QueryProcessor({ caller, metrics, state, policies, queryLog });
  const workerMetrics = options.clusterWorker ? new PrimaryMetricsClient(metrics.registry) : undefined;
  const http = createQueryServer({
    processor,
    metrics,
    scrapeMetrics: workerMetrics && (() => workerMetrics.scrape()),
    log,
    maxBodyBytes,
    requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    maxConnections: options.maxConnections,
    allowedHosts,
    token: options.token,
    auth: queryAuth,
    health: () => ({ status: "ok", management_connected: watcher.connected, revision: config.state?.revision ?? null }),
    oip: new OipHandler({
      caller, state, log, registry: metrics.registry,
      maxBodyBytes, defaultTimeoutMs: options.oipTimeoutMs ?? DEFAULT_OIP_TIMEOUT_MS,
    }),
  });

  await rpc.start();
  try {
    await listen(http, options.port, options.host, log);
  } catch (err) {
    await rpc.close();
    throw err;
  }
  watcher.start();
  reporter.start();
  liveReporter.start();
  queryLogShipper.start();
  const port = (http.address() as AddressInfo).port;
  const shownHost = options.host === "0.0.0.0" ? "127.0.0.1" : options.host;
  return {
    queryUrl: `http://${shownHost}:${port}`,
    port,
    rpcPort: rpc.boundPort,
    state,
    async close() {
      watcher.close();
      liveReporter.close();
      await queryLogShipper.close(); // the last sampled queries, while the daemon may still take them
      await reporter.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      workerMetrics?.close();
      await rpc.close();
      await policyState.close(); // a last attempt to save learned weights
    },
  };
}

/**
 * Stable across restarts on a fixed port (the supervisor's, a container's, a pod's), so a frontend
 * that crashed and came back replaces its own entry at the daemon instead of leaving a silent one
 * that writes would wait for until the report TTL forgets it. Port 0 (tests): a fresh id.
 */
export function defaultFrontendId(port: number): string {
  return port === 0 ? randomUUID() : `${hostname()}:${port}`;
}

function rpcAuth(options: QueryFrontendOptions): RpcServerAuth {
  if (options.rpcAuth === "none") return { mode: "none" };
  if (!options.rpcKey) throw new Error("rpc auth 'plain' needs the cluster's rpc key");
  return { mode: "plain", key: options.rpcKey };
}

/** A version's record in the configuration; own properties only (names are user input). */
function recordedVersion(state: ClusterState | undefined, name: string, version: string) {
  return own(own(state?.models, name)?.versions, version);
}

function createCache(
  maxBytes: number, metrics: FrontendMetrics, live: LiveStatsCollector, names: MetricNames,
): { cache: PredictionCache; metrics: CacheMetrics } | undefined {
  if (maxBytes <= 0) return undefined;
  const observer = new CacheMetrics(metrics.registry, () => ({ bytes: cache.bytes, entries: cache.entries, maxBytes }), live, names);
  const cache: PredictionCache = new PredictionCache({ maxBytes, observer });
  return { cache, metrics: observer };
}
