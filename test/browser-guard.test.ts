/**
 * Web pages cannot drive the admin API, and DNS rebinding cannot read either API: the Content-Type,
 * Origin and Host rules over real HTTP, then with a real browser (Debian's chromium) when present.
 * The parts that start nothing are in test/unit/browser-guard.test.ts.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer, request, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startQueryFrontend } from "../runtime/frontend/frontend.js";
import { startManagementServer } from "../runtime/management/server.js";
import { startInProcessCluster, type InProcessCluster } from "./support/cluster-in-process.js";
import { IN_CI } from "./support/python.js";
import { pino } from "pino";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

interface Answer {
  status: number;
  text: string;
  headers: IncomingHttpHeaders;
}

/** node:http rather than fetch, which will not send a Host or Origin of our choosing. */
function send(url: string, path: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, url), { method: options.method ?? "GET", headers: options.headers }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }));
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

const JSON_TYPE = { "content-type": "application/json" };
const app = (name: string) => JSON.stringify({ name, input_type: "doubles", default_output: "0", latency_slo_micros: 100_000 });

describe("the admin API refuses what a web page can send", () => {
  let c: InProcessCluster;
  let url: string;
  beforeAll(async () => {
    c = await startInProcessCluster({ allowedHosts: ["clipper.example"] });
    url = c.management.url;
  });
  afterAll(async () => {
    await c?.close();
  });

  async function apps(): Promise<string[]> {
    return JSON.parse((await send(url, "/admin/get_all_applications", { method: "POST", headers: JSON_TYPE, body: "{}" })).text) as string[];
  }

  it("answers 415 to a POST that is not application/json, and changes nothing", async () => {
    for (const type of [undefined, "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
      "application/jsonx", "json"]) {
      const answer = await send(url, "/admin/add_app", { method: "POST", headers: type === undefined ? {} : { "content-type": type }, body: app("web") });
      expect(answer.status, String(type)).toBe(415);
      expect(answer.text).toContain("Content-Type: application/json");
    }
    // Reads too: a page must not learn anything from them either.
    expect((await send(url, "/admin/get_all_applications", { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" })).status).toBe(415);
    expect(await apps()).toEqual([]);
  });

  it("accepts application/json with parameters and any case", async () => {
    for (const [i, type] of ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"].entries()) {
      expect((await send(url, "/admin/add_app", { method: "POST", headers: { "content-type": type }, body: app(`ok${i}`) })).status).toBe(200);
    }
    expect((await apps()).sort()).toEqual(["ok0", "ok1", "ok2"]);
  });

  it("answers 403 to any request from another origin, GET included", async () => {
    const own = url; // http://127.0.0.1:PORT
    for (const origin of ["http://evil.example", "null", "http://127.0.0.1:1", "https://" + own.slice("http://".length), "http://localhost"]) {
      const post = await send(url, "/admin/add_app", { method: "POST", headers: { ...JSON_TYPE, origin }, body: app("cross") });
      expect(post.status, origin).toBe(403);
      expect(post.text).toMatch(/Origin .* is not this daemon's own origin/);
      expect((await send(url, "/admin/ping", { headers: { origin } })).status).toBe(403);
      expect((await send(url, "/admin/watch", { headers: { origin } })).status).toBe(403);
    }
    expect(await apps()).not.toContain("cross");
    // The daemon's own origin (a same-origin page, which only the daemon could serve) passes.
    expect((await send(url, "/admin/ping", { headers: { origin: own } })).text).toBe("PONG");
  });

  it("refuses feedback (/update, which trains the bandits) from another origin on the query API", async () => {
    const feedback = JSON.stringify({ uid: 1, input: [1], label: 1 });
    const own = c.frontend.queryUrl; // http://127.0.0.1:PORT
    for (const origin of ["http://evil.example", "null", "http://127.0.0.1:1"]) {
      const answer = await send(own, "/a/update", { method: "POST", headers: { ...JSON_TYPE, origin }, body: feedback });
      expect(answer.status, origin).toBe(403);
      expect(JSON.parse(answer.text)).toMatchObject({ error: "Forbidden", cause: expect.stringContaining("feedback from web pages") });
    }
    // Without an Origin (any non-browser client) or from the server's own origin, the request goes on
    // to the application lookup: "a" does not exist here, so 404 rather than 403.
    for (const headers of [JSON_TYPE, { ...JSON_TYPE, origin: own }]) {
      expect((await send(own, "/a/update", { method: "POST", headers, body: feedback })).status).toBe(404);
    }
  });

  it("answers 403 naming --allowed-hosts to an unknown Host, on both APIs", async () => {
    const admin = await send(url, "/admin/ping", { headers: { host: "rebind.example:1338" } });
    expect(admin.status).toBe(403);
    expect(admin.text).toContain("--allowed-hosts");
    for (const path of ["/health", "/metrics", "/a/predict", "/v2/health/ready"]) {
      const query = await send(c.frontend.queryUrl, path, { headers: { host: "rebind.example" } });
      expect(query.status, path).toBe(403);
      expect(JSON.parse(query.text)).toMatchObject({ error: "Forbidden", cause: expect.stringContaining("--allowed-hosts") });
    }
    for (const host of ["clipper.example:1338", "localhost", "[::1]:9", "10.0.0.7:1338"]) {
      expect((await send(url, "/admin/ping", { headers: { host } })).text, host).toBe("PONG");
      expect((await send(c.frontend.queryUrl, "/health", { headers: { host } })).status, host).toBe(200);
    }
  });
});

describe("the token opens the Host check (the Kubernetes API server's proxy forwards its own name)", () => {
  it("admits an unknown Host with the token, refuses it without", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "clipper-guard-"));
    const server = await startManagementServer({
      host: "127.0.0.1", port: 0, stateDir, token: "s3cret", logger: pino({ level: "silent" }),
    });
    try {
      const host = "api.k8s.example:443";
      expect((await send(server.url, "/admin/ping", { headers: { host } })).status).toBe(403);
      expect((await send(server.url, "/admin/ping", { headers: { host, "x-clipper-token": "wrong" } })).status).toBe(403);
      expect((await send(server.url, "/admin/ping", { headers: { host, "x-clipper-token": "s3cret" } })).text).toBe("PONG");
      expect((await send(server.url, "/admin/ping", { headers: { host, authorization: "Bearer s3cret" } })).text).toBe("PONG");
      // The query frontend too: it holds the same token (for its own calls to the daemon).
      const frontend = await startQueryFrontend({
        host: "127.0.0.1", port: 0, rpcPort: 0, managementUrl: server.url, token: "s3cret", log: pino({ level: "silent" }), rpcAuth: "none",
      });
      try {
        expect((await send(frontend.queryUrl, "/health", { headers: { host } })).status).toBe(403);
        expect((await send(frontend.queryUrl, "/health", { headers: { host, "x-clipper-token": "wrong" } })).status).toBe(403);
        expect((await send(frontend.queryUrl, "/health", { headers: { host, "x-clipper-token": "s3cret" } })).status).toBe(200);
        expect((await send(frontend.queryUrl, "/health", { headers: { host, authorization: "Bearer s3cret" } })).status).toBe(200);
      } finally {
        await frontend.close();
      }
    } finally {
      await server.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A real browser

const CHROMIUM = "/usr/bin/chromium";
const chromiumSkip = existsSync(CHROMIUM) || IN_CI ? undefined : `${CHROMIUM} is absent`;

/** Loads `url` in headless chromium and returns the DOM once the page settled (virtual time). */
function dumpDom(url: string, extraArgs: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(CHROMIUM, [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--no-first-run", `--user-data-dir=${mkdtempSync(join(tmpdir(), "clipper-chromium-"))}`, "--virtual-time-budget=5000",
      ...extraArgs, "--dump-dom", url,
    ], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 45_000);
    child.on("error", reject);
    child.on("exit", () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe.skipIf(chromiumSkip !== undefined)(`a page in a real browser${chromiumSkip ? ` (skipped: ${chromiumSkip})` : ""}`, () => {
  let c: InProcessCluster;
  const servers: Server[] = [];
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (CI=true: install Debian's chromium)`);
    c = await startInProcessCluster();
  });
  afterAll(async () => {
    for (const s of servers) s.close();
    await c?.close();
  });

  it("on another loopback origin cannot create an application, though the browser sends the request", async () => {
    // A plain server beside the daemon: proof that the page's requests do leave the browser.
    const received: { type: string | undefined; body: string }[] = [];
    const control = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        if (req.method === "POST") received.push({ type: req.headers["content-type"], body });
        res.end("ok");
      });
    });
    servers.push(control);
    const controlUrl = await listen(control);
    const body = app("from-browser");
    const page = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(`<html><body>waiting<script>
        const body = ${JSON.stringify(body)};
        const attempts = [${JSON.stringify(c.management.url)}, ${JSON.stringify(controlUrl)}].flatMap((base) => [
          fetch(base + "/admin/add_app", { method: "POST", mode: "no-cors", body }),
          fetch(base + "/admin/add_app", { method: "POST", mode: "no-cors", body, headers: { "Content-Type": "text/plain" } }),
          fetch(base + "/admin/add_app", { method: "POST", body, headers: { "Content-Type": "application/json" } }),
        ]);
        Promise.allSettled(attempts).then(() => { document.body.textContent = "DONE"; });
      </script></body></html>`);
    });
    servers.push(page);
    const pageUrl = await listen(page);

    const dom = await dumpDom(pageUrl);
    expect(dom).toContain("DONE");
    expect(received.length).toBeGreaterThanOrEqual(2);
    expect(received[0]!.body).toBe(body);
    expect(await c.admin.postJson("/admin/get_all_applications", {})).toEqual([]);
  }, 60_000);

  it("cannot read the admin API through a rebound name, while the address itself answers", async () => {
    const port = new URL(c.management.url).port;
    const rebound = await dumpDom(`http://rebind.test:${port}/admin/ping`, ["--host-resolver-rules=MAP rebind.test 127.0.0.1"]);
    expect(rebound).toContain("is not allowed");
    expect(rebound).not.toContain("PONG");
    expect(await dumpDom(`${c.management.url}/admin/ping`)).toContain("PONG");
  }, 60_000);
});
