/**
 * A container written for Clipper — straight from the RPC v3 frame layout, sharing no code with
 * our runtimes — registers with our query frontend and serves queries through the query API.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertPythonHas, PYTHON, pythonSkipReason } from "./support/python.js";
import { startInProcessCluster, waitFor, type InProcessCluster } from "./support/cluster-in-process.js";

const skipReason = pythonSkipReason(["zmq"]);
const script = fileURLToPath(new URL("./fixtures/foreign_container.py", import.meta.url));

describe.skipIf(skipReason !== undefined)(`a foreign RPC v3 container${skipReason ? ` (${skipReason})` : ""}`, () => {
  let c: InProcessCluster;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    assertPythonHas(["zmq"]);
    // Clipper's own container code cannot authenticate: the cluster runs --rpc-auth none.
    c = await startInProcessCluster({ rpcAuth: "none" });
  });
  afterAll(async () => {
    child?.kill("SIGKILL");
    await c?.close();
  });

  it("registers with our frontend and answers Clipper queries", async () => {
    await c.admin.postText("/admin/add_app", { name: "sum", input_type: "doubles", default_output: "-1.0", latency_slo_micros: 5_000_000 });
    await c.admin.postText("/admin/add_model", {
      model_name: "sum", model_version: "1", labels: [], input_type: "doubles",
      container_name: "NO_CONTAINER", model_data_path: "x", batch_size: -1,
    });
    await c.admin.postText("/admin/add_model_links", { app_name: "sum", model_names: ["sum"] });
    child = spawn(PYTHON, [script, "--ip", "127.0.0.1", "--port", String(c.frontend.rpcPort), "--name", "sum", "--version", "1"], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    await waitFor(async () => {
      const all = await c.admin.postJson<string[]>("/admin/get_all_containers", { verbose: false });
      return all.includes("sum:1:0");
    }, 15_000, "the foreign container to register");
    const reply = await c.predict("sum", { input: [1.0, 2.0, 3.0] });
    expect(reply.body).toEqual({ query_id: expect.any(Number), output: 6.0, default: false });
    const batch = await c.predict("sum", { input_batch: [[1, 2, 3], [2, 3]] });
    expect(batch.body.batch_predictions.map((p: { output: number }) => p.output)).toEqual([6, 5]);
  });
});
