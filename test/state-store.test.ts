/**
 * The state store's integrity: the invariants function, a change that would break the schema or an
 * invariant refused before it reaches the disk, the kept generations, and recovery from the newest
 * good generation when state.json cannot be loaded (refusing, not wiping, when none can).
 * The parts that start nothing are in test/unit/state-store.test.ts.
 */
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import { beforeAll, describe, expect, it } from "vitest";
import { startManagementServer } from "../runtime/management/server.js";
import { AdminClient } from "../src/admin-client.js";
import { errorJson } from "../src/cli/error-json.js";
import { AdminApiError } from "../src/errors.js";
import { faultyJournalFs } from "./support/faulty-journal.js";
import {
  BAD_PREFIX, GENERATION_PREFIX, STATE_FILE, StateStore,
} from "../runtime/management/store.js";
import { dict } from "../runtime/shared/dict.js";
import { cloneState } from "../runtime/shared/state.js";
import { ensureDaemonBuilt, killHard, runDaemon, startDaemon } from "./support/management-daemon.js";
import { appRecord, consistent } from "./support/state-fixtures.js";
import { tempDirs } from "./support/temp-dirs.js";

const tempDir = tempDirs("clipper-store-");
/** A snapshot after every write, so that state.json and its generations hold each write, as these tests damage them. */
const EVERY_WRITE = { snapshotAfterChanges: 1 };

describe("the daemon process on a state it cannot load", () => {
  beforeAll(() => ensureDaemonBuilt());

  it("logs what is wrong, starts from the newest good generation, and serves it", async () => {
    const dir = await tempDir();
    const store = await StateStore.open(dir, EVERY_WRITE);
    await store.update(() => ({ next: consistent(), result: undefined }));
    await store.update((s) => {
      const next = cloneState(s);
      next.applications.b = appRecord("b");
      return { next, result: undefined };
    });
    await store.close();
    await writeFile(join(dir, STATE_FILE), '{"revision": 2, "applications": {"b": {"name": "b"}}, "models": {}}');
    const daemon = await startDaemon(["--state-dir", dir, "--port", "0"]);
    try {
      const apps = await fetch(`${daemon.url}/admin/get_all_applications`, {
        method: "POST", headers: { "content-type": "application/json" }, body: "{}",
      });
      expect(await apps.json()).toEqual(["a"]);
      expect((await readdir(dir)).filter((f) => f.startsWith(BAD_PREFIX))).toHaveLength(1);
    } finally {
      await killHard(daemon.child);
    }
  });

  it("says in its log which file was wrong, where and why, and what it restored", async () => {
    const dir = await tempDir();
    const store = await StateStore.open(dir, EVERY_WRITE);
    await store.update(() => ({ next: consistent(), result: undefined }));
    await store.update((s) => ({ next: { ...cloneState(s), applications: dict() }, result: undefined }));
    await store.close();
    await writeFile(join(dir, STATE_FILE), "{}");
    const lines: string[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });
    const server = await startManagementServer({ host: "127.0.0.1", port: 0, stateDir: dir, logger });
    await server.close();
    const entry = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.restoredFrom !== undefined);
    expect(entry).toMatchObject({
      level: 50,
      problem: expect.stringMatching(/state\.json is corrupt \(revision: .*applications: /),
      restoredFrom: join(dir, `${GENERATION_PREFIX}1`),
      revision: 1,
      movedTo: expect.stringContaining(BAD_PREFIX),
    });
  });

  it("exits 1 with the reason, touching nothing, when no generation loads", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, STATE_FILE), '{"revision": 1, "applications": {}, "models": {"m": {"name": "m", "current_version": "2", "versions": {}}}}');
    const result = await runDaemon(["--state-dir", dir, "--port", "0"]);
    expect(result.code).toBe(1);
    expect(result.stderr + result.stdout).toMatch(/models\.m\.current_version: version '2' does not exist/);
    expect(await readdir(dir)).toEqual([STATE_FILE]);
  });
});

describe("a write whose outcome the disk leaves unknown, through the admin API and its client", () => {
  it("is answered as such (never 'not applied'); later writes get 503 until the restart, which shows what the disk holds", async () => {
    const dir = await tempDir();
    const journal = faultyJournalFs();
    const server = await startManagementServer({ host: "127.0.0.1", port: 0, stateDir: dir, logger: pino({ level: "silent" }), openJournal: journal.openJournal });
    const client = new AdminClient({ managementUrl: server.url });
    const app = (name: string) => ({ name, input_type: "doubles", default_output: "-1", latency_slo_micros: 100_000 });
    const get = async (path: string) => {
      const res = await fetch(`${server.url}${path}`);
      return { status: res.status, text: await res.text() };
    };
    try {
      expect(await get("/admin/ping")).toEqual({ status: 200, text: "PONG" });
      expect(await client.notReadyBecause()).toBeUndefined();
      journal.fail("datasync");
      journal.fail("truncate");
      const unknown = await client.postWrite("/admin/add_app", app("maybe")).catch((err: unknown) => err);
      expect(unknown).toBeInstanceOf(AdminApiError);
      expect(unknown).toMatchObject({ status: 500, code: "WRITE_OUTCOME_UNKNOWN", exitCode: 11, hint: expect.stringMatching(/restart the management daemon/) });
      expect(JSON.parse(errorJson(unknown))).toMatchObject({ code: "WRITE_OUTCOME_UNKNOWN", error: expect.stringMatching(/^The change may or may not have been applied: /) });
      const refused = await client.postWrite("/admin/add_app", app("after")).catch((err: unknown) => err);
      expect(refused).toMatchObject({ status: 503, code: "ADMIN_REJECTED", message: expect.stringMatching(/^The change was not applied: writes are refused: .*restart the daemon/) });
      // Readiness says so, with the reason; liveness still means the process serves; reads still work.
      const ping = await get("/admin/ping");
      expect(ping.status).toBe(503);
      expect(ping.text).toMatch(/^NOT READY: the daemon refuses every write until it is restarted.*: an earlier write to .* may or may not have been saved .*EIO.*restart the daemon$/);
      expect(await client.notReadyBecause()).toBe(ping.text);
      expect(await client.ping()).toBe(false);
      expect(await get("/admin/live")).toEqual({ status: 200, text: "PONG" });
      expect(await client.postJson("/admin/get_all_applications", {})).toEqual([]);
    } finally {
      await server.close();
    }
    // The line reached the file before its fsync failed: this disk kept it, and the restart shows it.
    const restarted = await startManagementServer({ host: "127.0.0.1", port: 0, stateDir: dir, logger: pino({ level: "silent" }) });
    try {
      const apps = await new AdminClient({ managementUrl: restarted.url }).postJson<Array<{ name: string }>>("/admin/get_all_applications", { verbose: true });
      expect(apps.map((a) => a.name)).toEqual(["maybe"]);
      expect(await new AdminClient({ managementUrl: restarted.url }).notReadyBecause()).toBeUndefined();
    } finally {
      await restarted.close();
    }
  });
});
