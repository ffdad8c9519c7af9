/** Process entry of the query frontend: `node dist/runtime/frontend/main.js --help` for flags. */
import { createLogger } from "../shared/logger.js";
import { allowedHostsFlag, choiceFlag, intFlag, parseFlags, readTokenFile, requireFlag, runMain } from "../shared/runtime-flags.js";
import { defaultQueryAuth, QUERY_AUTH_MODES } from "../shared/api-keys.js";
import { DEFAULT_RPC_AUTH, RPC_AUTH_MODES } from "../shared/rpc-auth.js";
import {
  DEFAULT_BATCH_BUDGET_MS,
  DEFAULT_CACHE_BYTES,
  DEFAULT_MAX_BATCH,
  DEFAULT_MAX_IN_FLIGHT,
  MAX_MAX_IN_FLIGHT,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_RPC_FRAME_BYTES,
  DEFAULT_OIP_TIMEOUT_MS,
  DEFAULT_REPLICA_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  MIN_RPC_FRAME_BYTES,
} from "../shared/frontend-defaults.js";
import { defaultFrontendId, startQueryFrontend } from "./frontend.js";
import { defaultMaxConnections, MAX_MAX_CONNECTIONS } from "../shared/connection-limit.js";
import { MAX_FRONTEND_WORKERS, superviseWorkers, workerFrontendId, workerIndex, workerRpcPorts } from "./workers.js";

const USAGE = `usage: frontend --management-url URL [--host 127.0.0.1] [--port 1337] [--rpc-port 7000]
  [--token-file FILE] [--max-body-bytes N] [--request-timeout-ms N] [--replica-timeout-ms N]
  [--max-connections N (open query connections per process; default ${defaultMaxConnections()}: the descriptor limit less a tenth, at least 128)]
  [--workers N (frontend processes on the query port, 1 to ${MAX_FRONTEND_WORKERS}; default 1; worker i takes RPC port rpc-port + i)]
  [--max-batch N] [--max-in-flight N (batches in flight to one replica, 1 to ${MAX_MAX_IN_FLIGHT}; default ${DEFAULT_MAX_IN_FLIGHT})] [--frontend-id ID] [--cache-bytes N (prediction cache bound, default ${DEFAULT_CACHE_BYTES / 2 ** 20} MiB; 0 disables)]
  [--oip-timeout-ms N (deadline of /v2 inference on a model no application links; default ${DEFAULT_OIP_TIMEOUT_MS})]
  [--batch-budget-ms N (batch latency budget of a model no application links; default ${DEFAULT_BATCH_BUDGET_MS})]
  [--no-admission (queue every query, even one that cannot meet its SLO)]
  [--allowed-hosts NAME,... (Host names admitted besides loopback names and IP addresses; '*': any)]
  [--query-auth none|keys (API keys on predict/update/OIP; default: none on a loopback --host, keys beyond)]
  [--rpc-auth plain|none (who may register as a replica; default ${DEFAULT_RPC_AUTH}: containers holding a credential derived from the rpc key)]
  [--rpc-key-file FILE (the cluster's rpc key; required with --rpc-auth plain)]
  [--max-rpc-frame-bytes N (a container sending a bigger frame is disconnected; default ${DEFAULT_MAX_RPC_FRAME_BYTES / 2 ** 20} MiB)]`;

await runMain("clipper frontend", async () => {
  const flags = parseFlags(process.argv.slice(2), {
    help: { type: "boolean", short: "h" },
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    "rpc-port": { type: "string" },
    workers: { type: "string" },
    "management-url": { type: "string" },
    "token-file": { type: "string" },
    "max-body-bytes": { type: "string" },
    "request-timeout-ms": { type: "string" },
    "max-connections": { type: "string" },
    "replica-timeout-ms": { type: "string" },
    "max-batch": { type: "string" },
    "max-in-flight": { type: "string" },
    "frontend-id": { type: "string" },
    "cache-bytes": { type: "string" },
    "oip-timeout-ms": { type: "string" },
    "batch-budget-ms": { type: "string" },
    "no-admission": { type: "boolean" },
    "allowed-hosts": { type: "string" },
    "query-auth": { type: "string" },
    "rpc-auth": { type: "string", default: DEFAULT_RPC_AUTH },
    "rpc-key-file": { type: "string" },
    "max-rpc-frame-bytes": { type: "string" },
  });
  if (flags.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const rpcAuth = choiceFlag("rpc-auth", flags["rpc-auth"], RPC_AUTH_MODES, DEFAULT_RPC_AUTH);
  const rpcKey = rpcAuth === "plain" ? readTokenFile(requireFlag("rpc-key-file", flags["rpc-key-file"]), "rpc-key-file") : undefined;
  const host = flags.host ?? "127.0.0.1";
  const queryAuth = choiceFlag("query-auth", flags["query-auth"], QUERY_AUTH_MODES, defaultQueryAuth(host));
  const port = intFlag("port", flags.port, 1337, 0, 65535);
  const workers = intFlag("workers", flags.workers, 1, 1, MAX_FRONTEND_WORKERS);
  const maxConnections = intFlag("max-connections", flags["max-connections"], defaultMaxConnections(), 1, MAX_MAX_CONNECTIONS);
  const rpcPorts = workerRpcPorts(intFlag("rpc-port", flags["rpc-port"], 7000, 0, 65535), workers);
  const worker = workers > 1 ? workerIndex() : undefined;
  if (workers > 1 && worker === undefined) {
    // The primary: validated the flags above, so a bad one fails here once rather than in every worker.
    return superviseWorkers({ workers, log: createLogger("frontend") });
  }
  const log = worker === undefined ? createLogger("frontend") : createLogger("frontend").child({ worker });
  const frontendId = worker === undefined
    ? flags["frontend-id"]
    : workerFrontendId(flags["frontend-id"] ?? defaultFrontendId(port), worker);
  const frontend = await startQueryFrontend({
    host,
    port,
    rpcPort: rpcPorts[worker ?? 0]!,
    managementUrl: requireFlag("management-url", flags["management-url"]),
    token: readTokenFile(flags["token-file"]),
    maxBodyBytes: intFlag("max-body-bytes", flags["max-body-bytes"], DEFAULT_MAX_BODY_BYTES, 1),
    requestTimeoutMs: intFlag("request-timeout-ms", flags["request-timeout-ms"], DEFAULT_REQUEST_TIMEOUT_MS, 1),
    maxConnections,
    replicaTimeoutMs: intFlag("replica-timeout-ms", flags["replica-timeout-ms"], DEFAULT_REPLICA_TIMEOUT_MS, 100),
    defaultMaxBatch: intFlag("max-batch", flags["max-batch"], DEFAULT_MAX_BATCH, 1),
    maxInFlight: intFlag("max-in-flight", flags["max-in-flight"], DEFAULT_MAX_IN_FLIGHT, 1, MAX_MAX_IN_FLIGHT),
    frontendId,
    cacheBytes: intFlag("cache-bytes", flags["cache-bytes"], DEFAULT_CACHE_BYTES, 0),
    oipTimeoutMs: intFlag("oip-timeout-ms", flags["oip-timeout-ms"], DEFAULT_OIP_TIMEOUT_MS, 1),
    defaultBatchBudgetMs: intFlag("batch-budget-ms", flags["batch-budget-ms"], DEFAULT_BATCH_BUDGET_MS, 1),
    admission: !flags["no-admission"],
    allowedHosts: allowedHostsFlag(flags["allowed-hosts"]),
    queryAuth,
    rpcAuth,
    rpcKey,
    maxRpcFrameBytes: intFlag("max-rpc-frame-bytes", flags["max-rpc-frame-bytes"], DEFAULT_MAX_RPC_FRAME_BYTES, MIN_RPC_FRAME_BYTES),
    clusterWorker: worker !== undefined,
    log,
  });
  log.info({ query: frontend.queryUrl, rpcPort: frontend.rpcPort, queryAuth, frontendId }, "query frontend listening");
  return { stop: () => frontend.close() };
});
