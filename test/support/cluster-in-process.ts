/**
 * A management daemon and a query frontend started in this process on 127.0.0.1 (ports chosen by
 * the OS), with containers that speak RPC v3 through our Node container client. Every piece is the
 * real one; only process boundaries are skipped, which keeps these tests fast.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { seededRandom } from "../../runtime/frontend/policies/random.js";
import { AdminClient } from "../../src/admin-client.js";
import { startManagementServer, type ManagementServer } from "../../runtime/management/server.js";
import { startQueryFrontend, type RunningFrontend } from "../../runtime/frontend/frontend.js";
import { ContainerRpcClient, type BatchHandler } from "../../runtime/container-node/rpc-client.js";
import { decodeInput, type InputType } from "../../runtime/shared/input-types.js";
import type { QueryAuthMode } from "../../runtime/shared/api-keys.js";
import { generateRpcKey, versionSecret, type RpcAuthMode } from "../../runtime/shared/rpc-auth.js";

export interface InProcessCluster {
  management: ManagementServer;
  frontend: RunningFrontend;
  admin: AdminClient;
  stateDir: string;
  containers: ContainerRpcClient[];
  /** The cluster's RPC key; replicas get their credential from it (with rpcAuth "plain", the default). */
  rpcKey: string;
  /** Starts a container for a model version; resolves once the frontend has registered it. */
  addContainer(name: string, version: string, inputType: InputType, handle: BatchHandler): Promise<ContainerRpcClient>;
  predict(app: string, body: unknown): Promise<{ status: number; body: any; ms: number }>;
  /** Waits until the frontend has seen a configuration revision satisfying the check. */
  waitForConfig(check: (f: RunningFrontend) => boolean): Promise<void>;
  close(): Promise<void>;
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The set-up of most query-path tests: application "app" (doubles, 5 s SLO) linked to model "m"
 * version 1 (no container: the test adds one), once the frontend has seen the link.
 */
export async function addLinkedModel(cluster: InProcessCluster): Promise<void> {
  await cluster.admin.postText("/admin/add_app", { name: "app", input_type: "doubles", default_output: "-1.0", latency_slo_micros: 5_000_000 });
  await cluster.admin.postText("/admin/add_model", {
    model_name: "m", model_version: "1", labels: [], input_type: "doubles",
    container_name: "NO_CONTAINER", model_data_path: "x", batch_size: -1,
  });
  await cluster.admin.postText("/admin/add_model_links", { app_name: "app", model_names: ["m"] });
  await cluster.waitForConfig((f) => f.state()?.models.m?.current_version === "1");
}

/** Sums each doubles input, as Clipper's examples do, answering "6.0"-style strings. */
export const sumHandler: BatchHandler = (batch) =>
  batch.inputs.map((raw) => {
    const xs = decodeInput(batch.inputType, raw) as number[];
    return xs.reduce((a, b) => a + b, 0).toFixed(1);
  });

export async function startInProcessCluster(
  options: {
    replicaTimeoutMs?: number; frontendMaxBody?: number; cacheBytes?: number; queryAuth?: QueryAuthMode; allowedHosts?: string[];
    rpcAuth?: RpcAuthMode; maxRpcFrameBytes?: number;
    /** The cluster's RPC key (default: a new one), e.g. the key a manager under test hands its replicas credentials from. */
    rpcKey?: string;
    /** The frontend's and daemon's logger (default: silent, or CLIPPER_TEST_LOG's level). */
    log?: Logger;
    /** How often the frontend reports its live stats to the daemon (default: the frontend's, 2 s). */
    liveStatsIntervalMs?: number;
  } = {},
): Promise<InProcessCluster> {
  const rpcKey = options.rpcKey ?? generateRpcKey();
  const rpcAuth = options.rpcAuth ?? "plain";
  const stateDir = mkdtempSync(join(tmpdir(), "clipper-mgmt-"));
  const log = options.log ?? pino({ level: process.env.CLIPPER_TEST_LOG ?? "silent" });
  const management = await startManagementServer({ host: "127.0.0.1", port: 0, stateDir, logger: log, allowedHosts: options.allowedHosts });
  const frontend = await startQueryFrontend({
    host: "127.0.0.1", port: 0, rpcPort: 0, managementUrl: management.url, log,
    replicaTimeoutMs: options.replicaTimeoutMs, maxBodyBytes: options.frontendMaxBody, reportIntervalMs: 500,
    cacheBytes: options.cacheBytes, queryAuth: options.queryAuth, allowedHosts: options.allowedHosts,
    rpcAuth, rpcKey, maxRpcFrameBytes: options.maxRpcFrameBytes, liveStatsIntervalMs: options.liveStatsIntervalMs,
    // The policies' draws are seeded, so a statistical assertion on their choices gives the same
    // answer on every run instead of failing now and then.
    random: seededRandom(1),
  });
  const admin = new AdminClient({ managementUrl: management.url });
  const containers: ContainerRpcClient[] = [];
  await waitFor(() => frontend.state() !== undefined, 10_000, "the frontend's first configuration");

  return {
    management, frontend, admin, stateDir, containers, rpcKey,
    async addContainer(name, version, inputType, handle) {
      let registered = false;
      const client = new ContainerRpcClient({
        address: `tcp://127.0.0.1:${frontend.rpcPort}`,
        metadata: { name, version, inputType },
        handleBatch: handle,
        heartbeatIntervalMs: 200,
        rpcSecret: rpcAuth === "plain" ? versionSecret(rpcKey, { name, version, inputType }) : undefined,
        onRegistered: () => { registered = true; },
      });
      client.start();
      containers.push(client);
      await waitFor(() => registered, 10_000, `${name}:${version} to register`);
      // Registration is sent; the frontend registers on receipt: give it a beat to process.
      await new Promise((r) => setTimeout(r, 50));
      return client;
    },
    async predict(app, body) {
      const started = performance.now();
      const res = await fetch(`${frontend.queryUrl}/${app}/predict`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      return { status: res.status, body: await res.json(), ms: performance.now() - started };
    },
    async waitForConfig(check) {
      await waitFor(() => check(frontend), 10_000, "the frontend to see the new configuration");
    },
    async close() {
      await Promise.all(containers.map((c) => c.stop()));
      await frontend.close();
      await management.close().catch(() => undefined);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
