/**
 * One JSON POST from the query frontend to the management daemon's reporting endpoints, over
 * node:http on a kept-alive connection. A frontend worker reports the revision it applied after
 * every configuration change: with fetch each report cost about three times the CPU (its WHATWG
 * streams, signals and headers), on the cores the queries need.
 */
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Logger } from "pino";

export interface ManagementTarget {
  managementUrl: string;
  token?: string;
  log: Logger;
}

/** `refused`: the daemon answered with an error status; `unreachable`: no answer at all. */
export type PostOutcome = "accepted" | "refused" | "unreachable";

/** One connection pool per process for all reports; a few sockets suffice (reports go out one at a time per reporter). */
const agents = { http: new HttpAgent({ keepAlive: true, maxSockets: 8 }), https: new HttpsAgent({ keepAlive: true, maxSockets: 8 }) };

/**
 * Sends `body`; never rejects. A refusal is logged as a warning (a bug on one side, or an older
 * daemon) unless `quietRefusal`, for a caller that reports it itself; a failure to reach the daemon
 * only at debug, since the daemon may be restarting and the next periodic report catches up.
 */
export async function postToManagement(
  target: ManagementTarget, path: string, body: unknown, timeoutMs: number, what: string, quietRefusal = false,
  /** Sends `body`, a string or bytes, as it is with this Content-Type (default: `body` as JSON). */
  contentType?: string,
): Promise<PostOutcome> {
  const payload = contentType === undefined ? JSON.stringify(body) : (body as string | Uint8Array);
  const headers: Record<string, string | number> = {
    "content-type": contentType ?? "application/json",
    "content-length": typeof payload === "string" ? Buffer.byteLength(payload) : payload.byteLength,
  };
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  try {
    const url = new URL(path, target.managementUrl);
    const { status, text } = await postRetryingStale(url, headers, payload, timeoutMs);
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
 * turns out closed before any answer (the daemon dropped it while idle: the request never reached it).
 */
async function postRetryingStale(url: URL, headers: RequestOptions["headers"], payload: string | Uint8Array, timeoutMs: number): Promise<Answer> {
  const deadline = Date.now() + timeoutMs;
  try {
    return await send(url, headers, payload, timeoutMs);
  } catch (err) {
    if (!(err instanceof StaleConnectionError) || Date.now() >= deadline) throw err;
    return send(url, headers, payload, deadline - Date.now());
  }
}

class StaleConnectionError extends Error {}

function send(url: URL, headers: RequestOptions["headers"], payload: string | Uint8Array, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const https = url.protocol === "https:";
    let req: ClientRequest;
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") });
      });
      res.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    };
    const options: RequestOptions = { method: "POST", headers, agent: https ? agents.https : agents.http };
    req = https ? httpsRequest(url, options, onResponse) : httpRequest(url, options, onResponse);
    req.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const stale = req.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE");
      reject(stale ? new StaleConnectionError(err.message) : err);
    });
    req.end(payload);
  });
}
