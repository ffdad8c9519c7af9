/** Assembles the query frontend: config watch, RPC server, dispatcher, query processor, HTTP. */
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { listen } from "../shared/listen.js";
import { RpcServer } from "../rpc/rpc-server.js";
import type { ClusterState } from "../shared/state.js";
import { ConfigWatcher } from "./config-watch.js";
import { Dispatcher } from "./dispatcher.js";
import { createQueryServer } from "./http-server.js";
import { FrontendMetrics } from "./metrics.js";
import { ModelCaller } from "./model-caller.js";
import { QueryProcessor } from "./query-processor.js";
import { ReplicaReporter } from "./replica-reporter.js";

export interface QueryFrontendOptions {
  host: string;
  port: number;
  rpcPort: number;
  managementUrl: string;
  token?: string;
  log: Logger;
  maxBodyBytes?: number;
  requestTimeoutMs?: number;
  replicaTimeoutMs?: number;
  defaultMaxBatch?: number;
  frontendId?: string;
  reportIntervalMs?: number;
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
  let state: ClusterState | undefined;
  const dispatcher = new Dispatcher({ defaultMaxBatch: options.defaultMaxBatch ?? 64, log });
  const metrics = new FrontendMetrics({
    queueDepths: () => dispatcher.queueDepths(),
    replicaCounts: () => dispatcher.replicaCounts(),
  });
  dispatcher.setObserver(metrics);

  const rpc = new RpcServer({
    host: options.host,
    port: options.rpcPort,
    replicaTimeoutMs: options.replicaTimeoutMs ?? 30_000,
    log,
    handlers: {
      replicaAdded: (replica) => {
        const batchSize = state?.models[replica.name]?.versions[replica.version]?.batch_size ?? -1;
        dispatcher.setBatchSize(replica.name, replica.version, batchSize);
        dispatcher.replicaAdded(replica);
        reporter.changed();
      },
      replicaRemoved: (replica) => {
        dispatcher.replicaRemoved(replica);
        reporter.changed();
      },
      response: (replica, msgId, outputs) => dispatcher.response(replica, msgId, outputs),
    },
  });
  dispatcher.attach(rpc);

  const reporter = new ReplicaReporter({
    managementUrl: options.managementUrl,
    token: options.token,
    frontendId: options.frontendId ?? randomUUID(),
    log,
    intervalMs: options.reportIntervalMs,
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
    onChange: (next) => {
      state = next;
      for (const model of Object.values(next.models)) {
        for (const v of Object.values(model.versions)) dispatcher.setBatchSize(model.name, v.model_version, v.batch_size);
      }
      log.info({ revision: next.revision }, "configuration updated");
    },
  });

  const caller = new ModelCaller({ dispatcher });
  const processor = new QueryProcessor({ caller, metrics, state: () => state });
  const http = createQueryServer({
    processor,
    metrics,
    log,
    maxBodyBytes: options.maxBodyBytes ?? 10 * 1024 * 1024,
    requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    health: () => ({ status: "ok", management_connected: watcher.connected, revision: state?.revision ?? null }),
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
  const port = (http.address() as AddressInfo).port;
  const shownHost = options.host === "0.0.0.0" ? "127.0.0.1" : options.host;
  return {
    queryUrl: `http://${shownHost}:${port}`,
    port,
    rpcPort: rpc.boundPort,
    state: () => state,
    async close() {
      watcher.close();
      reporter.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await rpc.close();
    },
  };
}
