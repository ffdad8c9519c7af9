/**
 * Entry of the Node model container: `node dist/runtime/container-node/main.js`. It logs JSON lines
 * on stdout (level, time, component "container-node", model, msg), its reasons to exit included,
 * in the same shape as the Python runtime and every other process.
 * Exit codes: 2 bad environment, 1 the predict module cannot be loaded, 3 the predict function
 * fails its warm-up (CLIPPER_WARMUP_INPUT, warmup.ts), 0 after SIGTERM/SIGINT. A stop signal drains
 * (rpc-client.ts drainAndStop, bounded by CLIPPER_DRAIN_TIMEOUT_MS per acknowledgement; 0 stops at
 * once); a second signal stops at once. With a warm-up, it
 * predicts the warm-up batches before it connects to any frontend.
 * With CLIPPER_FRONTEND_DISCOVERY=dns it keeps one connection per address CLIPPER_IP resolves to
 * (frontend-discovery.ts); otherwise one, to CLIPPER_IP:CLIPPER_PORT.
 */
import { rmSync, writeFileSync } from "node:fs";
import { createLogger, type Logger } from "../shared/logger.js";
import { EnvError, frontendAddress, parseContainerEnv, type ContainerConfig } from "./env.js";
import { PredictLoadError, loadPredict } from "./load-predict.js";
import { createPredictHandler } from "./predict-handler.js";
import { FrontendSet, staticLookup, type FrontendClient } from "./frontend-discovery.js";
import { ContainerRpcClient, oneAtATime } from "./rpc-client.js";
import { WarmupError, warmUp } from "./warmup.js";

/** Every line this process writes, its last words included: the log's JSON shape (runtime/shared/logger.ts). */
const baseLog = createLogger("container-node");

/** Says why the container cannot go on, as one log line, and exits (pino flushes on exit). */
function exitWith(log: Logger, code: number, message: string, stack?: string): never {
  log.error(stack ? { stack } : {}, message);
  process.exit(code);
}

async function main(): Promise<void> {
  let config: ContainerConfig;
  try {
    config = parseContainerEnv(process.env);
  } catch (err) {
    if (!(err instanceof EnvError)) throw err;
    exitWith(baseLog, 2, err.message);
  }

  const model = `${config.modelName}:${config.modelVersion}`;
  // The RPC client puts the model on its own lines.
  const log = baseLog.child({ model });

  let loaded;
  try {
    loaded = await loadPredict(config.predict, config.modelPath);
  } catch (err) {
    const message = err instanceof PredictLoadError ? err.message : `cannot load the predict module: ${String(err)}`;
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : undefined;
    exitWith(log, 1, message, cause?.stack);
  }
  log.info({ file: loaded.file, export: loaded.exportName, inputType: config.inputType }, "loaded the predict function");

  let ready = false;
  // One predict at a time, whichever frontend the batch came from.
  const handleBatch = oneAtATime(
    createPredictHandler({
      predict: loaded.predict,
      modelName: config.modelName,
      modelVersion: config.modelVersion,
      inputType: config.inputType,
    }),
  );
  if (config.warmup) {
    try {
      await warmUp({ handleBatch, warmup: config.warmup, inputType: config.inputType, log });
    } catch (err) {
      if (!(err instanceof WarmupError)) throw err;
      exitWith(log, 3, err.message);
    }
    log.info({ batches: config.warmup.batches }, "warmed up; connecting");
  }
  const connect = (address: string): ContainerRpcClient =>
    new ContainerRpcClient({
      address,
      metadata: { name: config.modelName, version: config.modelVersion, inputType: config.inputType },
      handleBatch,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      reconnectAfterMs: config.reconnectAfterMs,
      rpcSecret: config.rpcSecret,
      logger: baseLog,
      // Registered with at least one frontend: ready.
      onRegistered: () => {
        if (ready) return;
        try {
          writeFileSync(config.readyFile, `${model}\n`);
          ready = true;
          log.info({ readyFile: config.readyFile }, "wrote the readiness file");
        } catch (err) {
          log.warn({ readyFile: config.readyFile, reason: (err as Error).message }, "cannot write the readiness file");
        }
      },
    });
  // One connection per frontend worker and, with DNS discovery, per frontend address.
  const client: FrontendClient =
    config.frontendDiscovery === "dns" || config.ports.length > 1
      ? new FrontendSet({
          hosts: config.hosts,
          ports: config.ports,
          ...(config.frontendDiscovery === "none" ? { lookup: staticLookup } : {}),
          intervalMs: config.discoveryIntervalMs,
          goneAfterMs: config.reconnectAfterMs,
          createClient: connect,
          model,
          logger: baseLog,
        })
      : connect(frontendAddress(config));

  const exit = (): void => {
    try {
      if (ready) rmSync(config.readyFile, { force: true });
    } catch (err) {
      log.warn({ readyFile: config.readyFile, reason: (err as Error).message }, "cannot remove the readiness file");
    }
    process.exit(0);
  };
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, "second stop signal: stopping without waiting for the batches held");
      void client.stop().finally(exit);
      return;
    }
    stopping = true;
    log.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, "shutting down");
    const stopped = config.drainTimeoutMs > 0 ? client.drainAndStop(config.drainTimeoutMs) : client.stop();
    void stopped.finally(exit);
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);

  client.start();
}

main().catch((err: unknown) => {
  exitWith(baseLog, 1, `the container failed: ${err instanceof Error ? err.message : String(err)}`, err instanceof Error ? err.stack : undefined);
});
