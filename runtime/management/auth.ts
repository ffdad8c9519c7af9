/**
 * Who may call the admin API. Secure by default: loopback clients are always let in; when the
 * daemon listens beyond loopback and a token is configured, every other client must present
 * `Authorization: Bearer <token>`.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { isLoopbackAddress, isLoopbackHost } from "../shared/loopback.js";

export interface AuthPolicy {
  /** The host the server is bound to. */
  host: string;
  token?: string;
}

/** Whether a request from `remoteAddress` with this Authorization header may proceed. */
export function isAuthorized(policy: AuthPolicy, remoteAddress: string | undefined, authorization: string | undefined): boolean {
  if (!policy.token || isLoopbackHost(policy.host) || isLoopbackAddress(remoteAddress)) return true;
  const match = /^Bearer[ \t]+(.+)$/i.exec(authorization?.trim() ?? "");
  return match !== null && sameSecret(match[1]!.trim(), policy.token);
}

/** Constant-time comparison (hashing first makes the lengths equal). */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * Endpoints open to everyone even when a token is required: `GET /admin/ping` answers only `PONG`,
 * and Kubernetes' HTTP liveness and readiness probes (sent by the kubelet from the node's address,
 * with no way to read a Secret into a header) must reach it.
 */
export function isOpenEndpoint(method: string | undefined, path: string): boolean {
  return method === "GET" && path === "/admin/ping";
}
