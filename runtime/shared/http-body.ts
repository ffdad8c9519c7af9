/**
 * Request bodies for the runtime's HTTP servers (query frontend, management daemon): read with a
 * size limit, so an oversized body is refused rather than buffered. Each server maps the errors
 * below onto its own answer format; http-guard.ts sees to it that the client reads the 413 (the
 * connection closes after a bounded drain of the rest of the upload).
 */
import { isUtf8 } from "node:buffer";
import type { IncomingMessage } from "node:http";

/** The body is (declared or turned out) larger than the limit; nothing past the limit was kept. */
export class BodyTooLargeError extends Error {
  override name = "BodyTooLargeError";
  constructor(readonly limit: number) {
    super(`request body exceeds the limit of ${limit} bytes`);
  }
}

/** The body was asked for as text but is not valid UTF-8. */
export class BodyNotUtf8Error extends Error {
  override name = "BodyNotUtf8Error";
  constructor() {
    super("request body is not valid UTF-8");
  }
}

/**
 * The whole body, to `onBody`, or why not, to `onError` (exactly one of them is called, never
 * before this returns). BodyTooLargeError without reading anything when the declared
 * Content-Length passes `limit`, and as soon as a streamed body does, without buffering the rest;
 * the caller answers 413. Callbacks rather than a promise so the query path
 * can answer a cache hit on the tick the body ends (http-server.ts). Listens for events instead of
 * async-iterating the request: leaving a `for await` early destroys the request, and with it the
 * socket, before the 413 can go out.
 */
export function collectBody(
  req: IncomingMessage, limit: number, onBody: (body: Buffer) => void, onError: (err: Error) => void,
  /** Where a body of a declared length may be read to, instead of a fresh buffer (undefined: none fits). */
  storage?: (bytes: number) => Buffer | undefined,
): void {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    process.nextTick(onError, new BodyTooLargeError(limit));
    return;
  }
  // Copied there as it comes (node:http enforces the declared length), so no chunk list is joined.
  const target = req.headers["content-length"] !== undefined && Number.isSafeInteger(declared) && declared > 0 ? storage?.(declared) : undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  // Once settled, the listeners stay on (the request is done with) and do nothing: cheaper on the
  // query path than taking four listeners off every request.
  let settled = false;
  const fail = (err: Error) => {
    if (settled) return;
    settled = true;
    chunks.length = 0;
    onError(err);
  };
  const onData = (chunk: Buffer) => {
    if (settled) return;
    size += chunk.length;
    if (size > limit) {
      fail(new BodyTooLargeError(limit));
      return;
    }
    if (!target) chunks.push(chunk);
    else if (size <= target.length) chunk.copy(target, size - chunk.length);
    else fail(new Error("the body is longer than its Content-Length")); // node:http does not let this happen
  };
  const onEnd = () => {
    if (settled) return;
    settled = true;
    if (target) onBody(target.subarray(0, size));
    // A small body arrives in one chunk: no need to copy it.
    else onBody(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
  };
  // 'close' before 'end': the client went away mid-upload. Every request closes after its end: the
  // Error (a stack trace to capture) only when that is not the case.
  const onClose = () => {
    if (!settled) fail(new Error("the client closed the connection before sending the whole body"));
  };
  req.on("data", onData);
  req.on("end", onEnd);
  req.on("error", fail);
  req.on("close", onClose);
}

/** `collectBody` as a promise. */
export function readBody(req: IncomingMessage, limit: number, storage?: (bytes: number) => Buffer | undefined): Promise<Buffer> {
  return new Promise((resolve, reject) => collectBody(req, limit, resolve, reject, storage));
}

/**
 * A few buffers that large bodies of one kind are read into and handed back after use: a body that
 * comes several times a second (a query log report, about half a MiB) then costs no fresh memory,
 * whose first touch (page faults) costs more than copying into it.
 */
export class BodyBuffers {
  private readonly spare: Buffer[] = [];
  /** The storage this made: only that is taken back. */
  private readonly made = new WeakSet<ArrayBufferLike>();

  constructor(readonly bytes: number, private readonly keep = 4) {}

  /** A buffer for a body of `length` bytes, or undefined when it does not fit one. */
  take = (length: number): Buffer | undefined => {
    if (length > this.bytes) return undefined;
    const spare = this.spare.pop();
    if (spare) return spare;
    const fresh = Buffer.allocUnsafeSlow(this.bytes);
    this.made.add(fresh.buffer);
    return fresh;
  };

  /** `body` (read with `take`, or any other) is no longer used: storage `take` made may hold the next one. */
  give(body: Buffer): void {
    const storage = body.buffer;
    if (!this.made.has(storage) || this.spare.length >= this.keep || this.spare.some((b) => b.buffer === storage)) return;
    this.spare.push(Buffer.from(storage, 0, this.bytes));
  }
}

/** A body as UTF-8 text; BodyNotUtf8Error for bytes that are not UTF-8. */
export function utf8Text(raw: Buffer): string {
  // Native validation, then a plain decode: cheaper on the query path than a fatal TextDecoder.
  if (!isUtf8(raw)) throw new BodyNotUtf8Error();
  return raw.toString("utf8");
}

/** The body as UTF-8 text: `readBody`, then `utf8Text`. */
export async function readTextBody(req: IncomingMessage, limit: number): Promise<string> {
  return utf8Text(await readBody(req, limit));
}
