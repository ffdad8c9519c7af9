/**
 * The errors the admin API answers with. Every non-200 answer is one of these: a status and a
 * plain-text message (Clipper's admin API answered plain text, and clipper_admin shows `r.text`).
 * One central handler in server.ts turns them into responses.
 */

export type AdminErrorCode =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "payload_too_large"
  | "unsupported_media_type"
  | "internal"
  | "service_unavailable";

/** HTTP status of each code: the status whose reason phrase the code names (a test checks that). */
export const ADMIN_ERROR_STATUS: Record<AdminErrorCode, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  internal: 500,
  service_unavailable: 503,
};

export class AdminError extends Error {
  readonly status: number;

  constructor(
    readonly code: AdminErrorCode,
    message: string,
    /** Extra response headers (e.g. `Allow` for 405, `WWW-Authenticate` for 401). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "AdminError";
    this.status = ADMIN_ERROR_STATUS[code];
  }
}

/** The usual case: a request the daemon understood and refuses, with Clipper's text where it had one. */
export function badRequest(message: string): AdminError {
  return new AdminError("bad_request", message);
}
