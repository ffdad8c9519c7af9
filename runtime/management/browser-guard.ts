/**
 * What keeps web pages away from the admin API (docs/security.md). A page in any browser tab can
 * send a "simple" cross-origin request to 127.0.0.1 without asking the server first (a CORS
 * preflight): a POST whose Content-Type is text/plain, form-urlencoded or multipart. Requiring
 * `application/json` on every POST forces a preflight, which we never grant; refusing any request
 * whose `Origin` is not the daemon's own stops the rest, GETs included. The `Host` check
 * (shared/host-check.ts) closes DNS rebinding, where the page's origin is a name resolving to us.
 */
import type { IncomingHttpHeaders } from "node:http";
import { AdminError } from "./errors.js";
import { isForeignOrigin } from "../shared/host-check.js";

/** Whether a Content-Type header names JSON (`application/json`, parameters such as charset allowed). */
export function isJsonContentType(value: string | undefined, type = "application/json"): boolean {
  if (value === undefined) return false;
  return value.split(";")[0]!.trim().toLowerCase() === type;
}

/**
 * `type` is `application/json`, or `application/x-ndjson` for the frontends' query log reports:
 * neither is a type a page may send without a preflight.
 */
export function requireJsonContentType(headers: IncomingHttpHeaders, type: "application/json" | "application/x-ndjson" = "application/json"): void {
  if (isJsonContentType(headers["content-type"], type)) return;
  const given = headers["content-type"] === undefined ? "none" : `'${headers["content-type"].slice(0, 100)}'`;
  throw new AdminError("unsupported_media_type",
    `Admin POST requests to this path must send 'Content-Type: ${type}' (got ${given}); with curl add -H 'Content-Type: ${type}'`);
}

/**
 * Refuses a request whose `Origin` is another site's. Browsers send Origin on every cross-origin
 * request and on same-origin POSTs; non-browser clients send none. The daemon's own origin is
 * `http://` plus the Host the request was sent to (already checked against the allowed names).
 */
export function refuseForeignOrigin(headers: IncomingHttpHeaders, anyHost = false): void {
  const origin = headers.origin;
  if (origin === undefined || (!anyHost && !isForeignOrigin(origin, headers.host))) return;
  throw new AdminError("forbidden",
    `Requests from web pages are refused: Origin '${origin.slice(0, 200)}' is not this daemon's own origin ` +
      "(the admin API is for the clipper CLI, the library and clipper_admin, which send no Origin)");
}
