/**
 * One POST from the query frontend to the management daemon's reporting endpoints, on node:http
 * with a keep-alive agent rather than fetch: the query log ships about half a MiB per report
 * several times a second, and every worker reports the revision it applied after configuration
 * changes; fetch copies a byte body into a web stream and allocates per call several times what
 * node:http does — CPU and garbage taken from the query path (bench/query-log.ts and
 * bench/control-plane.ts measure it).
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Logger } from "pino";

export interface ManagementTarget {
  managementUrl: string;
  token?: string;
  log: Logger;
}

/** `refused`: the daemon answered with an error status; `unreachable`: no answer at all. */
export type PostOutcome = "accepted" | "refused" | "unreachable";

/** The daemon's answer to a report is short: an error's text is kept up to this many bytes for the log. */
const MAX_ANSWER_BYTES = 4096;
/** Reports go one at a time per reporter: a few sockets kept open serve them all. */
const agents = { http: new HttpAgent({ keepAlive: true, maxSockets: 4 }), https: new HttpsAgent({ keepAlive: true, maxSockets: 4 }) };

/**
 * Sends `body`; never rejects. A refusal is logged as a warning (a bug on one side, or an older
 * daemon) unless `quietRefusal`, for a caller that reports it itself; a failure to reach the daemon
 * only at debug, since the daemon may be restarting and the next periodic report catches up.
 */
export async function postToManagement(
  target: ManagementTarget, path: string, body: unknown, timeoutMs: number, what: string, quietRefusal = false,
  /** Sends `body` as it is with this Content-Type: a string, bytes, or bytes in parts sent one after another (default: `body` as JSON). */
  contentType?: string,
): Promise<PostOutcome> {
  const headers: Record<string, string> = { "content-type": contentType ?? "application/json" };
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  const parts = contentType === undefined ? [JSON.stringify(body)] : Array.isArray(body) ? (body as Uint8Array[]) : [body as string | Uint8Array];
  headers["content-length"] = String(parts.reduce((n, part) => n + (typeof part === "string" ? Buffer.byteLength(part) : part.byteLength), 0));
  try {
    const { status, text } = await postRetryingStale(new URL(path, target.managementUrl), headers, parts, timeoutMs);
    if (status < 200 || status >= 300) {
      target.log[quietRefusal ? "debug" : "warn"]({ status, body: text }, `${what} refused`);
      return "refused";
    }
    return "accepted";
  } catch (err) {
    target.log.debug({ err }, `${what} failed`);
    return "unreachable";
  }
}

interface Answer {
  status: number;
  text: string;
}

/**
 * The POST, answered within `timeoutMs` or rejected. Sent again once when a kept-alive connection
 * turns out closed before any answer: usually the daemon dropped it while idle and the request never
 * reached it, but the daemon may also have taken the request and died, or its answer been lost. So
 * what is posted must be safe to take twice: applied-revision reports are idempotent, and a query
 * log report carries an id the daemon stores it once by (management/report-ledger.ts).
 */
async function postRetryingStale(url: URL, headers: Record<string, string>, parts: ReadonlyArray<string | Uint8Array>, timeoutMs: number): Promise<Answer> {
  const deadline = Date.now() + timeoutMs;
  try {
    return await post(url, headers, parts, timeoutMs);
  } catch (err) {
    if (!(err instanceof StaleConnectionError) || Date.now() >= deadline) throw err;
    return post(url, headers, parts, deadline - Date.now());
  }
}

class StaleConnectionError extends Error {}

/**
 * The answer's status and the start of its text. Resolves only once the whole body was handed to
 * the socket ('finish') and the answer read, so that a caller may reuse the body's storage then.
 */
function post(url: URL, headers: Record<string, string>, parts: ReadonlyArray<string | Uint8Array>, timeoutMs: number): Promise<Answer> {
  if (url.protocol !== "http:" && url.protocol !== "https:") return Promise.reject(new Error(`unsupported management URL protocol ${url.protocol}`));
  const https = url.protocol === "https:";
  return new Promise((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(url, { method: "POST", headers, agent: https ? agents.https : agents.http });
    // Unref'd like fetch's AbortSignal.timeout: the socket, not this timer, keeps a process up while a report is out.
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref();
    let finished = false;
    let answer: Answer | undefined;
    const settle = () => {
      if (!finished || !answer) return;
      clearTimeout(timer);
      resolve(answer);
    };
    req.on("finish", () => {
      finished = true;
      settle();
    });
    req.on("response", (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on("data", (chunk: Buffer) => {
        if (kept < MAX_ANSWER_BYTES) chunks.push(chunk);
        kept += chunk.length;
      });
      res.on("end", () => {
        answer = { status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8", 0, MAX_ANSWER_BYTES) };
        settle();
      });
      res.on("error", fail);
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      const stale = req.reusedSocket && answer === undefined && (err.code === "ECONNRESET" || err.code === "EPIPE");
      fail(stale ? new StaleConnectionError(err.message) : err);
    });
    // A daemon may answer (413) and close before taking the whole body: the answer stands, and once
    // closed the socket holds no part of the body. No answer by then: it went away.
    req.on("close", () => {
      finished = true;
      if (answer) settle();
      else fail(new Error("the connection closed before the whole answer came"));
    });
    function fail(err: Error) {
      clearTimeout(timer);
      reject(err);
    }
    for (const part of parts) req.write(part);
    req.end();
  });
}
