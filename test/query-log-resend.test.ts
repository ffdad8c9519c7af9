/**
 * A query log report sent again is stored once. The frontend's shipper (QueryLogShipper over
 * management-post.ts) resends a report when its kept-alive connection fails with ECONNRESET before
 * any answer; the daemon (a real process on 127.0.0.1) may have stored it by then. Between them a
 * TCP relay on 127.0.0.1 lets the second report through to the daemon and, once the daemon's
 * answer comes (it stored the report), resets the frontend's connection instead of passing the
 * answer on — with the daemon left running, or killed (SIGKILL) and started again on its state.
 */
import { createServer, type Server, type Socket, connect } from "node:net";
import pino from "pino";
import { Registry } from "prom-client";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { QueryLogRecorder } from "../runtime/frontend/query-log-recorder.js";
import { QueryLogShipper } from "../runtime/frontend/query-log-shipper.js";
import { dict } from "../runtime/shared/dict.js";
import { EXPORT_QUERY_LOG_PATH, GET_QUERY_LOG_PATH, type ExportedQuery } from "../runtime/shared/query-log.js";
import { type Daemon, ensureDaemonBuilt, killHard, startDaemon } from "./support/management-daemon.js";
import { appRecord, consistent } from "./support/state-fixtures.js";
import { tempDirs } from "./support/temp-dirs.js";

const tempDir = tempDirs("clipper-qlog-resend-");
const APP = "resent";
const log = pino({ level: "silent" });

/**
 * Relays connections to the daemon's port. `onAnswer`, when set, takes the next answer's first
 * bytes instead of passing them on: the relay runs it, then resets the client's connection.
 */
class ResettingRelay {
  onAnswer?: () => Promise<void>;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(public upstreamPort: number) {
    this.server = createServer((client) => {
      const upstream = connect(this.upstreamPort, "127.0.0.1");
      this.sockets.add(client).add(upstream);
      let cut = false;
      client.on("data", (d) => upstream.write(d));
      upstream.on("data", (d) => {
        if (cut) return;
        const hook = this.onAnswer;
        if (!hook) return void client.write(d);
        cut = true;
        this.onAnswer = undefined;
        void hook().then(() => client.resetAndDestroy());
      });
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => !cut && client.destroy());
      client.on("error", () => undefined);
      upstream.on("error", () => undefined);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

async function call(base: string, path: string, body: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(new URL(path, base), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
}

const startOn = (stateDir: string) => startDaemon(["--state-dir", stateDir, "--host", "127.0.0.1", "--port", "0"]);
const portOf = (daemon: Daemon) => Number(new URL(daemon.url).port);

let daemon: Daemon | undefined;
let relay: ResettingRelay | undefined;

beforeAll(() => ensureDaemonBuilt());

afterEach(async () => {
  await relay?.close();
  if (daemon) await killHard(daemon.child);
  relay = daemon = undefined;
});

describe("a query log report sent again after the daemon stored it", () => {
  for (const restart of [false, true]) {
    it(`is stored once (${restart ? "the daemon killed after storing it and started again" : "the daemon kept running"})`, async () => {
      const stateDir = await tempDir();
      daemon = await startOn(stateDir);
      const app = { name: APP, input_type: "doubles", default_output: "-1", latency_slo_micros: 100_000 };
      expect((await call(daemon.url, "/admin/add_app", app)).status).toBe(200);
      expect((await call(daemon.url, "/admin/set_query_log", { app_name: APP, sample: 1 })).status).toBe(200);
      relay = new ResettingRelay(portOf(daemon));
      const managementUrl = await relay.listen();

      const recorder = new QueryLogRecorder({ frontendId: "f" });
      const state = consistent();
      state.applications[APP] = appRecord(APP);
      state.query_log = dict([[APP, { sample: 1, max_mb: 1 }]]);
      recorder.configure(state);
      const shipper = new QueryLogShipper({ managementUrl, log, frontendId: "f", recorder, registry: new Registry() });
      const answer = (ids: number[]) => {
        for (const queryId of ids) {
          recorder.query({ app: APP, queryId, input: [queryId], answer: { kind: "output", output: "1", model: { name: "m", version: "1" } }, defaultOutput: "-1", latencyMs: 1, uid: "u" });
        }
      };

      answer([1, 2]);
      await shipper.tick(); // leaves a kept-alive connection for the next report
      answer([3, 4, 5]);
      let answered = false;
      relay.onAnswer = async () => {
        answered = true;
        if (!restart) return;
        await killHard(daemon!.child);
        daemon = await startOn(stateDir);
        relay!.upstreamPort = portOf(daemon);
      };
      await shipper.tick();
      expect(answered).toBe(true);

      const exported = await call(daemon.url, EXPORT_QUERY_LOG_PATH, { app_name: APP });
      const ids = exported.text.trim().split("\n").map((line) => (JSON.parse(line) as ExportedQuery).query_id);
      expect(ids).toEqual([1, 2, 3, 4, 5]);
      expect(JSON.parse((await call(daemon.url, GET_QUERY_LOG_PATH, { app_name: APP })).text)).toMatchObject({ records: 5, dropped: 0 });
      // Delivered as far as the frontend knows: nothing counted as dropped.
      expect(recorder.takeDropped().size).toBe(0);
    }, 60_000);
  }
});
