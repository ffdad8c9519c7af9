/**
 * The admin storm: 50 concurrent clients add and delete applications, register and delete model
 * versions, set versions and link and unlink, on overlapping names (`constructor` among them),
 * against a real management daemon process that is killed with SIGKILL in the middle and restarted
 * on the same state directory. A real query frontend with a model replica serves an application
 * before, during and after. Afterwards: the state loads and keeps its invariants, every
 * acknowledged write is reflected or was superseded by a later write, no request got a 5xx, and the
 * frontend still answers the original application from its model.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { seededRandom as rng } from "../runtime/frontend/policies/random.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startQueryFrontend, type RunningFrontend } from "../runtime/frontend/frontend.js";
import { ContainerRpcClient } from "../runtime/container-node/rpc-client.js";
import { readDurableState } from "../runtime/management/store.js";
import { hasOwn, own } from "../runtime/shared/dict.js";
import { describeViolation, stateViolations } from "../runtime/shared/state-invariants.js";
import { sumHandler, waitFor } from "./support/cluster-in-process.js";
import { TEST_RPC_KEY } from "./support/test-frontend.js";
import { versionSecret } from "../runtime/shared/rpc-auth.js";
import { type Daemon, ensureDaemonBuilt, killHard, startDaemon } from "./support/management-daemon.js";

const CLIENTS = 50;
const STORM_MS = 12_000;
/** The served application and model; the storm touches them too, always with their input type. */
const SERVED_APP = "served-app";
const SERVED_MODEL = "served";
const APPS = ["constructor", "s1", "s2", SERVED_APP];
const MODELS = ["constructor", "m1", "m2", SERVED_MODEL];
const VERSIONS = ["1", "2", "constructor"];


type Outcome = "ok" | "refused" | "unknown";
interface Write {
  path: string;
  body: Record<string, unknown>;
  sentAt: number;
  doneAt: number;
  outcome: Outcome;
  status?: number;
  text?: string;
}

const inputTypeOf = (name: string, random: () => number) =>
  name === SERVED_APP || name === SERVED_MODEL ? "doubles" : random() < 0.5 ? "doubles" : "integers";

function randomWrite(random: () => number): { path: string; body: Record<string, unknown> } {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
  const app = pick(APPS);
  const model = pick(MODELS);
  const version = pick(VERSIONS);
  switch (pick(["add_app", "delete_app", "add_model", "add_model", "set_model_version", "delete_versioned_model", "add_model_links", "delete_model_links", "set_autoscaling"])) {
    case "add_app":
      return { path: "/admin/add_app", body: { name: app, input_type: inputTypeOf(app, random), default_output: "-1", latency_slo_micros: pick([20_000, 100_000, 1_000_000]) } };
    case "delete_app":
      return { path: "/admin/delete_app", body: { name: app } };
    case "add_model":
      return {
        path: "/admin/add_model",
        body: { model_name: model, model_version: version, labels: [], input_type: inputTypeOf(model, random), container_name: "c", model_data_path: "p", batch_size: pick([-1, 4]) },
      };
    case "set_model_version":
      return { path: "/admin/set_model_version", body: { model_name: model, model_version: version } };
    case "delete_versioned_model":
      return { path: "/admin/delete_versioned_model", body: { model_name: model, model_version: version } };
    case "add_model_links":
      return { path: "/admin/add_model_links", body: { app_name: app, model_names: [model] } };
    case "set_autoscaling":
      // Against concurrent deletes of the version: the state must never keep autoscaling of a version that is gone.
      return random() < 0.2
        ? { path: "/admin/set_autoscaling", body: { model_name: model, model_version: version, off: true } }
        : { path: "/admin/set_autoscaling", body: { model_name: model, model_version: version, min_replicas: pick([0, 1]), max_replicas: pick([1, 4]) } };
    default:
      return { path: "/admin/delete_model_links", body: { app_name: app, model_names: [model] } };
  }
}

describe("admin storm with a kill -9 in the middle", () => {
  const log = pino({ level: process.env.CLIPPER_TEST_LOG ?? "silent" });
  let stateDir: string;
  let daemon: Daemon;
  let port: number;
  let frontend: RunningFrontend;
  let replica: ContainerRpcClient;

  const admin = async (path: string, body: unknown) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  };
  const must = async (path: string, body: unknown) => {
    const res = await admin(path, body);
    expect(res, `${path} ${JSON.stringify(body)}`).toMatchObject({ status: 200 });
  };
  /** The state on disk, read as the daemon loads it (without touching the directory). */
  const stateOnDisk = () => readDurableState(stateDir);
  const predict = async () => {
    const res = await fetch(`${frontend.queryUrl}/${SERVED_APP}/predict`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: [1, 2, 3] }),
    });
    return { status: res.status, body: (await res.json()) as { output?: unknown; default?: boolean } };
  };

  beforeAll(async () => {
    ensureDaemonBuilt();
    stateDir = await mkdtemp(join(tmpdir(), "clipper-storm-"));
    daemon = await startDaemon(["--state-dir", stateDir, "--port", "0"]);
    port = Number(new URL(daemon.url).port);
    frontend = await startQueryFrontend({
      host: "127.0.0.1", port: 0, rpcPort: 0, managementUrl: daemon.url, log, reportIntervalMs: 200, cacheBytes: 64 * 1024 * 1024,
      rpcAuth: "plain", rpcKey: TEST_RPC_KEY,
    });
    let registered = false;
    replica = new ContainerRpcClient({
      address: `tcp://127.0.0.1:${frontend.rpcPort}`,
      metadata: { name: SERVED_MODEL, version: "1", inputType: "doubles" },
      rpcSecret: versionSecret(TEST_RPC_KEY, { name: SERVED_MODEL, version: "1", inputType: "doubles" }),
      handleBatch: sumHandler,
      heartbeatIntervalMs: 200,
      onRegistered: () => { registered = true; },
    });
    replica.start();
    await waitFor(() => registered, 10_000, "the replica to register");
  });

  afterAll(async () => {
    await replica?.stop();
    await frontend?.close();
    if (daemon) await killHard(daemon.child);
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it("keeps the configuration consistent and durable, and the frontend serving", async () => {
    await must("/admin/add_app", { name: SERVED_APP, input_type: "doubles", default_output: "-1", latency_slo_micros: 1_000_000 });
    await must("/admin/add_model", {
      model_name: SERVED_MODEL, model_version: "1", labels: [], input_type: "doubles", container_name: "c", model_data_path: "p", batch_size: -1,
    });
    await must("/admin/add_model_links", { app_name: SERVED_APP, model_names: [SERVED_MODEL] });
    await waitFor(async () => (await predict()).body.default === false, 10_000, "the served app to answer from its model");

    // The storm, with the daemon killed and restarted on the same port and state halfway.
    const writes: Write[] = [];
    const started = Date.now();
    const stopAt = started + STORM_MS;
    let restarted = false;
    const killer = (async () => {
      await new Promise((r) => setTimeout(r, STORM_MS / 2));
      await killHard(daemon.child);
      await new Promise((r) => setTimeout(r, 300));
      daemon = await startDaemon(["--state-dir", stateDir, "--port", String(port)]);
      restarted = true;
    })();
    const queries = { model: 0, other: 0, errors: 0 };
    const querier = (async () => {
      while (Date.now() < stopAt) {
        try {
          const res = await predict();
          if (res.status === 200 && res.body.default === false) queries.model++;
          else queries.other++;
        } catch {
          queries.errors++;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await Promise.all(Array.from({ length: CLIENTS }, async (_, client) => {
      const random = rng(client + 1);
      while (Date.now() < stopAt) {
        const { path, body } = randomWrite(random);
        const write: Write = { path, body, sentAt: performance.now(), doneAt: 0, outcome: "unknown" };
        writes.push(write);
        try {
          const res = await admin(path, body);
          write.status = res.status;
          write.text = res.text;
          write.outcome = res.status === 200 ? "ok" : res.status === 400 ? "refused" : "unknown";
        } catch {
          // The daemon was killed under this request: it may or may not have been applied.
          await new Promise((r) => setTimeout(r, 20));
        }
        write.doneAt = performance.now();
      }
    }));
    await killer;
    await querier;
    expect(restarted).toBe(true);

    const ok = writes.filter((w) => w.outcome === "ok");
    const statuses = new Set(writes.flatMap((w) => (w.status === undefined ? [] : [w.status])));
    expect([...statuses].filter((s) => s !== 200 && s !== 400), "no answer but 200 or 400").toEqual([]);
    // Refusals come from the operations' own checks, never from the store's last line of defence.
    expect(writes.filter((w) => w.text?.includes("would leave the configuration inconsistent")).map((w) => `${w.path} ${JSON.stringify(w.body)}: ${w.text}`)).toEqual([]);
    expect(ok.length).toBeGreaterThan(CLIENTS);
    expect(writes.filter((w) => w.outcome === "refused").length).toBeGreaterThan(0);
    expect(queries.errors).toBe(0); // the frontend answered every query, daemon down or not

    // The state as the daemon serves it is the state on disk, and it keeps every invariant.
    const onDisk = (await stateOnDisk());
    expect(stateViolations(onDisk).map(describeViolation)).toEqual([]);
    // Autoscaling was set in the storm too, so the invariant above covered it against concurrent deletes.
    expect(writes.some((w) => w.path === "/admin/set_autoscaling" && w.status === 200 && w.body.off === undefined)).toBe(true);
    const served = JSON.parse((await admin("/admin/get_all_applications", { verbose: true })).text) as Array<{ name: string }>;
    expect(served.map((a) => a.name).sort()).toEqual(Object.keys(onDisk.applications).sort());

    // Every acknowledged write is reflected, unless a later write (one that may have been applied
    // after it: it finished after this one was sent) undid it.
    const is = (path: string, fields: Record<string, unknown>) => (w: Write) =>
      w.path === `/admin/${path}` && Object.entries(fields).every(([k, v]) => JSON.stringify(w.body[k]) === JSON.stringify(v));
    for (const app of APPS) {
      const explained = presenceExplained(writes, hasOwn(onDisk.applications, app), is("add_app", { name: app }), is("delete_app", { name: app }));
      expect(explained, `application '${app}'`).toBe(true);
      for (const model of MODELS) {
        // A link goes with an unlink, and with its application.
        const linked = own(onDisk.applications, app)?.linked_models.includes(model) ?? false;
        const unlinks = (w: Write) => is("delete_model_links", { app_name: app, model_names: [model] })(w) || is("delete_app", { name: app })(w);
        expect(presenceExplained(writes, linked, is("add_model_links", { app_name: app, model_names: [model] }), unlinks), `link ${app} → ${model}`).toBe(true);
      }
    }
    for (const model of MODELS) {
      for (const version of VERSIONS) {
        const present = hasOwn(own(onDisk.models, model)?.versions, version);
        const fields = { model_name: model, model_version: version };
        expect(presenceExplained(writes, present, is("add_model", fields), is("delete_versioned_model", fields)), `model version ${model}:${version}`).toBe(true);
      }
    }

    // Put the served application back as it was, and the frontend must answer it from its model.
    const state = await stateOnDisk();
    for (const other of Object.values(state.applications)) {
      // An application of another input type may link the served model while it had no current version.
      if (other.name !== SERVED_APP && other.linked_models.includes(SERVED_MODEL)) {
        await must("/admin/delete_model_links", { app_name: other.name, model_names: [SERVED_MODEL] });
      }
    }
    const app = own(state.applications, SERVED_APP);
    if (app && app.latency_slo_micros < 1_000_000) await must("/admin/delete_app", { name: SERVED_APP });
    if (!app || app.latency_slo_micros < 1_000_000) {
      await must("/admin/add_app", { name: SERVED_APP, input_type: "doubles", default_output: "-1", latency_slo_micros: 1_000_000 });
    } else if (app.linked_models.length > 0 && !app.linked_models.includes(SERVED_MODEL)) {
      await must("/admin/delete_model_links", { app_name: SERVED_APP, model_names: app.linked_models });
    }
    if (!own(own(state.models, SERVED_MODEL)?.versions, "1")) {
      await must("/admin/add_model", {
        model_name: SERVED_MODEL, model_version: "1", labels: [], input_type: "doubles", container_name: "c", model_data_path: "p", batch_size: -1,
      });
    }
    await must("/admin/set_model_version", { model_name: SERVED_MODEL, model_version: "1" });
    const linked = JSON.parse((await admin("/admin/get_linked_models", { app_name: SERVED_APP })).text) as string[];
    if (!linked.includes(SERVED_MODEL)) await must("/admin/add_model_links", { app_name: SERVED_APP, model_names: [SERVED_MODEL] });

    const final = (await stateOnDisk());
    await waitFor(() => frontend.state()?.revision === final.revision, 15_000, "the frontend to follow the restarted daemon");
    expect(JSON.stringify(frontend.state())).toBe(JSON.stringify(final));
    // The restarted daemon hears of the replica again, and every replica it reports belongs to a model version.
    await waitFor(async () => {
      const containers = JSON.parse((await admin("/admin/get_all_containers", {})).text) as string[];
      return containers.includes(`${SERVED_MODEL}:1:0`);
    }, 10_000, "the frontend to report its replica to the restarted daemon");
    const containers = JSON.parse((await admin("/admin/get_all_containers", { verbose: true })).text) as Array<{ model_name: string; model_version: string }>;
    for (const c of containers) expect(hasOwn(own(final.models, c.model_name)?.versions, c.model_version), `${c.model_name}:${c.model_version}`).toBe(true);
    for (let i = 0; i < 20; i++) {
      const res = await predict();
      expect(res, `query ${i} after the storm`).toMatchObject({ status: 200, body: { output: 6, default: false } });
    }
  });
});

/**
 * Whether the final presence (or absence) of something is explained by the writes that add and
 * remove it: the last acknowledged write that would have left the other outcome must have been
 * followed, possibly, by one that leaves this outcome (acknowledged or in doubt, and finished after
 * the other was sent, so the daemon may have applied it later); something present must have been
 * added at all.
 */
function presenceExplained(
  writes: readonly Write[], present: boolean, adds: (w: Write) => boolean, removes: (w: Write) => boolean,
): boolean {
  const added = writes.filter((w) => adds(w) && w.outcome !== "refused");
  const removed = writes.filter((w) => removes(w) && w.outcome !== "refused");
  const [keep, undo] = present ? [added, removed] : [removed, added];
  const lastUndo = undo.filter((w) => w.outcome === "ok").reduce<Write | undefined>((a, w) => (!a || w.doneAt > a.doneAt ? w : a), undefined);
  if (!lastUndo) return present ? added.length > 0 : true;
  return keep.some((w) => w.doneAt > lastUndo.sentAt);
}
