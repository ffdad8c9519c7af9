/** A real cluster for a benchmark: local manager, real processes, a private CLIPPER_HOME, free ports. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ClipperConnection, type DeployModelOptions } from "../../src/index.js";

export const BENCH_MODELS = fileURLToPath(new URL("../../../bench/models/", import.meta.url));
export const PYTHON = process.env.CLIPPER_PYTHON ?? "/usr/bin/python3";

export interface BenchCluster {
  conn: ClipperConnection;
  queryUrl: string;
  /** Registers an app and deploys a Python model from bench/models linked to it. */
  pythonModel(app: string, sloMs: number, model: Omit<DeployModelOptions, "framework" | "predict" | "inputType" | "link"> & { file: string }): Promise<void>;
  stop(): Promise<void>;
}

export async function startBenchCluster(options: { cacheBytes?: number; env?: Record<string, string> } = {}): Promise<BenchCluster> {
  const home = mkdtempSync(join(tmpdir(), "clipper-bench-"));
  const conn = await ClipperConnection.create({ cluster: "bench", home, python: PYTHON });
  Object.assign(process.env, options.env ?? {});
  const addresses = await conn.start({
    cluster: "bench", queryPort: 0, managementPort: 0, rpcPort: 0,
    ...(options.cacheBytes === undefined ? {} : { cacheBytes: options.cacheBytes }),
  });
  return {
    conn,
    queryUrl: addresses.queryUrl,
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

/** A body with a fresh random input each call, so the cache cannot answer. */
export function distinctDoubles(width = 8): () => string {
  return () => JSON.stringify({ input: Array.from({ length: width }, () => Math.random()) });
}
