/**
 * Bounded /metrics (docs/metrics.md, "Bounded labels"): a real daemon and frontend in this process,
 * real replicas and raw RPC peers. Deleted names lose their series; names the configuration does
 * not hold never become label values, however many peers claim them; oversized names are refused
 * at the door. The parts that start nothing are in test/unit/metric-names.test.ts.
 */
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { encodeContainerMessage } from "../runtime/rpc/codec.js";
import { UNREGISTERED } from "../runtime/frontend/metric-names.js";
import { parsePrometheusText } from "../src/frontend-metrics.js";
import { startInProcessCluster, sumHandler, waitFor, type InProcessCluster } from "./support/cluster-in-process.js";
import { closePeers, Peer } from "./support/rpc-peer.js";
import { RawDealer } from "./support/zmtp-peer.js";

interface LogLine {
  msg: string;
  reason?: string;
  [k: string]: unknown;
}

let c: InProcessCluster;
const logLines: string[] = [];

beforeAll(async () => {
  // --rpc-auth none: the door under test is the one Clipper's own containers use; with plain auth a
  // peer must also hold its version's credential, whose routing id cannot carry a long name.
  const log = pino({ level: "info" }, { write: (line: string) => void logLines.push(line) });
  c = await startInProcessCluster({ rpcAuth: "none", cacheBytes: 1024 * 1024, replicaTimeoutMs: 60_000, log });
});
afterAll(async () => {
  await c?.close();
});
afterEach(closePeers);

async function scrape(): Promise<string> {
  const res = await fetch(`${c.frontend.queryUrl}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** The scrape's series of ours (the process series move on their own between two scrapes). */
async function clipperLines(): Promise<string[]> {
  return (await scrape()).split("\n").filter((line) => line.startsWith("clipper_"));
}

/** A raw DEALER, connecting again when a busy listener dropped the connection. */
async function connectRetrying(port: number): Promise<RawDealer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await RawDealer.connect(port);
    } catch (err) {
      if (attempt === 5) throw err;
    }
  }
}

/** Our series once two scrapes in a row agree (peers of an earlier test may still be disconnecting). */
async function settledClipperLines(): Promise<string[]> {
  let previous = await clipperLines();
  for (let tries = 0; tries < 100; tries++) {
    const next = await clipperLines();
    if (next.join("\n") === previous.join("\n")) return next;
    previous = next;
  }
  throw new Error("the frontend's series kept changing over 100 scrapes");
}

function value(text: string, name: string, labels: Record<string, string>): number | undefined {
  return parsePrometheusText(text).find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

async function addApp(name: string, model: string, version: string): Promise<void> {
  await c.admin.postText("/admin/add_app", { name, input_type: "doubles", default_output: "-1.0", latency_slo_micros: 5_000_000 });
  await c.admin.postText("/admin/add_model", {
    model_name: model, model_version: version, labels: [], input_type: "doubles",
    container_name: "NO_CONTAINER", model_data_path: "x", batch_size: -1,
  });
  await c.admin.postText("/admin/add_model_links", { app_name: name, model_names: [model] });
  await c.waitForConfig((f) => Object.hasOwn(f.state()?.applications ?? {}, name));
}

const mentions = (lines: string[], label: string, value: string) => lines.filter((l) => l.includes(`${label}="${value}"`));

describe("series of deleted names", () => {
  it("leave the scrape when their application or model version is deleted; `constructor` works as any name", async () => {
    await addApp("gone", "gm", "1");
    await addApp("constructor", "constructor", "1");
    await c.addContainer("gm", "1", "doubles", sumHandler);
    await c.addContainer("constructor", "1", "doubles", sumHandler);
    for (const app of ["gone", "constructor"]) {
      for (let i = 0; i < 3; i++) expect((await c.predict(app, { input: [1, 2, i] })).body.default).toBe(false);
      await c.predict(app, { input: [1, 2, 0] }); // a cache hit
    }
    let lines = await clipperLines();
    for (const name of ["gone", "constructor"]) expect(mentions(lines, "app", name).length).toBeGreaterThan(10);
    for (const key of ["gm:1", "constructor:1"]) {
      expect(mentions(lines, "model", key).some((l) => l.startsWith("clipper_cache_hits_total"))).toBe(true);
      expect(mentions(lines, "model", key).some((l) => l.startsWith("clipper_model_batch_latency_seconds_count"))).toBe(true);
    }

    // The application first (its last link went with it), then its model's only version.
    await c.admin.postText("/admin/delete_app", { name: "gone" });
    await c.waitForConfig((f) => !Object.hasOwn(f.state()!.applications, "gone"));
    lines = await clipperLines();
    expect(mentions(lines, "app", "gone")).toEqual([]);
    expect(mentions(lines, "model", "gm:1").length).toBeGreaterThan(0); // the version still exists
    await c.admin.postText("/admin/delete_versioned_model", { model_name: "gm", model_version: "1" });
    await c.waitForConfig((f) => !Object.hasOwn(f.state()!.models, "gm"));
    lines = await clipperLines();
    expect(mentions(lines, "model", "gm:1")).toEqual([]);
    // Its replica is still connected: counted, under the one label for names the configuration lacks.
    expect(value(lines.join("\n"), "clipper_model_replicas", { model: UNREGISTERED })).toBe(1);

    // Untouched names keep their series and their counts.
    expect(value(lines.join("\n"), "clipper_app_requests_total", { app: "constructor" })).toBe(4);
    expect(value(lines.join("\n"), "clipper_model_replicas", { model: "constructor:1" })).toBe(1);

    // The name comes back: its series start afresh.
    await c.admin.postText("/admin/add_app", { name: "gone", input_type: "doubles", default_output: "-1.0", latency_slo_micros: 5_000_000 });
    await c.admin.postText("/admin/add_model_links", { app_name: "gone", model_names: ["constructor"] });
    await c.waitForConfig((f) => f.state()?.applications.gone?.linked_models.length === 1);
    await c.predict("gone", { input: [7] });
    expect(value((await clipperLines()).join("\n"), "clipper_app_requests_total", { app: "gone" })).toBe(1);
  });
});

describe("names the configuration does not hold", () => {
  it("3,000 replicas registering and draining under unknown names leave a scrape of bounded size", async () => {
    const before = await scrape();
    // The replica of the deleted version above is one already.
    const already = value(before, "clipper_model_replicas", { model: UNREGISTERED }) ?? 0;
    const peers: RawDealer[] = [];
    try {
      // In rounds: the rpc port's listen backlog would drop a burst of 3,000 connects.
      for (let round = 0; round < 30; round++) {
        const opened = await Promise.all(Array.from({ length: 100 }, () => connectRetrying(c.frontend.rpcPort)));
        opened.forEach((peer, i) => {
          const n = round * 100 + i;
          peer.send(encodeContainerMessage({ kind: "metadata", name: `unknown-${n}`, version: `v${n}`, inputType: "doubles", rpcVersion: 3 }));
        });
        peers.push(...opened);
      }
      let after = "";
      await waitFor(async () => {
        after = await scrape();
        return value(after, "clipper_model_replicas", { model: UNREGISTERED }) === already + 3000;
      }, 60_000, "3,000 replicas to register");
      expect(after).not.toMatch(/unknown-\d/);
      // One series for all of them: a few hundred bytes, where each name used to add two lines.
      expect(after.length - before.length).toBeLessThan(2_000);

      for (const peer of peers) peer.send(encodeContainerMessage({ kind: "drain" }));
      await waitFor(async () => {
        after = await scrape();
        return value(after, "clipper_model_drained_replicas_total", { model: UNREGISTERED }) === 3000;
      }, 60_000, "3,000 replicas to drain");
      expect(after).not.toMatch(/unknown-\d/);
      expect(after.length - before.length).toBeLessThan(2_000);
    } finally {
      peers.forEach((p) => p.close());
    }
  }, 120_000);
});

describe("oversized names", () => {
  const MB = "m".repeat(1024 * 1024);

  it("a replica naming a 1 MB model, version or input type is refused at registration, logged clipped, and mints nothing", async () => {
    const before = await settledClipperLines();
    const logged = logLines.length;
    const claims: Buffer[][] = [
      encodeContainerMessage({ kind: "metadata", name: MB, version: "1", inputType: "doubles", rpcVersion: 3 }),
      encodeContainerMessage({ kind: "metadata", name: "big", version: MB, inputType: "doubles", rpcVersion: 3 }),
    ];
    // An input type code of a million digits (the codec encodes only real types).
    const bigType = encodeContainerMessage({ kind: "metadata", name: "big", version: "1", inputType: "doubles", rpcVersion: 3 });
    bigType[4] = Buffer.from("1".repeat(1024 * 1024));
    claims.push(bigType);
    // And names the admin API refuses: too long by one, or not a name at all.
    claims.push(encodeContainerMessage({ kind: "metadata", name: "x".repeat(64), version: "1", inputType: "doubles", rpcVersion: 3 }));
    claims.push(encodeContainerMessage({ kind: "metadata", name: "__proto__", version: "1", inputType: "doubles", rpcVersion: 3 }));
    for (const frames of claims) {
      const peer = new Peer(`tcp://127.0.0.1:${c.frontend.rpcPort}`);
      await peer.dealer.send(frames);
      await peer.send({ kind: "heartbeat" });
      // Refused: banned, so its heartbeat goes unanswered, as for any peer that broke the protocol.
      expect(await peer.next("heartbeat", 500)).toBeUndefined();
    }
    const refusals = logLines.slice(logged).map((l) => JSON.parse(l) as LogLine).filter((l) => l.msg === "refused a model container on the rpc port");
    expect(refusals.map((l) => l.reason)).toEqual([
      expect.stringMatching(/model name of 1048576 bytes, over 63/),
      expect.stringMatching(/model version of 1048576 bytes, over 63/),
      expect.stringMatching(/input type code of 1048576 bytes, over 8/),
      // (64 characters: refused too, logged under the 1 MB name's reason, as numbers are not part of it.)
      expect.stringMatching(/model name '__proto__' must consist of lower case/),
    ]);
    expect(Math.max(...logLines.slice(logged).map((l) => l.length))).toBeLessThan(2_000);
    expect(await clipperLines()).toEqual(before);
  });

  it("a query to an application name no configuration can hold is answered 404 without echoing it, and mints nothing", async () => {
    const before = await settledClipperLines();
    const logged = logLines.length;
    // Node's request line limit (16 KiB of headers) answers 431 before anything else for 1 MB.
    const res = await fetch(`${c.frontend.queryUrl}/${"a".repeat(12_000)}/predict`, { method: "POST", body: '{"input":[1]}' });
    expect(res.status).toBe(404);
    const body = await res.text();
    expect(body.length).toBeLessThan(300);
    expect(body).toMatch(/names have at most 63 characters/);
    expect(logLines.slice(logged).every((l) => l.length < 2_000)).toBe(true);
    expect(await clipperLines()).toEqual(before);
  });
});
