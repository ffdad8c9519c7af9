/** One JSON POST from the query frontend to the management daemon's reporting endpoints. */
import type { Logger } from "pino";

export interface ManagementTarget {
  managementUrl: string;
  token?: string;
  log: Logger;
}

/** `refused`: the daemon answered with an error status; `unreachable`: no answer at all. */
export type PostOutcome = "accepted" | "refused" | "unreachable";

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
  const headers: Record<string, string> = { "content-type": contentType ?? "application/json" };
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  try {
    const res = await fetch(new URL(path, target.managementUrl), {
      method: "POST",
      headers,
      body: contentType === undefined ? JSON.stringify(body) : (body as string | Uint8Array<ArrayBuffer>),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) {
      target.log[quietRefusal ? "debug" : "warn"]({ status: res.status, body: await res.text() }, `${what} refused`);
      return "refused";
    }
    await res.arrayBuffer();
    return "accepted";
  } catch (err) {
    target.log.debug({ err }, `${what} failed`);
    return "unreachable";
  }
}
