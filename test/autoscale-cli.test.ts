/**
 * Autoscaling's configuration and events through the real CLI, daemon and processes of a local
 * cluster: `clipper autoscale` stores a version's bounds durably, `clipper models` and `clipper
 * status --json` show them, `clipper events` (and `--follow`) shows each change with its reason, and
 * bad input is refused with a clear message. The controller's decisions: test/unit/autoscaler.test.ts.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { startManagementServer } from "../runtime/management/server.js";
import { AUTOSCALER_EVENTS_PATH, GET_AUTOSCALING_PATH, SET_AUTOSCALING_PATH } from "../runtime/shared/autoscaling.js";
import { tempDirs } from "./support/temp-dirs.js";
import { CLI, cliCluster } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";

const MODEL = {
  model_name: "m", model_version: "1", labels: [], input_type: "doubles", container_name: "NO_CONTAINER", model_data_path: "x", batch_size: -1,
};

describe("clipper autoscale and clipper events on the local manager", () => {
  const { home, cli, ok, urls } = cliCluster("clipper-autoscale-");

  /** Registers model versions directly on the admin API: no replica is needed to configure autoscaling. */
  async function addModel(version: string): Promise<void> {
    const res = await fetch(`${urls.managementUrl}/admin/add_model`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...MODEL, model_version: version }),
    });
    expect(res.status, await res.text()).toBe(200);
  }

  it("stores a version's autoscaling, shows it, and records each change as an event", async () => {
    await addModel("1");
    await addModel("2");
    const set = await ok("autoscale", "m", "--min", "1", "--max", "4");
    expect(set.message).toBe("Set autoscaling of m:2: min 1, max 4, target queue 4 per replica, scale-down delay 30 s");
    expect(set.autoscaling).toEqual([{
      model_name: "m", model_version: "2",
      autoscaling: { min_replicas: 1, max_replicas: 4, target_queue_per_replica: 4, scale_down_delay_s: 30 },
    }]);
    await ok("autoscale", "m", "--version", "1", "--min", "0", "--max", "2", "--target-queue-per-replica", "2.5", "--scale-down-delay-s", "90");

    const models = await ok("models");
    expect(models.find((m: any) => m.model_version === "1").autoscaling).toEqual(
      { min_replicas: 0, max_replicas: 2, target_queue_per_replica: 2.5, scale_down_delay_s: 90 });
    const table = await cli("models");
    expect(table.stdout).toMatch(/AUTOSCALE/);
    expect(table.stdout).toMatch(/m\s+1\s+doubles\s+0\s+0-2/);
    expect(table.stdout).toMatch(/m\s+2\s+\*\s+doubles\s+0\s+1-4/);
    expect((await ok("status")).autoscaling).toHaveLength(2);

    const events = await ok("events");
    expect(events.events.map((e: any) => [e.kind, e.model_version, e.from, e.to])).toEqual([["config", "2", 1, 4], ["config", "1", 0, 2]]);
    expect(events.events[1].reason).toBe("set through the admin API: min 0, max 2, target queue 2.5 per replica, scale-down delay 90 s");
    const human = await cli("events");
    expect(human.stdout).toMatch(/m:1 {2}config min 0 max 2 {2}set through the admin API/);
    expect(human.stdout.trim().split("\n")).toHaveLength(2);
  });

  it("follows events as they happen", async () => {
    const child = spawn(process.execPath, [CLI, "events", "--follow", "--json", "--since", "2"], {
      env: { ...process.env, CLIPPER_HOME: home, FORCE_COLOR: "0" }, stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    try {
      // Sequence numbers above 2 only: this test's own changes.
      await ok("autoscale", "m", "--off");
      await waitFor(() => out.includes("\n"), 15_000, "the followed event");
      const lines = out.trim().split("\n").map((l) => JSON.parse(l));
      expect(lines).toEqual([expect.objectContaining({ seq: 3, kind: "off", model_name: "m", model_version: "2" })]);
      await ok("autoscale", "m", "--max", "3", "--min", "2");
      await waitFor(() => out.trim().split("\n").length === 2, 15_000, "the second followed event");
      expect(JSON.parse(out.trim().split("\n")[1]!)).toMatchObject({ seq: 4, kind: "config", from: 2, to: 3 });
    } finally {
      child.kill("SIGTERM");
    }
  });

  it("refuses bad flags and unknown models with a clear message", async () => {
    const bounds = await cli("autoscale", "m", "--min", "5", "--max", "2");
    expect(bounds.code).toBe(2);
    expect(bounds.stderr).toContain("--min (5) must not be above --max (2)");
    expect((await cli("autoscale", "m", "--max", "65", "--min", "1")).code).toBe(2);
    expect((await cli("autoscale", "m", "--min", "1")).stderr).toContain("--min and --max are required");
    expect((await cli("autoscale", "m", "--off", "--min", "1")).code).toBe(2);
    expect((await cli("autoscale", "m", "--min", "1", "--max", "2", "--target-queue-per-replica", "0")).code).toBe(2);
    const unknown = await cli("autoscale", "__proto__", "--min", "1", "--max", "2");
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("No model with name '__proto__' exists.");
    const version = await cli("autoscale", "m", "--version", "9", "--min", "1", "--max", "2");
    expect(version.stderr).toContain("model with name 'm' and version '9' does not exist");
  });

  it("answers the events endpoint's bad queries with 400 and other methods with 405", async () => {
    const bad = await fetch(`${urls.managementUrl}${AUTOSCALER_EVENTS_PATH}?since=-1`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toBe("since must be a whole number ≥ 0, got '-1'");
    expect((await fetch(`${urls.managementUrl}${AUTOSCALER_EVENTS_PATH}?limit=0`)).status).toBe(400);
    const post = await fetch(`${urls.managementUrl}${AUTOSCALER_EVENTS_PATH}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(post.status).toBe(405);
    const limited = await (await fetch(`${urls.managementUrl}${AUTOSCALER_EVENTS_PATH}?since=1&limit=1`)).json();
    expect(limited).toMatchObject({ events: [{ seq: 2 }], next_seq: 2, missed: 0 });
  });
});

describe("autoscaling in the daemon's state", () => {
  const tempDir = tempDirs("clipper-autoscale-state-");

  it("survives a restart of the daemon; the event log, in memory, starts afresh", async () => {
    const stateDir = await tempDir();
    const post = (url: string, path: string, body: unknown) =>
      fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const options = { host: "127.0.0.1", port: 0, stateDir, logger: pino({ level: "silent" }) };
    const first = await startManagementServer(options);
    try {
      expect((await post(first.url, "/admin/add_model", MODEL)).status).toBe(200);
      const set = await post(first.url, SET_AUTOSCALING_PATH, { model_name: "m", min_replicas: 2, max_replicas: 5 });
      expect(set.status).toBe(200);
      expect(set.headers.get("x-clipper-revision")).toBe("2");
    } finally {
      await first.close();
    }
    const second = await startManagementServer(options);
    try {
      expect(await (await post(second.url, GET_AUTOSCALING_PATH, {})).json()).toEqual([{
        model_name: "m", model_version: "1",
        autoscaling: { min_replicas: 2, max_replicas: 5, target_queue_per_replica: 4, scale_down_delay_s: 30 },
      }]);
      expect(await (await fetch(second.url + AUTOSCALER_EVENTS_PATH)).json()).toEqual({ events: [], next_seq: 0, missed: 0 });
      // A refused change records no event.
      expect((await post(second.url, SET_AUTOSCALING_PATH, { model_name: "m", min_replicas: 3, max_replicas: 1 })).status).toBe(400);
      expect((await (await fetch(second.url + AUTOSCALER_EVENTS_PATH)).json()).events).toEqual([]);
    } finally {
      await second.close();
    }
  });
});

describe("clipper start --no-autoscaler on the local manager", () => {
  const SUM = fileURLToPath(new URL("./fixtures/node-models/sum.mjs", import.meta.url));
  const { ok } = cliCluster("clipper-no-autoscaler-", { startFlags: ["--no-autoscaler"] });

  it("keeps the configuration but scales nothing: a version below its min stays as deployed", async () => {
    await ok("deploy-model", "sum", "--version", "1", "--input-type", "doubles", "--framework", "node", "--predict", SUM, "--replicas", "1");
    await ok("autoscale", "sum", "--min", "2", "--max", "3");
    // With the loop running, a count below min moves up within a round or two (1 s each).
    await new Promise((r) => setTimeout(r, 4_000));
    expect((await ok("status")).replicas.filter((r: any) => r.name === "sum")).toHaveLength(1);
    expect((await ok("events")).events.map((e: any) => e.kind)).toEqual(["config"]);
  }, 60_000);
});
