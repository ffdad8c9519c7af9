/**
 * The fast path's head parser and answer text (shared/http-fast-path.ts): what it takes must be
 * exactly the plain case, and everything else must be left to node:http (undefined). The
 * connection handling is tested end to end over real sockets in test/http-fast-path.test.ts and
 * test/http-edges.test.ts.
 */
import { describe, expect, it } from "vitest";
import { parseSimpleHead, responseText } from "../../runtime/shared/http-fast-path.js";

const head = (...lines: string[]) => lines.join("\r\n");
const plain = ["POST /app/predict HTTP/1.1", "Host: 127.0.0.1:1337", "Content-Type: application/json", "Content-Length: 17"];

describe("parseSimpleHead", () => {
  it("takes a plain POST with a Content-Length, header names in lower case, values trimmed", () => {
    const parsed = parseSimpleHead(head(...plain, "X-Clipper-Key:   k1  "));
    expect(parsed).toMatchObject({ method: "POST", target: "/app/predict", contentLength: 17 });
    expect({ ...parsed!.headers }).toEqual({
      host: "127.0.0.1:1337", "content-type": "application/json", "content-length": "17", "x-clipper-key": "k1",
    });
  });

  it("keeps names like __proto__ and constructor as plain headers", () => {
    const parsed = parseSimpleHead(head(...plain, "__proto__: a", "constructor: b", "hasOwnProperty: c"));
    expect(parsed!.headers["__proto__"]).toBe("a");
    expect(parsed!.headers["constructor"]).toBe("b");
    expect(Object.getPrototypeOf(parsed!.headers)).toBeNull();
    expect(Object.keys(parsed!.headers)).toContain("__proto__");
  });

  it("takes Connection: keep-alive in any case, and a query string in the target", () => {
    expect(parseSimpleHead(head("POST /a/predict?x=1 HTTP/1.1", "Host: h", "Connection: Keep-Alive", "Content-Length: 0"))?.target).toBe("/a/predict?x=1");
  });

  it.each([
    ["HTTP/1.0", head("POST /a/predict HTTP/1.0", "Host: h", "Content-Length: 2")],
    ["HTTP/2 preface-like", head("PRI * HTTP/2.0")],
    ["an absolute-form target", head("POST http://h/a/predict HTTP/1.1", "Host: h", "Content-Length: 2")],
    ["a lower-case method", head("post /a/predict HTTP/1.1", "Host: h", "Content-Length: 2")],
    ["two spaces in the request line", head("POST  /a/predict HTTP/1.1", "Host: h", "Content-Length: 2")],
    ["a space in the target", head("POST /a/pre dict HTTP/1.1", "Host: h", "Content-Length: 2")],
    ["no Content-Length", head("POST /a/predict HTTP/1.1", "Host: h")],
    ["a signed Content-Length", head("POST /a/predict HTTP/1.1", "Host: h", "Content-Length: +2")],
    ["a Content-Length list", head("POST /a/predict HTTP/1.1", "Host: h", "Content-Length: 2, 2")],
    ["two Content-Lengths", head(...plain, "Content-Length: 17")],
    ["Content-Length with Transfer-Encoding", head(...plain, "Transfer-Encoding: chunked")],
    ["Expect", head(...plain, "Expect: 100-continue")],
    ["Upgrade", head(...plain, "Upgrade: websocket")],
    ["Connection: close", head(...plain, "Connection: close")],
    ["Connection: keep-alive, Upgrade", head(...plain, "Connection: keep-alive, Upgrade")],
    ["two Host headers", head(...plain, "Host: other")],
    ["a Host header in another case, twice", head(...plain, "HOST: other")],
    ["a space before the colon", head(...plain, "X-A : 1")],
    ["a line with no colon", head(...plain, "garbage")],
    ["an empty header name", head(...plain, ": x")],
    ["a folded header line", head(...plain, "X-A: 1", " continued")],
    ["a bare LF inside the head", head(...plain, "X-A: 1\nX-B: 2")],
    ["a control byte in a value", head(...plain, "X-A: \x01")],
    ["a byte above ASCII in a value", head(...plain, "X-A: caf\xe9")],
    ["a separator in a header name", head(...plain, "X(A): 1")],
    ["a leading empty line", head("", ...plain)],
  ])("leaves %s to node:http", (_what, text) => {
    expect(parseSimpleHead(text)).toBeUndefined();
  });

  it("leaves more than 64 header lines to node:http", () => {
    const many = Array.from({ length: 64 }, (_, i) => `X-${i}: v`);
    expect(parseSimpleHead(head(plain[0]!, ...many.slice(0, 60), "Content-Length: 0"))).toBeDefined();
    expect(parseSimpleHead(head(plain[0]!, ...many, "Content-Length: 0"))).toBeUndefined();
  });
});

describe("responseText", () => {
  it("refuses a header that would split the response, as node:http's writeHead does", () => {
    expect(() => responseText(503, "{}", 5_000, { "retry-after": "1\r\nSet-Cookie: x=1" })).toThrow(/invalid response header/);
    expect(() => responseText(503, "{}", 5_000, { "bad name": "1" })).toThrow(/invalid response header/);
  });

  it("is a whole HTTP/1.1 answer: status, extra headers, JSON type, byte length, keep-alive", () => {
    const text = responseText(429, JSON.stringify({ error: "Too many requests", cause: "ü" }), 5_000, { "retry-after": "1" });
    const [headPart, body] = text.split("\r\n\r\n") as [string, string];
    const lines = headPart.split("\r\n");
    expect(lines[0]).toBe("HTTP/1.1 429 Too Many Requests");
    expect(lines).toContain("retry-after: 1");
    expect(lines).toContain("content-type: application/json");
    expect(lines).toContain(`content-length: ${Buffer.byteLength(body)}`);
    expect(Buffer.byteLength(body)).toBe(body.length + 1); // ü is two bytes in UTF-8
    expect(lines).toContain("Connection: keep-alive");
    expect(lines).toContain("Keep-Alive: timeout=5");
    expect(lines.find((l) => l.startsWith("Date: "))).toMatch(/^Date: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  });
});
