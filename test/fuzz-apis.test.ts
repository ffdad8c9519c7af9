/**
 * A seeded mutation fuzzer over both HTTP APIs (issue 10). Valid requests for every admin
 * operation, predict, update and the Open Inference Protocol are mutated: names become prototype
 * names, values change JSON type or become huge, bodies are truncated, Content-Type, Origin and Host
 * change. The daemon is a real process. Whatever arrives: no 500 (503 only as a query API's JSON
 * answer for a model without replicas), the daemon stays up, its state file stays loadable, and the
 * daemon restarts on it with the same state.
 *
 * CLIPPER_FUZZ_SEED replays a run; CLIPPER_FUZZ_REQUESTS changes its length (default 15000, within
 * a 75 s budget); CLIPPER_FUZZ_REPORT=FILE writes every failure there.
 */
import { request } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { seededRandom as rng } from "../runtime/frontend/policies/random.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startQueryFrontend, type RunningFrontend } from "../runtime/frontend/frontend.js";
import { ContainerRpcClient } from "../runtime/container-node/rpc-client.js";
import { readDurableState } from "../runtime/management/store.js";
import { ensureDaemonBuilt, startDaemon, type Daemon } from "./support/management-daemon.js";
import { sumHandler, waitFor } from "./support/cluster-in-process.js";
import { TEST_RPC_KEY } from "./support/test-frontend.js";
import { versionSecret } from "../runtime/shared/rpc-auth.js";

const SEED = Number(process.env.CLIPPER_FUZZ_SEED ?? 0x5eed10);
const REQUESTS = Number(process.env.CLIPPER_FUZZ_REQUESTS ?? 15_000);
/** Bounds the run on a slow machine: whatever was sent by then counts. */
const WALL_BUDGET_MS = 75_000;
const CONCURRENCY = 8;


const PROTO_NAMES = ["constructor", "__proto__", "toString", "valueOf", "hasOwnProperty", "prototype", "isPrototypeOf", "__defineGetter__"];
const NAMES = ["a", "m", "1", "2", ...PROTO_NAMES];
const ODD_VALUES: unknown[] = [
  null, true, 0, -1, 1e308, -1e308, 2 ** 53 + 1, 2 ** 31, -(2 ** 31) - 1, 0.5, "", "x".repeat(5000), [], {}, [null], { __proto__: null },
  "doubles", "constructor", "__proto__", "-1", "1e999", "\u0000", "\ud800", "名前",
];
const CONTENT_TYPES = [undefined, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=z", "application/json; charset=latin1",
  "Application/JSON", "application/json-patch+json", ";;;", "application/json;"];
const ORIGINS = ["http://evil.example", "null", "http://127.0.0.1:1", "file://", "http://localhost"];
const HOSTS = ["evil.example", "rebind.example:1338", "localhost", "127.0.0.1", "[::1]:1", "constructor", "__proto__:80", "a b", ""];

interface Template {
  api: "admin" | "query";
  method: "GET" | "POST";
  path: string;
  body?: Record<string, unknown>;
}

const MODEL = { model_name: "m", model_version: "1", labels: ["x"], input_type: "doubles", container_name: "c", model_data_path: "/p", batch_size: -1 };

/** One valid request per operation, with `N` where a name goes. */
const TEMPLATES: Template[] = [
  { api: "admin", method: "POST", path: "/admin/add_app", body: { name: "a", input_type: "doubles", default_output: "-1", latency_slo_micros: 100_000 } },
  { api: "admin", method: "POST", path: "/admin/delete_app", body: { name: "a" } },
  { api: "admin", method: "POST", path: "/admin/add_model_links", body: { app_name: "a", model_names: ["m"] } },
  { api: "admin", method: "POST", path: "/admin/delete_model_links", body: { app_name: "a", model_names: ["m"] } },
  { api: "admin", method: "POST", path: "/admin/add_model", body: MODEL },
  { api: "admin", method: "POST", path: "/admin/set_model_version", body: { model_name: "m", model_version: "1" } },
  { api: "admin", method: "POST", path: "/admin/delete_versioned_model", body: { model_name: "m", model_version: "2" } },
  { api: "admin", method: "POST", path: "/admin/set_app_policy", body: { name: "a", policy: { name: "canary", weights: { 1: 95, 2: 5 } } } },
  { api: "admin", method: "POST", path: "/admin/update_policy_state", body: { app_name: "a", policy: "exp3", weights: { m: 1 } } },
  { api: "admin", method: "POST", path: "/admin/report_replicas", body: {
    frontend_id: "f", replicas: [{ model_id: "m:1", model_name: "m", model_version: "1", model_replica_id: 0, input_type: "doubles" }],
  } },
  { api: "admin", method: "POST", path: "/admin/add_api_key", body: { app: "a", rate: 5 } },
  { api: "admin", method: "POST", path: "/admin/revoke_api_key", body: { id: "0123456789ab" } },
  { api: "admin", method: "POST", path: "/admin/get_all_applications", body: { verbose: true } },
  { api: "admin", method: "POST", path: "/admin/get_application", body: { name: "a" } },
  { api: "admin", method: "POST", path: "/admin/get_linked_models", body: { app_name: "a" } },
  { api: "admin", method: "POST", path: "/admin/get_all_models", body: { verbose: true } },
  { api: "admin", method: "POST", path: "/admin/get_model", body: { model_name: "m", model_version: "1" } },
  { api: "admin", method: "POST", path: "/admin/get_all_containers", body: { verbose: true } },
  { api: "admin", method: "POST", path: "/admin/get_container", body: { model_name: "m", model_version: "1", replica_id: 0 } },
  { api: "admin", method: "POST", path: "/admin/get_state", body: { app_name: "a", uid: 0 } },
  { api: "admin", method: "POST", path: "/admin/get_policy_state", body: { app_name: "a" } },
  { api: "admin", method: "POST", path: "/admin/get_api_keys", body: {} },
  { api: "admin", method: "POST", path: "/admin/set_autoscaling", body: { model_name: "m", model_version: "1", min_replicas: 0, max_replicas: 4, target_queue_per_replica: 2, scale_down_delay_s: 10 } },
  { api: "admin", method: "POST", path: "/admin/get_autoscaling", body: { model_name: "m" } },
  { api: "admin", method: "GET", path: "/admin/get_autoscaler_events?since=0&limit=10" },
  { api: "admin", method: "POST", path: "/admin/set_num_replicas", body: { model_name: "m", model_version: "1", num_replicas: 2 } },
  { api: "admin", method: "GET", path: "/admin/get_scale_requests" },
  { api: "admin", method: "POST", path: "/admin/complete_scale_request", body: { seq: 1, model_name: "m", model_version: "1", num_replicas: 2, from: 1 } },
  { api: "admin", method: "GET", path: "/metrics" },
  { api: "admin", method: "GET", path: "/admin/ping" },
  { api: "admin", method: "GET", path: "/admin/live" },
  { api: "query", method: "POST", path: "/N/predict", body: { input: [1, 2, 3] } },
  { api: "query", method: "POST", path: "/N/update", body: { uid: 1, input: [1, 2], label: 1 } },
  { api: "query", method: "POST", path: "/v2/models/N/infer", body: { inputs: [{ name: "x", shape: [1, 2], datatype: "FP64", data: [1, 2] }] } },
  { api: "query", method: "POST", path: "/v2/models/N/versions/1/infer", body: { inputs: [{ name: "x", shape: [2], datatype: "FP64", data: [1, 2] }] } },
  { api: "query", method: "GET", path: "/v2/models/N" },
  { api: "query", method: "GET", path: "/v2/models/N/ready" },
  { api: "query", method: "GET", path: "/v2" },
  { api: "query", method: "GET", path: "/health" },
];

interface FuzzRequest {
  api: "admin" | "query";
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

/** Replaces name-like string values (and keys) deep in a body. */
function renameDeep(value: unknown, pick: () => string, random: () => number): unknown {
  if (typeof value === "string") return random() < 0.5 ? pick() : value;
  if (Array.isArray(value)) return value.map((v) => renameDeep(v, pick, random));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      // defineProperty: a "__proto__" key becomes an own property, as JSON.parse makes it on the server.
      Object.defineProperty(out, random() < 0.2 ? pick() : k, { value: renameDeep(v, pick, random), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return value;
}

function mutate(t: Template, random: () => number): FuzzRequest {
  const pickOf = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const name = () => pickOf(NAMES);
  let body: unknown = t.body === undefined ? undefined : structuredClone(t.body);
  let path = t.path.replace("N", random() < 0.7 ? pickOf(PROTO_NAMES) : name());
  let method: string = t.method;
  const headers: Record<string, string> = t.method === "POST" ? { "content-type": "application/json" } : {};
  let text: string | undefined;
  const mutations = 1 + Math.floor(random() * 3);
  for (let i = 0; i < mutations; i++) {
    switch (Math.floor(random() * 11)) {
      case 0:
      case 1: // names → prototype names
        body = renameDeep(body, () => (random() < 0.8 ? pickOf(PROTO_NAMES) : name()), random);
        break;
      case 2: // a field changes JSON type or becomes huge
        if (body && typeof body === "object" && !Array.isArray(body)) {
          const keys = Object.keys(body);
          if (keys.length > 0) (body as Record<string, unknown>)[pickOf(keys)] = pickOf(ODD_VALUES);
        }
        break;
      case 3: // a field goes missing
        if (body && typeof body === "object" && !Array.isArray(body)) {
          const keys = Object.keys(body);
          if (keys.length > 0) delete (body as Record<string, unknown>)[pickOf(keys)];
        }
        break;
      case 4: // the whole body is another JSON value
        body = pickOf(ODD_VALUES);
        break;
      case 5: // Content-Type
        {
          const type = pickOf(CONTENT_TYPES);
          if (type === undefined) delete headers["content-type"];
          else headers["content-type"] = type;
        }
        break;
      case 6:
        headers.origin = pickOf(ORIGINS);
        break;
      case 7:
        headers.host = pickOf(HOSTS);
        break;
      case 8: // truncated (the length says so: not a slow-loris test)
        text = JSON.stringify(body ?? {});
        text = text.slice(0, Math.floor(random() * text.length));
        break;
      case 9: // the path: encodings, trailing slashes, another method
        path = pickOf([path + "/", path.replace(/\/([^/]+)\//, "/%63onstructor/"), path.replace(/\/([^/]+)\//, "/%/"), path + "?x=%", path.toUpperCase(), path]);
        if (random() < 0.3) method = pickOf(["GET", "POST", "PUT", "DELETE", "OPTIONS"]);
        break;
      case 10: // deep nesting and numbers JSON cannot hold
        text = pickOf(["[".repeat(20_000), `{"name": 1e999}`, `{"input": [${"9".repeat(400)}]}`, `{"a":${"[".repeat(3000)}${"]".repeat(3000)}}`]);
        break;
    }
  }
  return { api: t.api, method, path, headers, body: text ?? (t.method === "GET" && method === "GET" ? undefined : JSON.stringify(body ?? null)) };
}

interface Answer {
  status: number;
  text: string;
}

function send(base: string, r: FuzzRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const req = request({
      host: url.hostname, port: url.port, method: r.method, path: r.path, agent: false,
      headers: { ...r.headers, ...(r.body === undefined ? {} : { "content-length": String(Buffer.byteLength(r.body)) }) },
    }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.setTimeout(20_000, () => req.destroy(new Error("no answer within 20 s")));
    req.on("error", reject);
    req.end(r.body);
  });
}

/** A 503 from the query API is an answer (no replica, shed) when it is a JSON error; 500s never are. */
/** The store's last line of defence: an operation let through a change it should have refused. */
const INCONSISTENT = "would leave the configuration inconsistent";

function acceptable(r: FuzzRequest, a: Answer): boolean {
  if (a.text.includes(INCONSISTENT)) return false;
  if (a.status < 500) return true;
  if (a.status !== 503 || r.api !== "query") return false;
  try {
    const body = JSON.parse(a.text) as { error?: unknown };
    return typeof body.error === "string";
  } catch {
    return false;
  }
}

describe("fuzzing both HTTP APIs", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "clipper-fuzz-"));
  let daemon: Daemon | undefined;
  let frontend: RunningFrontend | undefined;
  let replica: ContainerRpcClient | undefined;

  beforeAll(async () => {
    ensureDaemonBuilt();
    daemon = await startDaemon(["--state-dir", stateDir, "--port", "0"]);
  });
  afterAll(async () => {
    await replica?.stop();
    await frontend?.close();
    daemon?.child.kill("SIGKILL");
    rmSync(stateDir, { recursive: true, force: true });
  });

  it(`answers every mutated request without a 5xx, and the state survives a restart (seed ${SEED})`, async () => {
    const admin = (path: string, body: unknown) => send(daemon!.url, {
      api: "admin", method: "POST", path, headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    // Something to read and query: an application linked to a model with a live replica.
    expect((await admin("/admin/add_app", TEMPLATES[0]!.body)).status).toBe(200);
    expect((await admin("/admin/add_model", MODEL)).status).toBe(200);
    expect((await admin("/admin/add_model_links", { app_name: "a", model_names: ["m"] })).status).toBe(200);
    frontend = await startQueryFrontend({
      host: "127.0.0.1", port: 0, rpcPort: 0, managementUrl: daemon!.url, log: pino({ level: "silent" }), reportIntervalMs: 500, queryAuth: "none",
      rpcAuth: "plain", rpcKey: TEST_RPC_KEY,
    });
    let registered = false;
    replica = new ContainerRpcClient({
      address: `tcp://127.0.0.1:${frontend.rpcPort}`, metadata: { name: "m", version: "1", inputType: "doubles" },
      rpcSecret: versionSecret(TEST_RPC_KEY, { name: "m", version: "1", inputType: "doubles" }),
      handleBatch: sumHandler, heartbeatIntervalMs: 200, onRegistered: () => { registered = true; },
    });
    replica.start();
    await waitFor(() => registered && frontend!.state() !== undefined, 10_000, "the replica and the frontend's configuration");

    const random = rng(SEED);
    const requests = Array.from({ length: REQUESTS }, () => mutate(TEMPLATES[Math.floor(random() * TEMPLATES.length)]!, random));
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    const deadline = Date.now() + WALL_BUDGET_MS;
    let next = 0;
    let sent = 0;
    const worker = async () => {
      while (next < requests.length && Date.now() < deadline) {
        const r = requests[next++]!;
        const base = r.api === "admin" ? daemon!.url : frontend!.queryUrl;
        let answer: Answer;
        try {
          answer = await send(base, r);
        } catch (err) {
          failures.push(`${r.method} ${r.path} ${JSON.stringify(r.headers)} ${r.body?.slice(0, 120)} -> ${(err as Error).message}`);
          continue;
        }
        sent++;
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        if (!acceptable(r, answer)) {
          failures.push(`${r.method} ${r.path} ${JSON.stringify(r.headers)} ${r.body?.slice(0, 120)} -> ${answer.status} ${answer.text.slice(0, 160)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const summary = `seed ${SEED}: ${sent} requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}`;
    expect(sent, summary).toBeGreaterThan(Math.min(REQUESTS, 500));
    expect(daemon!.child.exitCode, `${summary}\n${daemon!.stderr().slice(-2000)}`).toBeNull();
    if (process.env.CLIPPER_FUZZ_REPORT) writeFileSync(process.env.CLIPPER_FUZZ_REPORT, failures.join("\n") + "\n");

    // The state file is whole and valid; a restarted daemon serves the same state from it.
    const readState = () => readDurableState(stateDir);
    const before = await admin("/admin/get_all_applications", { verbose: true });
    const modelsBefore = await admin("/admin/get_all_models", { verbose: true });
    const stored = await readState();
    daemon!.child.kill("SIGTERM");
    await new Promise((r) => daemon!.child.once("exit", r));
    daemon = await startDaemon(["--state-dir", stateDir, "--port", "0"]);
    expect(await readState()).toEqual(stored);
    expect(await admin("/admin/get_all_applications", { verbose: true })).toEqual(before);
    expect(await admin("/admin/get_all_models", { verbose: true })).toEqual(modelsBefore);
    // Last, so that a run with failures still checked the state (CLIPPER_FUZZ_REPORT=FILE keeps them all).
    expect(failures, `${summary}\n${failures.length} failures, the first ones:\n${failures.slice(0, 25).join("\n")}`).toEqual([]);
  }, 150_000);
});
