/**
 * Who may call the admin API. Secure by default: loopback clients are always let in; when the
 * daemon listens beyond loopback and a token is configured, every other client must present
 * `Authorization: Bearer <token>` or `X-Clipper-Token: <token>`. The second header exists for proxies
 * that authenticate callers with `Authorization` themselves and strip it before forwarding: the
 * Kubernetes API server's service proxy, which the CLI reaches a cluster's daemon through.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { isLoopbackAddress, isLoopbackHost } from "../shared/loopback.js";

export interface AuthPolicy {
  /** The host the server is bound to. */
  host: string;
  token?: string;
}

/** The header that carries the token where `Authorization` cannot (see above). */
export const TOKEN_HEADER = "x-clipper-token";

/** Whether a request from `remoteAddress` with these credentials may proceed. */
export function isAuthorized(
  policy: AuthPolicy,
  remoteAddress: string | undefined,
  authorization: string | undefined,
  tokenHeader?: string,
): boolean {
  if (!policy.token || isLoopbackHost(policy.host) || isLoopbackAddress(remoteAddress)) return true;
  return presentsToken(policy, authorization, tokenHeader);
}

/**
 * Whether the request carries the configured token. Such a request also passes the Host check: a
 * browser page cannot know the token, and the Kubernetes API server's service proxy forwards the
 * Host its caller used (any name the kubeconfig gives the API server).
 */
export function presentsToken(policy: AuthPolicy, authorization: string | undefined, tokenHeader?: string): boolean {
  if (!policy.token) return false;
  const match = /^Bearer[ \t]+(.+)$/i.exec(authorization?.trim() ?? "");
  if (match !== null && sameSecret(match[1]!.trim(), policy.token)) return true;
  const given = tokenHeader?.trim();
  return given !== undefined && given !== "" && sameSecret(given, policy.token);
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
