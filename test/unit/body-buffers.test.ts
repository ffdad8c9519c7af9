/** Request bodies read into reused storage (BodyBuffers): the daemon's query log reports. */
import type { IncomingMessage } from "node:http";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { BodyBuffers, readBody } from "../../runtime/shared/http-body.js";

/** A request whose body comes in `chunks`, with a Content-Length when `declared`. */
function request(chunks: string[], declared = true): IncomingMessage {
  const length = chunks.reduce((n, c) => n + Buffer.byteLength(c), 0);
  const req = Object.assign(new PassThrough(), { headers: declared ? { "content-length": String(length) } : {} });
  setImmediate(() => {
    for (const chunk of chunks) req.write(Buffer.from(chunk));
    req.end();
  });
  return req as unknown as IncomingMessage;
}

describe("BodyBuffers", () => {
  it("reads a declared body into its storage, and hands the same storage out again once given back", async () => {
    const buffers = new BodyBuffers(64);
    const first = await readBody(request(["{\"a\":", "1}\n", "é"]), 1000, buffers.take);
    expect(first.toString()).toBe("{\"a\":1}\né");
    const storage = first.buffer;
    expect(first.buffer.byteLength).toBe(64);
    buffers.give(first);
    buffers.give(first); // twice: kept once
    const second = await readBody(request(["xy", "z"]), 1000, buffers.take);
    expect(second.toString()).toBe("xyz");
    expect(second.buffer).toBe(storage);
    const third = await readBody(request(["abc", "d"]), 1000, buffers.take);
    expect(third.toString()).toBe("abcd");
    expect(third.buffer).not.toBe(storage); // the one spare is in use
  });

  it("reads a body larger than its storage, or of no declared length, as any other, and never takes that storage back", async () => {
    const buffers = new BodyBuffers(4);
    const large = await readBody(request(["abc", "def"]), 1000, buffers.take);
    expect(large.toString()).toBe("abcdef");
    const undeclared = await readBody(request(["ab", "c"], false), 1000, buffers.take);
    expect(undeclared.toString()).toBe("abc");
    buffers.give(large);
    buffers.give(undeclared);
    buffers.give(Buffer.alloc(4));
    expect(buffers.take(4)!.buffer).not.toBe(large.buffer);
    expect(buffers.take(5)).toBeUndefined();
  });
});
