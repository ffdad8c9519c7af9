/** Reading a request body with a size limit: past the limit we stop collecting and answer 413. */
import type { IncomingMessage } from "node:http";
import { AdminError, badRequest } from "./errors.js";

export function payloadTooLarge(maxBytes: number): AdminError {
  return new AdminError("payload_too_large", `Request body is larger than the limit of ${maxBytes} bytes`);
}

/**
 * The body as UTF-8 text. Rejects with a 413 AdminError as soon as the declared or received size
 * passes `maxBytes`, without buffering the rest; the caller answers and closes the connection.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<string> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) return Promise.reject(payloadTooLarge(maxBytes));

  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        chunks.length = 0;
        reject(payloadTooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      try {
        resolve(new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks)));
      } catch {
        reject(badRequest("Request body is not valid UTF-8"));
      }
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    // 'close' before 'end': the client went away mid-upload.
    const onClose = () => onError(new Error("the client closed the connection before sending the whole body"));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}
