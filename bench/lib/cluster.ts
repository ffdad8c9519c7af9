/** A real cluster for a benchmark: local manager, real processes, a private CLIPPER_HOME, free ports. */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ClipperConnection, LocalContainerManager, type DeployModelOptions } from "../../src/index.js";
import type { RpcAuthMode } from "../../runtime/shared/rpc-auth.js";
import { clusterPaths } from "../../src/managers/local/cluster-home.js";
import { ChildrenFileSchema } from "../../src/managers/local/schemas.js";

export const BENCH_MODELS = fileURLToPath(new URL("../../../bench/models/", import.meta.url));
export const PYTHON = process.env.CLIPPER_PYTHON ?? "/usr/bin/python3";

export interface BenchCluster {
  conn: ClipperConnection;
  queryUrl: string;
  managementUrl: string;
  /** The management daemon's --state-dir (its state.json). */
  stateDir: string;
  /** The query frontend's process (with --frontend-workers N > 1, the primary whose children are the workers). */
  frontendPid(): number;
  /** Where replicas reach the frontend's RPC port (tcp://127.0.0.1:PORT). */
  rpcAddress: string;
  /** Registers an app and deploys a Python model from bench/models linked to it. */
  pythonModel(app: string, sloMs: number, model: Omit<DeployModelOptions, "framework" | "predict" | "inputType" | "link"> & { file: string }): Promise<void>;
  stop(): Promise<void>;
}

export interface BenchClusterOptions {
  cacheBytes?: number;
  /** Deadline-aware admission (default on). */
  admission?: boolean;
  env?: Record<string, string>;
  /** Replaces the frontend's program (for example to run it under `node --cpu-prof`). */
  frontendCommand?: string[];
  /** Replaces the management daemon's program, likewise. */
  managementCommand?: string[];
  /** RPC authentication (default: the cluster default, plain); "none" admits Clipper's own containers. */
  rpcAuth?: RpcAuthMode;
  /** Query frontend worker processes (`--frontend-workers`; default 1). */
  frontendWorkers?: number;
  /** Batches in flight per replica (`--max-in-flight`; default: the frontend's). */
  maxInFlight?: number;
}

export async function startBenchCluster(options: BenchClusterOptions = {}): Promise<BenchCluster> {
  const home = mkdtempSync(join(tmpdir(), "clipper-bench-"));
  const manager = new LocalContainerManager({
    cluster: "bench", home, python: PYTHON,
    ...(options.frontendCommand || options.managementCommand ? {
      componentCommands: {
        ...(options.frontendCommand ? { frontend: options.frontendCommand } : {}),
        ...(options.managementCommand ? { management: options.managementCommand } : {}),
      },
    } : {}),
  });
  const conn = new ClipperConnection(manager, home);
  // The supervisor and its children inherit the environment of the process that starts them.
  const saved = { ...process.env };
  Object.assign(process.env, options.env ?? {});
  let addresses;
  try {
    addresses = await conn.start({
      cluster: "bench", queryPort: 0, managementPort: 0, rpcPort: 0,
      ...(options.cacheBytes === undefined ? {} : { cacheBytes: options.cacheBytes }),
      ...(options.admission === undefined ? {} : { admission: options.admission }),
      ...(options.rpcAuth === undefined ? {} : { rpcAuth: options.rpcAuth }),
      ...(options.frontendWorkers === undefined ? {} : { frontendWorkers: options.frontendWorkers }),
      ...(options.maxInFlight === undefined ? {} : { maxInFlight: options.maxInFlight }),
    });
  } finally {
    for (const key of Object.keys(options.env ?? {})) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  }
  return {
    conn,
    queryUrl: addresses.queryUrl,
    managementUrl: addresses.managementUrl,
    stateDir: clusterPaths(home, "bench").stateDir,
    frontendPid() {
      const children = ChildrenFileSchema.parse(JSON.parse(readFileSync(clusterPaths(home, "bench").childrenFile, "utf8")));
      const frontend = children.children.find((c) => c.component === "frontend");
      if (!frontend) throw new Error("the bench cluster has no frontend process");
      return frontend.pid;
    },
    rpcAddress: addresses.rpcAddress,
    async pythonModel(app, sloMs, model) {
      await conn.registerApplication({ name: app, inputType: "doubles", defaultOutput: "-1", sloMicros: sloMs * 1000 });
      const { file, ...rest } = model;
      await conn.deployModel({ ...rest, inputType: "doubles", framework: "python", predict: join(BENCH_MODELS, file), link: app, python: PYTHON });
    },
    async stop() {
      await conn.stopAll({ keepState: false });
      rmSync(home, { recursive: true, force: true });
    },
  };
}

