/** An error the query HTTP layer turns into a JSON error response `{"error", "cause"}`. */
export class QueryError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly cause_: string,
    /** Extra response headers (e.g. Retry-After on a 503). */
    readonly headers?: Record<string, string>,
  ) {
    super(`${error}: ${cause_}`);
  }
}
