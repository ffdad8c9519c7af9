/**
 * The dashboard in a real browser: Debian's headless chromium, driven over the DevTools protocol
 * on a pipe (--remote-debugging-pipe: no port, no WebSocket library), against a local cluster
 * started, deployed and scaled with the CLI (Node model replicas). It checks that `clipper
 * dashboard` gives the page's URL, that the page lists the deployed app and model, that a chart
 * moves under load, that link, unlink and set-current change the state, that the Scale button
 * changes the replica count (the local supervisor's autoscaler loop applies the request) and the
 * events panel and the version's charts show it, that an autoscaled version offers its bounds
 * instead, that a shadow version shows its figures, and takes a screenshot: into a temporary directory, or into docs/dashboard.png when
 * CLIPPER_UPDATE_SCREENSHOT=1 (docs/dashboard.md), so a plain test run leaves the tree as it was.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "./support/management-daemon.js";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { AdminClient } from "../src/admin-client.js";
import { ClipperConnection } from "../src/connection.js";
import { startManagementServer, type ManagementServer } from "../runtime/management/server.js";
import { cliCluster } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";

const CHROMIUM = "/usr/bin/chromium";
const IN_CI = process.env.CI === "true";
const skip = existsSync(CHROMIUM) || IN_CI ? undefined : `${CHROMIUM} is absent`;
const SCREENSHOT = process.env.CLIPPER_UPDATE_SCREENSHOT === "1"
  ? join(ROOT, "docs", "dashboard.png")
  : join(mkdtempSync(join(tmpdir(), "clipper-dash-shot-")), "dashboard.png");
const MODEL = join(fileURLToPath(new URL("./fixtures/node-models/", import.meta.url)), "sum.mjs");

/** A DevTools protocol client over chromium's pipe: NUL-separated JSON messages on fds 3 (in) and 4 (out). */
class DevTools {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: any): void; reject(e: Error): void }>();
  private buffer = "";
  private readonly profile = mkdtempSync(join(tmpdir(), "clipper-chromium-"));
  readonly child: ChildProcess;

  constructor() {
    this.child = spawn(CHROMIUM, [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
      `--user-data-dir=${this.profile}`, "--remote-debugging-pipe", "about:blank",
    ], { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
    this.child.stderr!.resume();
    (this.child.stdio[4] as Readable).on("data", (chunk: Buffer) => {
      this.buffer += chunk.toString();
      let end: number;
      while ((end = this.buffer.indexOf("\0")) >= 0) {
        const message = JSON.parse(this.buffer.slice(0, end));
        this.buffer = this.buffer.slice(end + 1);
        const waiter = message.id !== undefined ? this.pending.get(message.id) : undefined;
        if (!waiter) continue;
        this.pending.delete(message.id);
        if (message.error) waiter.reject(new Error(`${message.error.message} (${message.error.code})`));
        else waiter.resolve(message.result);
      }
    });
    this.child.on("exit", () => {
      for (const w of this.pending.values()) w.reject(new Error("chromium exited"));
      this.pending.clear();
    });
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<any> {
    const id = this.nextId++;
    const reply = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
    (this.child.stdio[3] as Writable).write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    return reply;
  }

  /** Opens a page and returns a function that evaluates an expression in it. */
  async page(url: string): Promise<{ evaluate<T>(expression: string): Promise<T>; session: string }> {
    const { targetId } = await this.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await this.send("Target.attachToTarget", { targetId, flatten: true });
    await this.send("Emulation.setDeviceMetricsOverride", { width: 1280, height: 840, deviceScaleFactor: 1, mobile: false }, sessionId);
    await this.send("Page.enable", {}, sessionId);
    await this.send("Page.navigate", { url }, sessionId);
    return {
      session: sessionId,
      evaluate: async <T,>(expression: string) => {
        const { result, exceptionDetails } = await this.send("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true }, sessionId);
        if (exceptionDetails) throw new Error(`page: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
        return result.value as T;
      },
    };
  }

  /** Asks the browser to quit (so its helper processes go too), and kills it if it does not. */
  async close(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once("exit", r));
      this.send("Browser.close").catch(() => undefined);
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
}

describe.skipIf(skip !== undefined)(`the dashboard in headless chromium${skip ? ` (skipped: ${skip})` : ""}`, () => {
  const cluster = cliCluster("clipper-dash-", { env: { CLIPPER_TEST_LOG: "silent" } });
  let admin: AdminClient;
  let browser: DevTools;
  let page: Awaited<ReturnType<DevTools["page"]>>;
  const until = (expression: string, what: string, timeoutMs = 15_000) =>
    waitFor(async () => Boolean(await page.evaluate(expression)), timeoutMs, what);
  const predict = async (input = [1, 2, 3]) => {
    const res = await fetch(`${cluster.urls.queryUrl}/sum-app/predict`, { method: "POST", body: JSON.stringify({ input }) });
    return res.json() as Promise<{ output: unknown; default: boolean }>;
  };

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (CI=true: install Debian's chromium)`);
    if (!existsSync(join(ROOT, "dist", "dashboard", "app.js"))) throw new Error("the dashboard is not built: run 'npm run build'");
    const { ok, urls } = cluster;
    admin = new AdminClient({ managementUrl: urls.managementUrl });
    await ok("register-app", "sum-app", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "200");
    await ok("deploy-model", "sum", "--version", "2", "--input-type", "doubles", "--framework", "node", "--predict", `${MODEL}:predict`, "--replicas", "0");
    await ok("deploy-model", "sum", "--version", "1", "--input-type", "doubles", "--framework", "node", "--predict", `${MODEL}:predict`,
      "--replicas", "2", "--link", "sum-app");
    await admin.postText("/admin/add_model", {
      model_name: "other", model_version: "1", labels: [], input_type: "doubles", container_name: "x", model_data_path: "x", batch_size: -1,
    });
    expect((await predict()).output).toBe(6);
    const shown = await ok("dashboard", "--no-open");
    expect(shown).toEqual({ url: `${urls.managementUrl}/dashboard/`, opened: false });
    browser = new DevTools();
    page = await browser.page(shown.url);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
  });

  it("lists the deployed application and model with its connected replicas", async () => {
    await until(`document.querySelector('[data-app="sum-app"]') !== null`, "the app's row");
    expect(await page.evaluate<string>(`document.querySelector('[data-app="sum-app"]').textContent`)).toContain("200 ms");
    await until(`document.querySelector('[data-model="sum:1"] [data-replicas]')?.dataset.replicas === "2"`, "sum:1 with 2 replicas");
    expect(await page.evaluate<boolean>(`document.querySelector('[data-model="sum:1"] .badge.current') !== null`)).toBe(true);
    expect(await page.evaluate<boolean>(`document.querySelector('[data-model="sum:2"] .badge.current') === null`)).toBe(true);
  }, 30_000);

  it("moves the request-rate chart while queries arrive", async () => {
    let load = true;
    const sent = (async () => {
      let n = 0;
      while (load) {
        // One input in three repeats (the prediction cache answers it), the rest are new.
        await Promise.all(Array.from({ length: 8 }, (_, i) => predict([(n + i) % 3 === 0 ? 1 : n + i, 2])));
        n += 8;
      }
      return n;
    })();
    try {
      await until(`(() => { const el = document.querySelector('[data-chart="requests:sum-app"]');
        return el && JSON.parse(el.dataset.last)[0] > 1; })()`, "a request rate above 1/s", 20_000);
      const before = await page.evaluate<string>(`document.querySelector('[data-chart="requests:sum-app"] polyline').getAttribute("points")`);
      await until(`document.querySelector('[data-chart="requests:sum-app"] polyline').getAttribute("points") !== ${JSON.stringify(before)}`,
        "the chart to draw a new point", 10_000);
      for (const chart of ["latency:sum-app", "answers:sum-app", "queue:sum:1", "batches:sum:1", "cache:sum:1"]) {
        expect(await page.evaluate<boolean>(`document.querySelector('[data-chart="${chart}"]') !== null`), chart).toBe(true);
      }
      // The p99 stays under the SLO line on this light load.
      const [, p99, slo] = JSON.parse(await page.evaluate<string>(`document.querySelector('[data-chart="latency:sum-app"]').dataset.last`));
      expect(slo).toBe(200);
      expect(p99).toBeLessThan(200);
    } finally {
      load = false;
      expect(await sent).toBeGreaterThan(0);
    }
  }, 60_000);

  it("unlinks and links models and sets the current version through the admin API", async () => {
    const linked = () => admin.postJson<string[]>("/admin/get_linked_models", { app_name: "sum-app" });
    const notice = () => page.evaluate<string>(`document.getElementById("notice").textContent`);
    const stored = (check: (links: string[]) => boolean, what: string) =>
      waitFor(async () => check(await linked()), 10_000, what).catch(async (err) => {
        throw new Error(`${err.message}; the page says: ${await notice()}`);
      });
    // The default policy serves one model: the page shows the daemon's refusal of a second link.
    await until(`document.querySelector('[data-link-for="sum-app"]') !== null`, "the link control");
    await page.evaluate(`(() => { document.querySelector('[data-link-for="sum-app"]').value = "other";
      document.querySelector('[data-action="link:sum-app"]').click(); })()`);
    await until(`document.getElementById("notice").textContent.includes("already has a linked model")`, "the refusal shown");

    await page.evaluate(`document.querySelector('[data-action="unlink:sum-app:sum"]').click()`);
    await stored((links) => links.length === 0, "the unlink to be stored");
    await until(`document.querySelector('[data-action="unlink:sum-app:sum"]') === null`, "the unlink shown");
    await page.evaluate(`(() => { document.querySelector('[data-link-for="sum-app"]').value = "other";
      document.querySelector('[data-action="link:sum-app"]').click(); })()`);
    await stored((links) => links.includes("other"), "the link to be stored");
    await until(`document.querySelector('[data-action="unlink:sum-app:other"]') !== null`, "the new link shown");
    await page.evaluate(`document.querySelector('[data-action="unlink:sum-app:other"]').click()`);
    await stored((links) => links.length === 0, "the second unlink to be stored");
    await until(`document.querySelector('[data-action="link:sum-app"]') !== null && document.querySelector('[data-action="unlink:sum-app:other"]') === null`,
      "the link control back");
    await page.evaluate(`(() => { document.querySelector('[data-link-for="sum-app"]').value = "sum";
      document.querySelector('[data-action="link:sum-app"]').click(); })()`);
    await stored((links) => links.includes("sum"), "sum linked again");

    await page.evaluate(`document.querySelector('[data-action="set-current:sum:2"]').click()`);
    await waitFor(async () => {
      const models = await admin.postJson<Array<{ model_version: string; model_name: string; is_current_version: boolean }>>(
        "/admin/get_all_models", { verbose: true });
      return models.some((m) => m.model_name === "sum" && m.model_version === "2" && m.is_current_version);
    }, 10_000, "sum:2 to become current");
    await until(`document.querySelector('[data-model="sum:2"] .badge.current') !== null &&
      !document.querySelector('[data-model="sum:2"] [data-action^="set-current"]')`, "sum:2 shown as current");
  }, 90_000);

  it("scales a version from its Scale button, shows the events with their reasons, and offers an autoscaled version's bounds instead", async () => {
    const rows = (version: string) => page.evaluate<Array<{ kind: string; text: string }>>(`[...document.querySelectorAll('#events tbody tr[data-version="${version}"]')]
      .map((r) => ({ kind: r.dataset.kind, text: r.textContent }))`);
    // Typed into the field and clicked, as an operator would: the daemon keeps the request, the
    // local supervisor's loop starts the replica, the frontends see it connect.
    await page.evaluate(`(() => { document.querySelector('[data-field="scale:sum:1"]').value = "3";
      document.querySelector('[data-action="scale:sum:1"]').click(); })()`);
    await until(`document.getElementById("notice").textContent.includes("Requested 3 replicas of sum:1")`, "the request accepted");
    await until(`document.querySelector('[data-model="sum:1"] [data-replicas]')?.dataset.replicas === "3"`, "sum:1 with 3 replicas", 30_000);
    await until(`[...document.querySelectorAll('#events tbody tr[data-version="sum:1"]')].some((r) => r.textContent.includes("applied the request for 3 replicas"))`,
      "the applied request in the events panel");
    // Newest first: the outcome above the request.
    expect((await rows("sum:1")).slice(0, 2)).toEqual([
      { kind: "manual", text: expect.stringMatching(/manual 2→3applied the request for 3 replicas$/) },
      { kind: "manual", text: expect.stringMatching(/manual →3requested 3 replicas through the admin API$/) },
    ]);
    // The version's charts mark the events.
    await until(`Number(document.querySelector('[data-chart="queue:sum:1"]')?.dataset.markers) >= 2`, "event markers on sum:1's queue chart");

    // The library's way to the same request; the page shows the count going back down.
    const conn = await ClipperConnection.connect({ home: cluster.home });
    expect((await conn.requestReplicas("sum", 2, { version: "1" })).request).toMatchObject({ model_version: "1", num_replicas: 2 });
    await until(`document.querySelector('[data-model="sum:1"] [data-replicas]')?.dataset.replicas === "2"`, "sum:1 back to 2 replicas", 30_000);
    expect(await conn.getScaleRequests()).toEqual([]);

    // An autoscaled version: no Scale button (the autoscaler would undo it) but its bounds, which the page changes.
    await conn.setAutoscaling("sum", { version: "2", min: 0, max: 2, targetQueuePerReplica: 2 });
    await until(`document.querySelector('[data-model="sum:2"] [data-action="bounds:sum:2"]') !== null &&
      document.querySelector('[data-model="sum:2"] [data-action="scale:sum:2"]') === null`, "sum:2's bounds offered");
    await page.evaluate(`(() => { document.querySelector('[data-field="max:sum:2"]').value = "3";
      document.querySelector('[data-action="bounds:sum:2"]').click(); })()`);
    // The new bounds, with the version's tuning kept.
    await waitFor(async () => (await conn.getAutoscaling("sum")).some((e) => e.model_version === "2" && e.autoscaling.max_replicas === 3 &&
      e.autoscaling.target_queue_per_replica === 2), 10_000, "the new bounds stored");
    await until(`[...document.querySelectorAll('#events tbody tr[data-version="sum:2"]')].some((r) => r.textContent.includes("config min 0 max 3"))`,
      "the configuration event shown");
    // The picture for the README: tables, events and charts of a cluster that just scaled (before the refusal below fills the notice).
    const png = await browser.send("Page.captureScreenshot", { format: "png", captureBeyondViewport: true }, page.session);
    const image = Buffer.from(png.data, "base64");
    expect(image.subarray(1, 4).toString()).toBe("PNG");
    expect(image.length).toBeGreaterThan(20_000);
    writeFileSync(SCREENSHOT, image);

    // A bad count is refused with the daemon's reason, shown on the page.
    await page.evaluate(`(() => { document.querySelector('[data-field="scale:sum:1"]').value = "65";
      document.querySelector('[data-action="scale:sum:1"]').click(); })()`);
    await until(`document.getElementById("notice").textContent.includes("num_replicas must be a whole number from 0 to 64, got 65")`, "the refusal shown");
    await conn.close();
  }, 120_000);

  it("shows a shadow version with its share and how it compares (docs/rollouts.md)", async () => {
    const conn = await ClipperConnection.connect({ home: cluster.home });
    await conn.setAutoscaling("sum", { version: "2", off: true });
    await conn.setModelVersion("sum", "1");
    await conn.setNumReplicas("sum", 1, "2");
    await conn.setShadow("sum", "2", { percent: 100 });
    await until(`document.querySelector('[data-shadow="sum:2"]') !== null`, "sum:2's shadow badge");
    // Both versions run the same model: every copy agrees.
    for (let i = 0; i < 5; i++) expect((await predict([100 + i, 1])).output).toBe(101 + i);
    await until(`document.querySelector('[data-shadow="sum:2"]').textContent.startsWith("shadow 100%: agree 100.0% of 5")`,
      "the shadow's figures on the page", 20_000);
    await conn.endShadow("sum");
    await until(`document.querySelector('[data-shadow="sum:2"]') === null`, "the badge gone with the shadow");
    await conn.close();
  }, 90_000);
});

/** An address of this machine other than loopback, if it has one: a browser there is "off loopback". */
const outsideAddress = Object.values(networkInterfaces()).flat().find((a) => a?.family === "IPv4" && !a.internal)?.address;

describe.skipIf(skip !== undefined || !outsideAddress)("the dashboard off loopback, in headless chromium", () => {
  let server: ManagementServer;
  let browser: DevTools;
  const stateDir = mkdtempSync(join(tmpdir(), "clipper-dash-token-"));
  beforeAll(async () => {
    server = await startManagementServer({ host: "0.0.0.0", port: 0, stateDir, token: "s3cret-token", logger: pino({ level: "silent" }) });
    browser = new DevTools();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("loads without the token, asks for it, and works once it is typed in", async () => {
    const page = await browser.page(`http://${outsideAddress}:${server.port}/dashboard/`);
    const until = (expression: string, what: string) => waitFor(async () => Boolean(await page.evaluate(expression)), 15_000, what);
    await until(`document.getElementById("status")?.textContent.includes("401")`, "the page to say it needs the token");
    await page.evaluate(`(() => { document.getElementById("token").value = "s3cret-token";
      document.getElementById("token-form").requestSubmit(); })()`);
    await until(`document.getElementById("status").textContent.startsWith("updated")`, "the page to read the admin API with the token");
    expect(await page.evaluate<string>(`sessionStorage.getItem("clipper-dashboard-token")`)).toBe("s3cret-token");
  }, 40_000);
});
