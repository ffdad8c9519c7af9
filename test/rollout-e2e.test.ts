/**
 * Gated rollouts end to end through the real CLI on the local manager (daemon, frontend, Node model
 * runtime): version 1 live; version 2 slow (and answering sum + 1 on 30% of inputs, so its answers
 * can be told apart); version 3 as good as 1. (a) A rollout to 2 with a p99 gate rolls back by
 * itself, the reason in the events and the status, and every live answer is version 1's after;
 * (b) a rollout to 3 reaches 100% and makes it current; (c) --abort rolls back. Steps are short.
 * The step/gate state machine is unit-tested in test/unit/rollout.test.ts.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { CLI, cliCluster, predictAt } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";
import { uidPoint } from "../runtime/frontend/policies/canary-policy.js";
import type { AppRecord } from "../runtime/shared/state.js";

/** The first uid whose split point (the canary's uid hash) satisfies `side`. */
function uidOn(side: (point: number) => boolean, app: AppRecord): string {
  for (let i = 0; ; i++) if (side(uidPoint(app, `user-${i}`))) return `user-${i}`;
}

const MODEL = join(fileURLToPath(new URL("./fixtures/node-models/", import.meta.url)), "shadow-candidate.mjs");
const SLOW_MS = 300;
/** Short steps: judged after a second and 5 compared queries (the frontends report every 2 s). */
const FAST_STEPS = ["--step-s", "1", "--min-queries", "5"];

describe("gated rollouts through the CLI", { timeout: 180_000 }, () => {
  const { cli, ok, urls, home } = cliCluster("clipper-rollout-");

  beforeAll(async () => {
    await ok("register-app", "app", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "5000");
    const deploy = (version: string, ...extra: string[]) =>
      ok("deploy-model", "m", "--version", version, "--input-type", "doubles", "--framework", "node", "--predict", `${MODEL}:predict`, ...extra);
    await deploy("1", "--link", "app");
    await deploy("2", "--env", "DISAGREE=1", "--env", `SLEEP_MS=${SLOW_MS}`);
    await deploy("3");
    await ok("set-version", "m", "1");
  }, 150_000);

  /** Sends queries one after another until the returned stop is called; resolves with every answer. */
  function traffic(): { stop: () => Promise<Array<{ input: number; output: unknown }>> } {
    let running = true;
    const answers: Array<{ input: number; output: unknown }> = [];
    const loop = (async () => {
      for (let i = 0; running; i++) {
        const input = i % 100;
        answers.push({ input, output: (await predictAt(urls.queryUrl, "app", [input])).output });
      }
    })();
    return { stop: async () => ((running = false), await loop, answers) };
  }

  it("refuses bad rollouts with a usage error or the daemon's reason", async () => {
    for (const steps of ["10,5,100", "0,100", "1,50", "100", "1,101", "a,100"]) {
      const r = await cli("rollout", "m", "--to", "3", "--steps", steps);
      expect(r.code, steps).toBe(2);
      expect(r.stderr, steps).toContain("--steps");
    }
    for (const [flag, value] of [["--min-agreement", "1.5"], ["--max-default-rate", "-1"], ["--max-p99-ms", "0"], ["--step-s", "0"]] as const) {
      expect((await cli("rollout", "m", "--to", "3", flag, value)).code, flag).toBe(2);
    }
    expect((await cli("rollout", "m")).stderr).toContain("--to is required");
    const refused = async (args: string[], message: string) => {
      const r = await cli(...args, "--json");
      expect(r.code, args.join(" ")).toBe(4);
      expect(r.json, args.join(" ")).toMatchObject({ code: "ADMIN_REJECTED", error: expect.stringContaining(message) });
    };
    await refused(["rollout", "m", "--to", "9"], "version '9' does not exist");
    await refused(["rollout", "m", "--to", "1"], "is the current version");
    await refused(["rollout", "m", "--abort"], "has no rollout running");
    for (const name of ["nope", "__proto__", "constructor"]) await refused(["rollout", name, "--to", "1"], "No model with name");
  });

  it("(a) rolls back by itself a version slower than the p99 gate; live answers are the old version's after", async () => {
    const load = traffic();
    const r = await cli("rollout", "m", "--to", "2", "--steps", "50,100", ...FAST_STEPS, "--max-p99-ms", "100", "--json");
    await load.stop();
    expect(r.code, r.stderr).toBe(10);
    expect(r.json.status).toMatchObject({
      current_version: "1", shadow: null,
      rollout: { phase: "rolled_back", percent: 0, to_version: "2", reason: expect.stringMatching(/^gate failed at 50%: p99 latency [\d.]+ ms is above the gate of 100 ms$/) },
    });
    const { events } = await ok("events");
    expect(events.map((e: any) => e.kind)).toEqual(expect.arrayContaining(["rollout_start", "rollout_rolled_back"]));
    expect(events.find((e: any) => e.kind === "rollout_rolled_back")).toMatchObject({ model_name: "m", model_version: "2", reason: expect.stringContaining("p99 latency") });
    // Version 2 would answer input + 1 for inputs ending in 0, 1, 2.
    for (let input = 0; input < 30; input++) expect((await predictAt(urls.queryUrl, "app", [input])).output, `input ${input}`).toBe(input);
    const human = await cli("rollout", "status", "m");
    expect(human.stdout).toMatch(/rollout to version 2 from 1: rolled back \(gate failed at 50%/);
  });

  it("(b) takes a good version through every step to 100%, where it becomes current", async () => {
    const load = traffic();
    const r = await cli("rollout", "m", "--to", "3", "--steps", "20,50,100", ...FAST_STEPS, "--max-p99-ms", "2000", "--min-agreement", "0.99", "--max-default-rate", "0", "--json");
    const answers = await load.stop();
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.status).toMatchObject({ current_version: "3", shadow: null, rollout: { phase: "promoted", steps: [20, 50, 100] } });
    expect(answers.every((a) => a.output === a.input)).toBe(true);
    const { events } = await ok("events");
    const steps = events.filter((e: any) => e.model_version === "3").map((e: any) => [e.kind, e.from, e.to]);
    expect(steps).toEqual([["rollout_start", 0, 20], ["rollout_step", 20, 50], ["rollout_promoted", 50, 100]]);
  });

  it("(c) --abort rolls back a detached rollout; while it ran, a uid on the new side got the new version", async () => {
    const started = await ok("rollout", "m", "--to", "2", "--steps", "50,100", "--step-s", "600", "--detach");
    expect(started.status.rollout).toMatchObject({ phase: "running", percent: 50, from_version: "3", to_version: "2" });
    // Users whose uid hashes below 0.5 are on version 2's side (it answers 0 + 1 for input 0); the others on 3's.
    const app = { name: "app" } as AppRecord;
    const [newSide, oldSide] = [uidOn((p) => p < 0.5, app), uidOn((p) => p >= 0.5, app)];
    const ask = async (uid: string) => (await (await fetch(`${urls.queryUrl}/app/predict`, { method: "POST", body: JSON.stringify({ uid, input: [0] }) })).json() as any).output;
    expect([await ask(newSide), await ask(oldSide)]).toEqual([1, 0]);
    const again = await cli("rollout", "m", "--to", "1", "--json");
    expect(again.json).toMatchObject({ code: "ADMIN_REJECTED", error: expect.stringContaining("already running") });
    const aborted = await ok("rollout", "m", "--abort");
    expect(aborted.message).toBe("Rolled back the rollout of m:2; version '3' answers every query");
    expect(aborted.status).toMatchObject({ current_version: "3", shadow: null, rollout: { phase: "rolled_back", reason: "aborted through the admin API" } });
    expect(await ask(newSide)).toBe(0);
  });

  it("(c) Ctrl-C in the CLI following a rollout rolls it back", async () => {
    const child = spawn(process.execPath, [CLI, "rollout", "m", "--to", "1", "--step-s", "600", "--json"], {
      env: { ...process.env, CLIPPER_HOME: home, FORCE_COLOR: "0" }, stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    await waitFor(async () => (await ok("rollout", "status", "m")).rollout?.phase === "running", 30_000, "the rollout to start");
    child.kill("SIGINT");
    expect(await exited).toBe(10);
    expect(JSON.parse(stdout).status).toMatchObject({ current_version: "3", rollout: { phase: "rolled_back", to_version: "1", reason: "aborted through the admin API" } });
  });
});
