/** The Node runtime's FrontendSet in-process, with a scripted resolver and clock: addresses that come and go from DNS, lookups that fail. */
import { describe, expect, it, vi } from "vitest";
import { parseContainerEnv } from "../../runtime/container-node/env.js";
import { FrontendSet, staticLookup, type FrontendClient, type Lookup } from "../../runtime/container-node/frontend-discovery.js";
import { oneAtATime, type RpcClock, type RpcLogger } from "../../runtime/container-node/rpc-client.js";
import { sleep } from "../support/test-frontend.js";

describe("FrontendSet (Node runtime), with a scripted lookup and clock", () => {
  class FakeClient implements FrontendClient {
    started = false;
    stopped = false;
    constructor(readonly endpoint: string) {}
    start(): void {
      this.started = true;
    }
    async stop(): Promise<void> {
      this.stopped = true;
    }
    drainedWithin?: number;
    async drainAndStop(ackTimeoutMs: number): Promise<void> {
      this.drainedWithin = ackTimeoutMs;
      this.stopped = true;
    }
  }

  function recordingLogger(): RpcLogger & { lines: Array<{ level: string; obj: Record<string, unknown>; msg?: string }> } {
    const lines: Array<{ level: string; obj: Record<string, unknown>; msg?: string }> = [];
    const at = (level: string) => (obj: unknown, msg?: string) => {
      lines.push({ level, obj: (obj ?? {}) as Record<string, unknown>, ...(msg === undefined ? {} : { msg }) });
    };
    return { lines, info: at("info"), warn: at("warn"), error: at("error"), debug: at("debug") } as never;
  }

  function harness(hosts: string[], ports = [7000]) {
    let now = 1_000_000;
    const answers = new Map<string, string[] | Error>();
    const lookup: Lookup = async (host) => {
      const a = answers.get(host);
      if (a === undefined || a instanceof Error) throw a ?? new Error(`getaddrinfo ENOTFOUND ${host}`);
      return a;
    };
    // Timers never fire: the test drives each lookup round with refresh().
    const clock: RpcClock = { now: () => now, setTimeout: () => 0, clearTimeout: () => {} };
    const clients: FakeClient[] = [];
    const log = recordingLogger();
    const set = new FrontendSet({
      hosts,
      ports,
      intervalMs: 5000,
      goneAfterMs: 30_000,
      model: "sum:1",
      lookup,
      clock,
      logger: log,
      createClient: (endpoint) => {
        const c = new FakeClient(endpoint);
        clients.push(c);
        return c;
      },
    });
    const live = () => clients.filter((c) => !c.stopped).map((c) => c.endpoint).sort();
    return { set, answers, clients, log, live, advance: (ms: number) => (now += ms) };
  }

  it("drains every connection on its own when stopping by draining, and resolves nothing after", async () => {
    const h = harness(["frontend-rpc"]);
    h.answers.set("frontend-rpc", ["10.0.0.1", "10.0.0.2"]);
    h.set.start();
    await h.set.refresh();
    await h.set.drainAndStop(1234);
    expect(h.clients.map((c) => c.drainedWithin)).toEqual([1234, 1234]);
    // A lookup after the stop connects nothing new.
    h.answers.set("frontend-rpc", ["10.0.0.3"]);
    await h.set.refresh();
    expect(h.clients).toHaveLength(2);
    // A second stop does not stop the clients again.
    await h.set.stop();
    expect(h.clients).toHaveLength(2);
  });

  it("connects to every address of every host, once per distinct address:port", async () => {
    const h = harness(["frontend-rpc", "10.0.0.2", "other"]);
    h.answers.set("frontend-rpc", ["10.0.0.1", "10.0.0.2", "fd00::3"]);
    h.answers.set("10.0.0.2", ["10.0.0.2"]);
    h.answers.set("other", ["10.0.0.1"]);
    h.set.start();
    await h.set.refresh();
    expect(h.live()).toEqual(["tcp://10.0.0.1:7000", "tcp://10.0.0.2:7000", "tcp://[fd00::3]:7000"]);
    expect(h.clients).toHaveLength(3);
    expect(h.clients.every((c) => c.started)).toBe(true);
    const added = h.log.lines.filter((l) => l.msg === "query frontend address added");
    expect(added.map((l) => l.obj["address"])).toEqual(["tcp://10.0.0.1:7000", "tcp://10.0.0.2:7000", "tcp://[fd00::3]:7000"]);
    expect(added[0]!.obj).toMatchObject({ model: "sum:1", hosts: ["frontend-rpc", "other"] });
    await h.set.stop();
    expect(h.clients.every((c) => c.stopped)).toBe(true);
  });

  it("connects to every port (one per frontend worker) of every address, and closes them together", async () => {
    const h = harness(["frontend-rpc"], [7000, 7001]);
    h.answers.set("frontend-rpc", ["10.0.0.1", "10.0.0.2"]);
    h.set.start();
    await h.set.refresh();
    expect(h.live()).toEqual(["tcp://10.0.0.1:7000", "tcp://10.0.0.1:7001", "tcp://10.0.0.2:7000", "tcp://10.0.0.2:7001"]);
    h.answers.set("frontend-rpc", ["10.0.0.2"]);
    h.advance(30_001);
    await h.set.refresh();
    expect(h.live()).toEqual(["tcp://10.0.0.2:7000", "tcp://10.0.0.2:7001"]);
    await h.set.stop();
  });

  it("without discovery, connects to each worker port of the host as given", async () => {
    const clients: string[] = [];
    const set = new FrontendSet({
      hosts: ["localhost"], ports: [7000, 7001, 7002], intervalMs: 5000, goneAfterMs: 30_000, model: "sum:1", lookup: staticLookup,
      clock: { now: () => 0, setTimeout: () => 0, clearTimeout: () => {} },
      createClient: (endpoint) => {
        clients.push(endpoint);
        return { start() {}, async stop() {}, async drainAndStop() {} };
      },
    });
    await set.refresh();
    expect(clients).toEqual(["tcp://localhost:7000", "tcp://localhost:7001", "tcp://localhost:7002"]);
    expect(() => new FrontendSet({ ...{ hosts: ["h"], ports: [], intervalMs: 1, goneAfterMs: 1, model: "m:1", createClient: () => { throw new Error("unused"); } } })).toThrow(/at least one port/);
  });

  it("closes an address only once it has been gone from DNS for longer than the timeout, and adds new ones", async () => {
    const h = harness(["frontend-rpc"]);
    h.answers.set("frontend-rpc", ["10.0.0.1", "10.0.0.2"]);
    h.set.start();
    await h.set.refresh();
    h.answers.set("frontend-rpc", ["10.0.0.1", "10.0.0.3"]); // 10.0.0.2's pod was replaced
    h.advance(5000);
    await h.set.refresh();
    expect(h.live()).toEqual(["tcp://10.0.0.1:7000", "tcp://10.0.0.2:7000", "tcp://10.0.0.3:7000"]);
    h.advance(25_000); // 30 s since 10.0.0.2 was last resolved: not yet longer than the timeout
    await h.set.refresh();
    expect(h.live()).toContain("tcp://10.0.0.2:7000");
    h.advance(5000);
    await h.set.refresh();
    expect(h.live()).toEqual(["tcp://10.0.0.1:7000", "tcp://10.0.0.3:7000"]);
    const removed = h.log.lines.filter((l) => l.msg?.startsWith("query frontend address removed"));
    expect(removed).toHaveLength(1);
    expect(removed[0]!.obj).toMatchObject({ address: "tcp://10.0.0.2:7000", absentMs: 35_000 });
    // An address that comes back is connected afresh.
    h.answers.set("frontend-rpc", ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    await h.set.refresh();
    expect(h.live()).toEqual(["tcp://10.0.0.1:7000", "tcp://10.0.0.2:7000", "tcp://10.0.0.3:7000"]);
    expect(h.clients).toHaveLength(4);
    await h.set.stop();
  });

  it("keeps the connections of a host whose lookups fail, logs the failure once, and retries", async () => {
    const h = harness(["frontend-rpc"]);
    h.answers.set("frontend-rpc", new Error("getaddrinfo ENOTFOUND frontend-rpc"));
    h.set.start();
    await h.set.refresh(); // fails before any success: nothing to connect to, not fatal
    expect(h.live()).toEqual([]);
    h.answers.set("frontend-rpc", ["10.0.0.1"]);
    await h.set.refresh();
    expect(h.live()).toEqual(["tcp://10.0.0.1:7000"]);
    h.answers.set("frontend-rpc", new Error("getaddrinfo EAI_AGAIN frontend-rpc"));
    for (let i = 0; i < 20; i++) {
      h.advance(5000);
      await h.set.refresh();
    }
    expect(h.live()).toEqual(["tcp://10.0.0.1:7000"]);
    const warnings = h.log.lines.filter((l) => l.level === "warn");
    expect(warnings.map((w) => w.obj["reason"])).toEqual(["getaddrinfo ENOTFOUND frontend-rpc", "getaddrinfo EAI_AGAIN frontend-rpc"]);
    expect(warnings[1]!.obj).toMatchObject({ host: "frontend-rpc", keeping: 1 });
    h.answers.set("frontend-rpc", ["10.0.0.1"]);
    await h.set.refresh();
    expect(h.log.lines.some((l) => l.msg === "resolved the query frontend host again")).toBe(true);
    await h.set.stop();
    // Stopped: a later round connects to nothing.
    h.answers.set("frontend-rpc", ["10.0.0.9"]);
    await h.set.refresh();
    expect(h.live()).toEqual([]);
  });

  it("runs a shared handler one batch at a time, in call order", async () => {
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const shared = oneAtATime(async (batch) => {
      running++;
      most = Math.max(most, running);
      await sleep(batch.msgId === 1 ? 30 : 5);
      order.push(batch.msgId);
      running--;
      if (batch.msgId === 2) throw new Error("fails alone");
      return ["ok"];
    });
    // The handler's sleeps run on a fake clock: batch 1's 30 ms, then 5 ms each for 2 and 3.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const settled = Promise.allSettled([1, 2, 3].map((msgId) => shared({ msgId, inputType: "doubles", inputs: [] })));
    await vi.advanceTimersByTimeAsync(100).finally(() => vi.useRealTimers());
    const results = await settled;
    expect(order).toEqual([1, 2, 3]);
    expect(most).toBe(1);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
  });

  it("parses CLIPPER_FRONTEND_DISCOVERY, CLIPPER_DISCOVERY_INTERVAL_MS and a list of hosts", () => {
    const base = { CLIPPER_MODEL_NAME: "m", CLIPPER_MODEL_VERSION: "1" };
    expect(parseContainerEnv(base)).toMatchObject({ frontendDiscovery: "none", hosts: ["127.0.0.1"], ip: "127.0.0.1", discoveryIntervalMs: 5000 });
    expect(
      parseContainerEnv({ ...base, CLIPPER_FRONTEND_DISCOVERY: "dns", CLIPPER_IP: "svc.ns.svc, [::1]", CLIPPER_DISCOVERY_INTERVAL_MS: "100" }),
    ).toMatchObject({ frontendDiscovery: "dns", hosts: ["svc.ns.svc", "::1"], discoveryIntervalMs: 100 });
    expect(() => parseContainerEnv({ ...base, CLIPPER_FRONTEND_DISCOVERY: "consul" })).toThrow(
      /CLIPPER_FRONTEND_DISCOVERY 'consul' is not one of none, dns/,
    );
    expect(() => parseContainerEnv({ ...base, CLIPPER_DISCOVERY_INTERVAL_MS: "99" })).toThrow(/CLIPPER_DISCOVERY_INTERVAL_MS must be an integer from 100/);
    expect(() => parseContainerEnv({ ...base, CLIPPER_IP: "a,b" })).toThrow(/CLIPPER_IP lists 2 hosts, but CLIPPER_FRONTEND_DISCOVERY is none/);
    expect(() => parseContainerEnv({ ...base, CLIPPER_FRONTEND_DISCOVERY: "dns", CLIPPER_IP: "a,,b" })).toThrow(/CLIPPER_IP must be a host name/);
  });

  it("parses CLIPPER_PORT as one port or a list of distinct ports, and names a bad list", () => {
    const base = { CLIPPER_MODEL_NAME: "m", CLIPPER_MODEL_VERSION: "1" };
    expect(parseContainerEnv(base)).toMatchObject({ port: 7000, ports: [7000] });
    expect(parseContainerEnv({ ...base, CLIPPER_PORT: "7100" })).toMatchObject({ port: 7100, ports: [7100] });
    expect(parseContainerEnv({ ...base, CLIPPER_PORT: " 7100, 7101,7102 " })).toMatchObject({ port: 7100, ports: [7100, 7101, 7102] });
    for (const bad of ["7000,", ",7000", "7000,,7001", "7000;7001", "0", "65536", "7000,abc", "-1", "7000 7001", "0x1b58", "7e3"]) {
      expect(() => parseContainerEnv({ ...base, CLIPPER_PORT: bad }), bad).toThrow(/CLIPPER_PORT must be a port from 1 to 65535, or a comma-separated list/);
    }
    expect(() => parseContainerEnv({ ...base, CLIPPER_PORT: "7000,7001,7000" })).toThrow(/CLIPPER_PORT lists port 7000 twice/);
    const tooMany = Array.from({ length: 65 }, (_, i) => 8000 + i).join(",");
    expect(() => parseContainerEnv({ ...base, CLIPPER_PORT: tooMany })).toThrow(/CLIPPER_PORT lists 65 ports; at most 64/);
  });
});
