/**
 * The shared model lifecycle (test/support/lifecycle-contract.ts) against the local manager, with
 * the real management daemon, query frontend and Node model runtime as processes. "Running" is
 * read from the operating system, not from the supervisor: the live processes whose environment
 * names this cluster, the model and the version.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LocalContainerManager } from "../src/managers/local/index.js";
import { describeLifecycle } from "./support/lifecycle-contract.js";

const MODELS = fileURLToPath(new URL("./fixtures/node-models/", import.meta.url));

/** Live processes (not zombies) whose environment holds every one of `vars`. */
function processesWith(vars: Record<string, string>): number {
  const wanted = Object.entries(vars).map(([k, v]) => `${k}=${v}`);
  let count = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const env = readFileSync(`/proc/${entry}/environ`, "utf8").split("\0");
      if (wanted.every((w) => env.includes(w))) count++;
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return count;
}

describeLifecycle("local manager", async () => {
  const home = mkdtempSync(join(tmpdir(), "clipper-lifecycle-"));
  const cluster = `lifecycle-${process.pid}`;
  const manager = new LocalContainerManager({ cluster, home, stopGraceMs: 2000 });
  return {
    manager,
    options: {
      cluster,
      host: "127.0.0.1",
      queryPort: 0,
      managementPort: 0,
      rpcPort: 0,
      maxBodyBytes: 1 << 20,
      startupTimeoutMs: 30_000,
      replicaTimeoutMs: 30_000,
    },
    deployment: (name, version, variant = 0) => ({
      name,
      version,
      inputType: "doubles",
      framework: "node",
      predictFile: join(MODELS, "sum.mjs"),
      predictFunction: "predict",
      modelPath: MODELS,
      env: { LIFECYCLE_VARIANT: String(variant) },
    }),
    running: async (name, version) =>
      processesWith({ CLIPPER_CLUSTER: cluster, CLIPPER_MODEL_NAME: name, CLIPPER_MODEL_VERSION: version }),
    close: async () => rmSync(home, { recursive: true, force: true }),
  };
});
