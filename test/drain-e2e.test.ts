/**
 * Scale-down by draining, end to end on the local manager with the real CLI, supervisor, daemon,
 * frontend and replicas (Node and Python runtimes): a model taking 400 ms per batch of one, two
 * replicas kept busy by closed-loop clients, then `setNumReplicas(.., 1)` (what `clipper replicas`
 * and the autoscaler call). The replica that goes finishes the batch it holds: every query is
 * answered by the model, and the frontend re-sends no batch (clipper_model_requeued_queries_total).
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClipperConnection } from "../src/connection.js";
import { cliCluster } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";
import { closedLoopLoad } from "./support/closed-loop.js";
import { assertPythonHas, PYTHON, pythonSkipReason } from "./support/python.js";

const FIXTURES = fileURLToPath(new URL("./fixtures/", import.meta.url));
const BATCH_MS = 400;

const runtimes = [
  { name: "Node runtime", framework: "node", predict: `${join(FIXTURES, "node-models", "async.mjs")}:predict`, skip: undefined },
  { name: "Python runtime", framework: "python", predict: `${join(FIXTURES, "e2e", "sleepy.py")}:predict`, skip: pythonSkipReason(["numpy"]) },
] as const;

/** A counter's value for one model in Prometheus text (0 when the series is absent). */
function counter(metrics: string, name: string, model: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith(`${name}{model="${model}"}`));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
}

describe.each(runtimes)("scale-down by draining: $name", (runtime) => {
  describe.skipIf(runtime.skip !== undefined)(`on the local manager${runtime.skip ? ` (${runtime.skip})` : ""}`, { timeout: 180_000 }, () => {
    const { home, ok, urls } = cliCluster("clipper-drain-e2e-", { env: { CLIPPER_PYTHON: PYTHON } });
    let conn: ClipperConnection;

    beforeAll(async () => {
      // In CI a missing Python module fails here rather than skipping (support/python.ts).
      if (runtime.framework === "python") assertPythonHas(["numpy"]);
      await ok("register-app", "drain", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "20000");
      await ok("deploy-model", "slow", "--version", "1", "--input-type", "doubles", "--framework", runtime.framework,
        "--predict", runtime.predict, "--batch-size", "1", "--replicas", "2", "--link", "drain");
      conn = await ClipperConnection.connect({ home });
    }, 120_000);
    afterAll(async () => {
      await conn?.close();
    });

    it("answers every query by the model and re-sends no batch while a busy replica is removed", async () => {
      // Four clients on two replicas: both are always busy, so the one that goes holds a batch.
      const load = closedLoopLoad(`${urls.queryUrl}/drain/predict`, 4, (n) => [BATCH_MS, n]);
      const { answered, failures } = load;
      const metrics = async () => (await fetch(`${urls.queryUrl}/metrics`)).text();
      try {
        await waitFor(() => answered.length >= 6, 30_000, "both replicas to serve");
        await conn.setNumReplicas("slow", 1, "1");
        const after = answered.length;
        await waitFor(() => answered.length >= after + 4, 30_000, "the remaining replica to serve");
      } finally {
        await load.stop();
      }
      expect(failures).toEqual([]);
      const text = await metrics();
      expect(counter(text, "clipper_model_drained_replicas_total", "slow:1")).toBe(1);
      expect(counter(text, "clipper_model_requeued_queries_total", "slow:1")).toBe(0);
      const running = (await conn.inspectInstance()).replicas.filter((r) => r.name === "slow" && r.state === "running");
      expect(running).toHaveLength(1);
    });
  });
});
