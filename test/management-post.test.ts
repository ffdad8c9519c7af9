/** The frontend's reports to the daemon (management-post.ts) against a local server: body, headers and each outcome. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { postToManagement } from "../runtime/frontend/management-post.js";

const log = pino({ level: "silent" });
const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => { s.closeAllConnections(); s.close(resolve); })));
});

/** A server on 127.0.0.1 that answers with `handle`; resolves with its URL. */
async function serve(handle: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void): Promise<string> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handle(req, res, Buffer.concat(chunks)));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("postToManagement", () => {
  it("sends bytes in parts as one body with its length, type and token, and JSON by default", async () => {
    const seen: Array<{ body: string; type?: string; length?: string; auth?: string; path?: string }> = [];
    const url = await serve((req, res, body) => {
      seen.push({ body: body.toString(), type: req.headers["content-type"], length: req.headers["content-length"], auth: req.headers.authorization, path: req.url });
      res.end("ok");
    });
    const target = { managementUrl: url, token: "t0k", log };
    const parts = [Buffer.from("{\"h\":1}\n"), Buffer.from("{\"é\":2}\n")];
    expect(await postToManagement(target, "/admin/report_query_log", parts, 5_000, "test", false, "application/x-ndjson")).toBe("accepted");
    expect(await postToManagement({ managementUrl: url, log }, "/admin/x", { a: [1] }, 5_000, "test")).toBe("accepted");
    expect(seen).toEqual([
      { body: "{\"h\":1}\n{\"é\":2}\n", type: "application/x-ndjson", length: String(Buffer.byteLength("{\"h\":1}\n{\"é\":2}\n")), auth: "Bearer t0k", path: "/admin/report_query_log" },
      { body: "{\"a\":[1]}", type: "application/json", length: "9", auth: undefined, path: "/admin/x" },
    ]);
  });

  it("is refused on an error status, unreachable with no server or no answer in time, and never rejects", async () => {
    const refusing = await serve((_req, res) => {
      res.statusCode = 400;
      res.end("bad report");
    });
    expect(await postToManagement({ managementUrl: refusing, log }, "/r", {}, 5_000, "test")).toBe("refused");
    const silent = await serve(() => undefined);
    expect(await postToManagement({ managementUrl: silent, log }, "/r", {}, 200, "test")).toBe("unreachable");
    const closed = await serve(() => undefined);
    servers.pop()!.close();
    expect(await postToManagement({ managementUrl: closed, log }, "/r", {}, 5_000, "test")).toBe("unreachable");
    expect(await postToManagement({ managementUrl: "ftp://127.0.0.1:1", log }, "/r", {}, 5_000, "test")).toBe("unreachable");
  });
});
