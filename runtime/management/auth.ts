/**
 * Who may call the admin API. Secure by default: loopback clients are always let in; when the
 * daemon listens beyond loopback and a token is configured, every other client must present
 * `Authorization: Bearer <token>` or `X-Clipper-Token: <token>`. The second header exists for proxies
 * that authenticate callers with `Authorization` themselves and strip it before forwarding: the
 * Kubernetes API server's service proxy, which the CLI reaches a cluster's daemon through.
 */
import { presentsToken, TOKEN_HEADER } from "../shared/secrets.js";
import { isLoopbackAddress, isLoopbackHost } from "../shared/loopback.js";
import { LIVE_PATH } from "../shared/state.js";

export interface AuthPolicy {
  /** The host the server is bound to. */
  host: string;
  token?: string;
}

export { TOKEN_HEADER };

/** Whether a request from `remoteAddress` with these credentials may proceed. */
export function isAuthorized(
  policy: AuthPolicy,
  remoteAddress: string | undefined,
  authorization: string | undefined,
  tokenHeader?: string,
): boolean {
  if (!policy.token || isLoopbackHost(policy.host) || isLoopbackAddress(remoteAddress)) return true;
  return presentsToken(policy.token, authorization, tokenHeader);
}

/**
 * Endpoints open to everyone even when a token is required: `GET /admin/ping` (readiness) and
 * `GET /admin/live` (liveness) answer only `PONG` or that writes are refused, and Kubernetes' HTTP
 * probes (sent by the kubelet from the node's address, with no way to read a Secret into a header)
 * must reach them.
 */
export function isOpenEndpoint(method: string | undefined, path: string): boolean {
  return method === "GET" && (path === "/admin/ping" || path === LIVE_PATH);
}
