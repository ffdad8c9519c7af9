/** Presented secrets: how a request carries one, and comparing it without a timing leak. */
import { createHash, timingSafeEqual } from "node:crypto";

/**
 * The header that carries the management token where `Authorization` cannot: the Kubernetes API
 * server's service proxy, which the CLI reaches a cluster through, strips Authorization.
 */
export const TOKEN_HEADER = "x-clipper-token";

/** Constant-time comparison (hashing first makes the lengths equal). */
export function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * The secret a request presents: `Authorization: Bearer <secret>`, else the value of a header of
 * our own (for proxies that strip Authorization). Undefined when it presents none.
 */
export function presentedSecret(authorization: string | undefined, header: string | string[] | undefined): string | undefined {
  const bearer = /^Bearer[ \t]+(.+)$/i.exec(authorization?.trim() ?? "");
  if (bearer !== null) return bearer[1]!.trim();
  const value = (Array.isArray(header) ? header[0] : header)?.trim();
  return value === undefined || value === "" ? undefined : value;
}

/**
 * Whether a request carries `token` (in either place). Such a request also passes the Host check:
 * a browser page cannot know the token, and the Kubernetes API server's service proxy forwards the
 * Host its caller used (any name the kubeconfig gives the API server).
 */
export function presentsToken(token: string | undefined, authorization: string | undefined, header: string | string[] | undefined): boolean {
  if (!token) return false;
  // Both places count: a proxy may put its own credential in Authorization and pass ours on.
  const bearer = presentedSecret(authorization, undefined);
  if (bearer !== undefined && sameSecret(bearer, token)) return true;
  const own = presentedSecret(undefined, header);
  return own !== undefined && sameSecret(own, token);
}
