/**
 * collectBody (runtime/shared/http-body.ts) calls exactly one of its callbacks, once, whatever the
 * request emits after: every request emits `close` after its `end`, and its listeners stay on.
 */
import { EventEmitter } from "node:events";
import type { IncomingMessage } from "node:http";
import { describe, expect, it, vi } from "vitest";
import { BodyTooLargeError, collectBody } from "../../runtime/shared/http-body.js";

/** What collectBody reads of a request: its headers and its events. */
function fakeRequest(headers: Record<string, string> = {}): IncomingMessage & EventEmitter {
  return Object.assign(new EventEmitter(), { headers }) as unknown as IncomingMessage & EventEmitter;
}

function collect(req: IncomingMessage, limit = 100) {
  const onBody = vi.fn<(body: Buffer) => void>();
  const onError = vi.fn<(err: Error) => void>();
  collectBody(req, limit, onBody, onError);
  return { onBody, onError };
}

describe("collectBody", () => {
  it("hands over the body once and ignores the close that follows the end", () => {
    const req = fakeRequest();
    const { onBody, onError } = collect(req);
    req.emit("data", Buffer.from("{\"input\":"));
    req.emit("data", Buffer.from("[1]}"));
    req.emit("end");
    req.emit("close");
    req.emit("error", new Error("late"));
    expect(onBody).toHaveBeenCalledTimes(1);
    expect(onBody.mock.calls[0]![0].toString()).toBe("{\"input\":[1]}");
    expect(onError).not.toHaveBeenCalled();
  });

  it("reports a client gone before the end once, and nothing after", () => {
    const req = fakeRequest();
    const { onBody, onError } = collect(req);
    req.emit("data", Buffer.from("{\"in"));
    req.emit("close");
    req.emit("end");
    req.emit("error", new Error("late"));
    expect(onBody).not.toHaveBeenCalled();
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError.mock.calls[0]![0].message).toMatch(/closed the connection before sending the whole body/);
  });

  it("refuses a streamed body past the limit once, ignoring what still arrives", () => {
    const req = fakeRequest();
    const { onBody, onError } = collect(req, 4);
    req.emit("data", Buffer.from("abc"));
    req.emit("data", Buffer.from("def"));
    req.emit("data", Buffer.from("ghi"));
    req.emit("end");
    req.emit("close");
    expect(onBody).not.toHaveBeenCalled();
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError.mock.calls[0]![0]).toBeInstanceOf(BodyTooLargeError);
  });
});
