/**
 * The management daemon: Clipper's admin API texts (replayed from clipper-transcript.md), bad
 * bodies, the watch stream, replica reports, durability across `kill -9`, and loopback access. The
 * pure parts (auth rule, flags, replica registry) are in test/unit/management.test.ts.
 */
import { readFile, writeFile } from "node:fs/promises";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ManagementServer, startManagementServer } from "../runtime/management/server.js";
import { readDurableState, STATE_FILE, StateFileError, StateStore } from "../runtime/management/store.js";
import { WatchHub } from "../runtime/management/watch.js";
import { emptyState, REPORT_REPLICAS_PATH, WATCH_PATH } from "../runtime/shared/state.js";
import { ensureDaemonBuilt, killHard, LineReader, runDaemon, startDaemon } from "./support/management-daemon.js";
import { appRecord, replicaRecord } from "./support/state-fixtures.js";
import { tempDirs } from "./support/temp-dirs.js";

const silent = pino({ level: "silent" });
const tempDir = tempDirs("clipper-mgmt-");

interface Answer {
  status: number;
  text: string;
  contentType: string | null;
}

async function call(base: string, method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(base + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, text: await res.text(), contentType: res.headers.get("content-type") };
}

const post = (base: string, path: string, body?: unknown) => call(base, "POST", path, body);

/** Starts an in-process server on 127.0.0.1:0 with a fresh state dir. */
async function startServer(extra: Partial<Parameters<typeof startManagementServer>[0]> = {}) {
  const stateDir = extra.stateDir ?? (await tempDir());
  const server = await startManagementServer({ host: "127.0.0.1", port: 0, stateDir, logger: silent, ...extra });
  return { server, stateDir };
}

const APP_A1 = { name: "a1", input_type: "doubles", default_output: "-1.0", latency_slo_micros: 100000 };
const MODEL_M1 = {
  model_name: "m",
  model_version: "1",
  labels: [],
  input_type: "doubles",
  container_name: "NO_CONTAINER",
  model_data_path: "x",
  batch_size: -1,
};

describe("Clipper's admin transcript", () => {
  let server: ManagementServer;
  beforeAll(async () => {
    ({ server } = await startServer());
  });
  afterAll(() => server.close());

  // Every line of the admin part of shared/design/clipper-transcript.md, in order.
  // [method, path, body, status, exact text | (text) => check]
  type Row = [string, string, unknown, number, string | ((text: string) => void)];
  const rows: Row[] = [
    ["GET", "/admin/ping", undefined, 200, "PONG"],
    ["POST", "/admin/add_app", APP_A1, 200, "Successfully added application with name 'a1'"],
    ["POST", "/admin/add_app", APP_A1, 400, "application 'a1' already exists"],
    ["POST", "/admin/delete_app", { name: "nope" }, 400, "Application 'nope' does not exist"],
    ["POST", "/admin/add_model_links", { app_name: "nope", model_names: ["m"] }, 400, "No app with name 'nope' exists."],
    ["POST", "/admin/add_model_links", { app_name: "a1", model_names: ["m"] }, 400, "No model with name 'm' exists."],
    ["POST", "/admin/add_model", MODEL_M1, 200, "Successfully added model with name 'm' and input type 'doubles'"],
    ["POST", "/admin/add_model", MODEL_M1, 400, "model with name 'm' and version '1' already exists"],
    ["POST", "/admin/add_model", { ...MODEL_M1, model_name: "m,x" }, 400,
      "Invalid model name supplied: m,x. Contains one of: ',', ':'"],
    ["POST", "/admin/add_model", { ...MODEL_M1, model_version: "2", batch_size: 0 }, 400,
      "The batch size must be positive or DEFAULT_BATCH_SIZE, which is -1"],
    ["POST", "/admin/add_model_links", { app_name: "a1", model_names: ["m"] }, 200,
      "Successfully linked model with name 'm' to application 'a1'"],
    ["POST", "/admin/add_model_links", { app_name: "a1", model_names: ["m"] }, 400,
      "The model with name 'm' is already linked to 'a1'"],
    ["POST", "/admin/delete_model_links", { app_name: "a1", model_names: ["zz"] }, 400,
      "Cannot remove nonexistent link between app a1 and model zz"],
    ["POST", "/admin/set_model_version", { model_name: "m", model_version: "9" }, 400,
      "Cannot set non-existent version '9' for model with name 'm'"],
    ["POST", "/admin/set_model_version", { model_name: "zz", model_version: "1" }, 400,
      "Cannot set version for nonexistent model 'zz'"],
    ["POST", "/admin/get_all_applications", { verbose: true }, 200,
      '[{"input_type":"doubles","default_output":"-1.0","latency_slo_micros":100000,"name":"a1","linked_models":["m"]}]'],
    ["POST", "/admin/get_application", { name: "zz" }, 200, "{}"],
    ["POST", "/admin/get_linked_models", { app_name: "zz" }, 400, "No application with name 'zz' exists."],
    // Clipper answered labels [""] here (a bug); we keep [].
    ["POST", "/admin/get_all_models", { verbose: true }, 200,
      '[{"model_name":"m","model_version":"1","input_type":"doubles","labels":[],"container_name":"NO_CONTAINER",' +
        '"model_data_path":"x","is_current_version":true}]'],
    ["POST", "/admin/get_all_containers", { verbose: false }, 200, "[]"],
    // Clipper answered nothing at all; we answer 400 with a message.
    ["POST", "/admin/add_app", { ...APP_A1, name: "a2", input_type: "quaternions" }, 400,
      (t) => expect(t).toMatch(/^Invalid input type 'quaternions'\. Expected one of: bytes, integers, floats, doubles, strings/)],
    ["POST", "/admin/add_app", { name: "a3" }, 400,
      (t) => expect(t).toMatch(/^Error parsing JSON: JSON object does not have required key: input_type\. Expected JSON schema: \{/)],
  ];

  it("answers every line with Clipper's status and text", async () => {
    for (const [method, path, body, status, expected] of rows) {
      const answer = await call(server.url, method, path, body);
      const where = `${method} ${path} ${JSON.stringify(body)}`;
      expect(answer.status, where).toBe(status);
      if (typeof expected === "string") expect(answer.text, where).toBe(expected);
      else expected(answer.text);
    }
  });
});

describe("admin endpoints beyond the transcript", () => {
  let server: ManagementServer;
  let base: string;
  beforeAll(async () => {
    ({ server } = await startServer());
    base = server.url;
    expect((await post(base, "/admin/add_app", APP_A1)).status).toBe(200);
    expect((await post(base, "/admin/add_model", MODEL_M1)).status).toBe(200);
  });
  afterAll(() => server.close());

  it("answers texts as text/plain and listings as JSON", async () => {
    const pong = await call(base, "GET", "/admin/ping");
    expect(pong.contentType).toMatch(/^text\/plain/);
    const apps = await post(base, "/admin/get_all_applications", { verbose: false });
    expect(apps.contentType).toBe("application/json");
    expect(JSON.parse(apps.text)).toEqual(["a1"]);
  });

  it("stores input type aliases in canonical form", async () => {
    const added = await post(base, "/admin/add_app", { ...APP_A1, name: "ints-app", input_type: " Ints " });
    expect(added).toMatchObject({ status: 200, text: "Successfully added application with name 'ints-app'" });
    const model = await post(base, "/admin/add_model", { ...MODEL_M1, model_name: "im", input_type: "i" });
    expect(model.text).toBe("Successfully added model with name 'im' and input type 'integers'");
    const app = JSON.parse((await post(base, "/admin/get_application", { name: "ints-app" })).text);
    expect(app).toEqual({ input_type: "integers", default_output: "-1.0", latency_slo_micros: 100000, name: "ints-app", linked_models: [] });
  });

  it("refuses an incompatible input type and a second model under the default policy", async () => {
    await post(base, "/admin/add_app", { ...APP_A1, name: "solo" });
    const bad = await post(base, "/admin/add_model_links", { app_name: "solo", model_names: ["im"] });
    expect(bad).toMatchObject({
      status: 400,
      text: "Model with name 'im' has incompatible input_type 'integers'. Requested app to link to has input_type 'doubles'.",
    });
    await post(base, "/admin/add_model", { ...MODEL_M1, model_name: "other" });
    expect((await post(base, "/admin/add_model_links", { app_name: "solo", model_names: ["m"] })).status).toBe(200);
    const second = await post(base, "/admin/add_model_links", { app_name: "solo", model_names: ["other"] });
    expect(second).toMatchObject({
      status: 400,
      text: "Application 'solo' already has a linked model ('m'); the default selection policy serves one model",
    });
    const two = await post(base, "/admin/add_model_links", { app_name: "ints-app", model_names: ["im", "im2"] });
    expect(two.status).toBe(400);
    const none = await post(base, "/admin/add_model_links", { app_name: "ints-app", model_names: [] });
    expect(none).toMatchObject({ status: 400, text: "Please provide the name of the model that you want to link to the application 'ints-app'" });
    // A new version of a linked model must keep the application's input type.
    const retyped = await post(base, "/admin/add_model", { ...MODEL_M1, model_version: "7", input_type: "floats" });
    expect(retyped.status).toBe(400);
    expect(retyped.text).toMatch(/^Model with name 'm' is already linked to app '(a1|solo)' using input type 'doubles'/);
  });

  it("rolls versions forward and back, and deletes versions", async () => {
    expect((await post(base, "/admin/add_model", { ...MODEL_M1, model_version: "2" })).status).toBe(200);
    const models = async () => JSON.parse((await post(base, "/admin/get_all_models", { verbose: true })).text) as any[];
    const current = async () => (await models()).filter((m) => m.model_name === "m" && m.is_current_version).map((m) => m.model_version);
    expect(await current()).toEqual(["2"]); // add_model makes the new version current
    const back = await post(base, "/admin/set_model_version", { model_name: "m", model_version: "1" });
    expect(back).toMatchObject({ status: 200, text: "Successfully set model with name 'm' to version '1'" });
    expect(await current()).toEqual(["1"]);
    expect(JSON.parse((await post(base, "/admin/get_all_models", { verbose: false })).text)).toEqual(
      expect.arrayContaining(["m:1", "m:2"]),
    );
    const one = JSON.parse((await post(base, "/admin/get_model", { model_name: "m", model_version: "2" })).text);
    expect(one).toMatchObject({ model_name: "m", model_version: "2", is_current_version: false, labels: [] });
    expect((await post(base, "/admin/get_model", { model_name: "m", model_version: "42" })).text).toBe("{}");

    // Deleting the current version leaves no current version (no silent fallback).
    const del = await post(base, "/admin/delete_versioned_model", { model_name: "m", model_version: "1" });
    expect(del).toMatchObject({ status: 200, text: "Successfully deleted model with name 'm' and version '1'" });
    expect(await current()).toEqual([]);
    const again = await post(base, "/admin/delete_versioned_model", { model_name: "m", model_version: "1" });
    expect(again).toMatchObject({ status: 400, text: "model with name 'm' and version '1' does not exist" });
    expect((await post(base, "/admin/set_model_version", { model_name: "m", model_version: "2" })).status).toBe(200);
    expect(await current()).toEqual(["2"]);
  });

  it("unlinks, deletes applications and answers get_state", async () => {
    expect(await post(base, "/admin/get_state", { app_name: "a1", uid: 0 })).toMatchObject({ status: 200, text: "-1.0" });
    expect((await post(base, "/admin/get_state", { app_name: "zz", uid: 0 })).status).toBe(400);
    expect(JSON.parse((await post(base, "/admin/get_linked_models", { app_name: "a1" })).text)).toEqual([]);
    await post(base, "/admin/add_model_links", { app_name: "a1", model_names: ["m"] });
    expect(JSON.parse((await post(base, "/admin/get_linked_models", { app_name: "a1" })).text)).toEqual(["m"]);
    expect(await post(base, "/admin/delete_model_links", { app_name: "a1", model_names: ["m"] })).toMatchObject({
      status: 200,
      text: "Success!",
    });
    expect((await post(base, "/admin/delete_model_links", { app_name: "nope", model_names: ["m"] })).text).toBe(
      "No app with name nope exists.",
    );
    expect(await post(base, "/admin/delete_app", { name: "solo" })).toMatchObject({
      status: 200,
      text: "Successfully deleted application with name 'solo'",
    });
    expect((await post(base, "/admin/get_application", { name: "solo" })).text).toBe("{}");
  });

  it("answers 400 with a message for every kind of bad body", async () => {
    const cases: [string, unknown, RegExp][] = [
      ["/admin/add_app", "{not json", /^Error parsing JSON: the body is not valid JSON \(.+\)\. Expected JSON schema: /],
      ["/admin/add_app", "[1,2]", /^Error parsing JSON: the body must be a JSON object\./],
      ["/admin/add_app", "null", /^Error parsing JSON: the body must be a JSON object\./],
      ["/admin/add_app", "", /JSON object does not have required key: name\./],
      ["/admin/add_app", { ...APP_A1, name: 5 }, /the value of 'name' is invalid: expected string, received number/],
      ["/admin/add_app", { ...APP_A1, name: "Bad_Name" }, /^application name 'Bad_Name' must consist of lower case/],
      ["/admin/add_app", { ...APP_A1, name: "a:b" }, /^Invalid application name supplied: a:b\. Contains one of/],
      ["/admin/add_app", { ...APP_A1, name: "x1", latency_slo_micros: 0 }, /^latency_slo_micros must be a positive integer/],
      ["/admin/add_app", { ...APP_A1, name: "x1", latency_slo_micros: 1.5 }, /^latency_slo_micros must be a positive integer/],
      ["/admin/add_app", { ...APP_A1, name: "x1", latency_slo_micros: "100" }, /the value of 'latency_slo_micros' is invalid/],
      ["/admin/add_model", { ...MODEL_M1, labels: ["ok", 3] }, /the value of 'labels\[1\]' is invalid/],
      ["/admin/add_model", { ...MODEL_M1, model_version: "v:1" }, /^Invalid model version supplied: v:1/],
      ["/admin/add_model", { ...MODEL_M1, model_version: "V1" }, /^model version 'V1' must consist/],
      ["/admin/add_model", { ...MODEL_M1, model_version: "9", labels: ["a,b"] }, /^Invalid label supplied: a,b/],
      ["/admin/add_model", { ...MODEL_M1, model_version: "9", input_type: "tensor" }, /^Invalid input type 'tensor'/],
      ["/admin/add_model", { ...MODEL_M1, model_version: "9", batch_size: 2.5 }, /^The batch size must be positive/],
      ["/admin/get_all_models", { verbose: "yes" }, /the value of 'verbose' is invalid/],
      ["/admin/get_container", { model_name: "m", model_version: "1" }, /required key: replica_id/],
      [REPORT_REPLICAS_PATH, { frontend_id: "f", replicas: [{ model_name: "m" }] }, /^Error parsing JSON: the value of 'replicas\[0\]\./],
    ];
    for (const [path, body, pattern] of cases) {
      const answer = await post(base, path, body);
      expect(answer.status, `${path} ${JSON.stringify(body)}`).toBe(400);
      expect(answer.contentType).toMatch(/^text\/plain/);
      expect(answer.text, `${path} ${JSON.stringify(body)}`).toMatch(pattern);
    }
    // The server is still fine afterwards.
    expect((await call(base, "GET", "/admin/ping")).text).toBe("PONG");
  });

  it("ignores unknown extra fields (a newer client's)", async () => {
    // "policy" is a known field now (test/policies.test.ts checks it); any other extra is ignored.
    const answer = await post(base, "/admin/add_app", { ...APP_A1, name: "with-extra", owner: { team: "x" } });
    expect(answer.status).toBe(200);
    expect(JSON.parse((await post(base, "/admin/get_application", { name: "with-extra" })).text)).not.toHaveProperty("owner");
  });

  it("answers 404 for an unknown path and 405 for a wrong method", async () => {
    expect(await call(base, "GET", "/admin/nope")).toMatchObject({ status: 404, text: "No admin endpoint at /admin/nope" });
    const wrong = await fetch(base + "/admin/add_app");
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("POST");
    expect(await wrong.text()).toBe("Method GET is not allowed on /admin/add_app; use POST");
    expect((await call(base, "POST", "/admin/ping")).status).toBe(405);
    expect((await call(base, "GET", "/admin/ping/")).text).toBe("PONG"); // trailing slash allowed
  });

  it("answers 413 for a body over the limit, declared or streamed", async () => {
    const { server: small } = await startServer({ maxBodyBytes: 1024 });
    try {
      const big = JSON.stringify({ name: "x".repeat(2048) });
      const declared = await post(small.url, "/admin/get_application", big);
      expect(declared.status).toBe(413);
      expect(declared.text).toBe("Request body is larger than the limit of 1024 bytes");

      // Chunked upload (no Content-Length) that keeps going past the limit.
      const streamed = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = httpRequest(small.url + "/admin/get_application", { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on("error", reject);
        req.write("x".repeat(600));
        req.write("x".repeat(600));
        // Never ended by us: the server must answer without waiting for the rest.
      });
      expect(streamed).toEqual({ status: 413, text: "Request body is larger than the limit of 1024 bytes" });
      // A huge default-limit upload also gets its 413.
      const huge = await post(base, "/admin/add_app", "x".repeat(1024 * 1024 + 1));
      expect(huge.status).toBe(413);
    } finally {
      await small.close();
    }
  });

  it("serializes concurrent writes: every one applied once, revisions consecutive", async () => {
    const before = JSON.parse((await post(base, "/admin/get_all_applications", {})).text) as string[];
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => post(base, "/admin/add_app", { ...APP_A1, name: `c${i}` })),
    );
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const after = JSON.parse((await post(base, "/admin/get_all_applications", {})).text) as string[];
    expect(after.length).toBe(before.length + 40);
    // Concurrent duplicates: exactly one wins.
    const dups = await Promise.all(Array.from({ length: 10 }, () => post(base, "/admin/add_app", { ...APP_A1, name: "dup" })));
    expect(dups.filter((a) => a.status === 200)).toHaveLength(1);
    expect(dups.filter((a) => a.text === "application 'dup' already exists")).toHaveLength(9);
  });
});

describe("state on disk", () => {
  it("persists every acknowledged write (state.json and the journal) with its revision", async () => {
    const { server, stateDir } = await startServer();
    try {
      await post(server.url, "/admin/add_app", APP_A1);
      await post(server.url, "/admin/add_model", MODEL_M1);
      const onDisk = await readDurableState(stateDir);
      expect(onDisk.revision).toBe(2);
      expect(onDisk.applications.a1?.name).toBe("a1");
      expect(onDisk.models.m?.current_version).toBe("1");
    } finally {
      await server.close();
    }
    // A restart on the same directory serves the same state.
    const { server: again } = await startServer({ stateDir });
    try {
      expect(JSON.parse((await post(again.url, "/admin/get_all_models", {})).text)).toEqual(["m:1"]);
    } finally {
      await again.close();
    }
  });

  it("refuses to start on a corrupt state file and leaves it alone", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, STATE_FILE), '{"revision": 3, "applications": {');
    await expect(startManagementServer({ host: "127.0.0.1", port: 0, stateDir: dir, logger: silent })).rejects.toThrow(
      /state file .* is corrupt \(invalid JSON.*refusing to start/,
    );
    await writeFile(join(dir, STATE_FILE), JSON.stringify({ revision: -1, applications: {}, models: {} }));
    await expect(StateStore.open(dir)).rejects.toBeInstanceOf(StateFileError);
    expect(await readFile(join(dir, STATE_FILE), "utf8")).toContain('"revision":-1');
  });

  it("does not persist or bump the revision for a write that changes nothing", async () => {
    const store = await StateStore.open(await tempDir());
    const unchanged = await store.update(() => ({ result: "same" }));
    expect(unchanged).toBe("same");
    expect(store.state.revision).toBe(0);
    // A next state equal to the current one changes nothing either.
    await store.update((s) => ({ next: { ...s, applications: {} }, result: 1 }));
    expect(store.state.revision).toBe(0);
    await store.update((s) => ({ next: { ...s, applications: { a: appRecord("a") } }, result: 1 }));
    expect(store.state.revision).toBe(1);
    expect(Object.isFrozen(store.state.applications.a)).toBe(true);
    await store.close();
  });
});

describe("watch stream", () => {
  it("sends the state at once, then what each change changed", async () => {
    const { server } = await startServer();
    try {
      const controller = new AbortController();
      const res = await fetch(server.url + WATCH_PATH, { signal: controller.signal });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/x-ndjson");
      const lines = new LineReader(res.body!);
      const first = await lines.nextUpdate();
      // The daemon instance: revisions compare only within one (docs/architecture.md).
      expect(first).toEqual({ revision: 0, daemon: expect.stringMatching(/^[0-9a-f-]{36}$/), state: emptyState() });

      await post(server.url, "/admin/add_app", APP_A1);
      const second = await lines.nextUpdate();
      // Only the application added, from the revision the snapshot held (state-delta.ts).
      expect(second).toEqual({
        revision: 1, base: 0, daemon: first.daemon,
        changes: [{ field: "applications", key: "a1", value: expect.objectContaining({ name: "a1", input_type: "doubles" }) }],
      });

      // A refused write publishes nothing; the next good one does.
      await post(server.url, "/admin/add_app", APP_A1);
      await post(server.url, "/admin/add_model", MODEL_M1);
      const third = await lines.nextUpdate();
      expect(third).toMatchObject({ revision: 2, base: 1 });
      expect(third.changes).toEqual([{ field: "models", key: "m", value: expect.objectContaining({ current_version: "1" }) }]);

      // What a later client starts from: the whole state at the last revision.
      const again = await fetch(server.url + WATCH_PATH);
      const fresh = new LineReader(again.body!);
      const snapshot = await fresh.nextUpdate();
      expect(snapshot.revision).toBe(2);
      expect(Object.keys(snapshot.state.applications)).toEqual(["a1"]);
      await fresh.cancel();
      controller.abort();
      await lines.cancel();
    } finally {
      // close() ends open streams rather than waiting on them.
      await server.close();
    }
  });

  it("sends {} keepalive lines", async () => {
    const { server } = await startServer({ watchKeepaliveMs: 50 });
    try {
      const res = await fetch(server.url + WATCH_PATH);
      const lines = new LineReader(res.body!);
      JSON.parse(await lines.next());
      expect(await lines.next()).toBe("{}");
      expect(await lines.next()).toBe("{}");
      await lines.cancel();
    } finally {
      await server.close();
    }
  });

  it("forgets a client that disconnects", async () => {
    const hub = new WatchHub(1000);
    const http = createServer((req, res) => hub.subscribe(req, res, emptyState()));
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    try {
      const controller = new AbortController();
      const res = await fetch(`http://127.0.0.1:${(http.address() as AddressInfo).port}/`, { signal: controller.signal });
      const lines = new LineReader(res.body!);
      await lines.next();
      expect(hub.size).toBe(1);
      controller.abort();
      await lines.cancel();
      for (let i = 0; i < 100 && hub.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(hub.size).toBe(0);
    } finally {
      hub.close();
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    }
  });
});

describe("the daemon process", () => {
  beforeAll(() => ensureDaemonBuilt());

  it("keeps every acknowledged write across kill -9", async () => {
    const stateDir = await tempDir();
    const args = ["--state-dir", stateDir, "--port", "0"];
    const acknowledged: string[] = [];

    // One write per life: kill -9 the moment its 200 arrives.
    for (let i = 0; i < 4; i++) {
      const daemon = await startDaemon(args);
      const res = await fetch(daemon.url + "/admin/add_app", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...APP_A1, name: `k${i}` }),
      });
      if (res.status === 200) await killHard(daemon.child);
      expect(res.status).toBe(200);
      acknowledged.push(`k${i}`);
    }

    // Many writes in flight: kill -9 as soon as the first 200 arrives; every 200 must survive.
    const daemon = await startDaemon(args);
    let killed: Promise<void> | undefined;
    const results = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        try {
          const res = await fetch(daemon.url + "/admin/add_model", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ ...MODEL_M1, model_name: `burst-${i}` }),
          });
          if (res.status === 200) killed ??= killHard(daemon.child);
          return res.status === 200 ? `burst-${i}:1` : undefined;
        } catch {
          return undefined; // cut off by the kill: not acknowledged
        }
      }),
    );
    await (killed ?? killHard(daemon.child));
    const burst = results.filter((r): r is string => r !== undefined);
    expect(burst.length).toBeGreaterThan(0);

    const restarted = await startDaemon(args);
    try {
      const apps = JSON.parse((await post(restarted.url, "/admin/get_all_applications", { verbose: false })).text);
      expect(apps).toEqual(expect.arrayContaining(acknowledged));
      const models = JSON.parse((await post(restarted.url, "/admin/get_all_models", { verbose: false })).text);
      expect(models).toEqual(expect.arrayContaining(burst));
    } finally {
      await killHard(restarted.child);
    }
  });

  it("exits 0 on SIGTERM", async () => {
    const daemon = await startDaemon(["--state-dir", await tempDir(), "--port", "0"]);
    const exited = new Promise<number | null>((resolve) => daemon.child.once("exit", (code) => resolve(code)));
    daemon.child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("rejects a bad flag with one line and exit 2", async () => {
    const result = await runDaemon(["--state-dir", "/tmp/x", "--bogus"]);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stderr).toMatch(/^management: .*--bogus/);
    const missing = await runDaemon([]);
    expect(missing).toMatchObject({ code: 2, stderr: "management: --state-dir is required (--help for usage)\n" });
  });

  it("refuses to start on a corrupt state file (exit 1)", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, STATE_FILE), "garbage");
    const result = await runDaemon(["--state-dir", dir, "--port", "0"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/is corrupt/);
  });
});

describe("replica reports", () => {
  const replica = replicaRecord;
  it("shows the union of the frontends' reports in get_all_containers and get_container", async () => {
    const { server } = await startServer();
    try {
      const report = await post(server.url, REPORT_REPLICAS_PATH, { frontend_id: "f1", replicas: [replica("m", "1", 0), replica("m", "1", 1)] });
      expect(report).toMatchObject({ status: 200, text: "Recorded 2 replicas for frontend 'f1'" });
      await post(server.url, REPORT_REPLICAS_PATH, { frontend_id: "f2", replicas: [replica("a", "2", 0)] });
      const names = JSON.parse((await post(server.url, "/admin/get_all_containers", { verbose: false })).text);
      expect(names).toEqual(["a:2:0", "m:1:0", "m:1:1"]);
      const verbose = JSON.parse((await post(server.url, "/admin/get_all_containers", { verbose: true })).text);
      expect(verbose[0]).toEqual({ model_id: "a:2", model_name: "a", model_version: "2", model_replica_id: 0, input_type: "doubles" });
      const one = await post(server.url, "/admin/get_container", { model_name: "m", model_version: "1", replica_id: 1 });
      expect(JSON.parse(one.text)).toEqual(replica("m", "1", 1));
      expect((await post(server.url, "/admin/get_container", { model_name: "m", model_version: "1", replica_id: 7 })).text).toBe("{}");
      // A new report replaces that frontend's list.
      await post(server.url, REPORT_REPLICAS_PATH, { frontend_id: "f1", replicas: [] });
      expect(JSON.parse((await post(server.url, "/admin/get_all_containers", {})).text)).toEqual(["a:2:0"]);
    } finally {
      await server.close();
    }
  });
});

describe("access control", () => {
  it("lets loopback clients in without a token", async () => {
    const { server } = await startServer({ token: "s3cret" });
    try {
      expect((await call(server.url, "GET", "/admin/ping")).text).toBe("PONG");
    } finally {
      await server.close();
    }
  });
});
