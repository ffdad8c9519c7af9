/**
 * Every error the library and CLI raise on purpose, each with a stable code and the CLI exit code
 * it maps to. The CLI prints `error: <message>` for these and never a stack trace.
 */

export const ERROR_CODES = {
  USAGE: { exitCode: 2, summary: "a command-line flag or argument is invalid (a bad name too, whether the CLI or the management daemon refuses it)" },
  NO_CLUSTER: { exitCode: 3, summary: "no running cluster could be found" },
  ADMIN_REJECTED: { exitCode: 4, summary: "the management daemon refused the request" },
  UNREACHABLE: { exitCode: 5, summary: "a cluster component did not answer" },
  QUERY_REJECTED: { exitCode: 4, summary: "the query frontend refused the request" },
  DEPLOY_FAILED: { exitCode: 6, summary: "model replicas did not come up" },
  MANAGER: { exitCode: 7, summary: "the container manager failed" },
  BUILD_FAILED: { exitCode: 8, summary: "building or pushing a model or runtime image failed" },
  PREDICT_FAILED: { exitCode: 9, summary: "a predict function run here (test-predict, save-function) failed or could not be loaded" },
  ROLLED_BACK: { exitCode: 10, summary: "a gated rollout the CLI followed rolled back (a gate failed, it was aborted, or its versions changed)" },
  WRITE_OUTCOME_UNKNOWN: {
    exitCode: 11,
    summary: "the management daemon's disk failed mid-write: the change may or may not have been applied; restart the daemon, then read the state before retrying",
  },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class ClipperError extends Error {
  constructor(readonly code: ErrorCode, message: string, readonly hint?: string) {
    super(message);
    this.name = "ClipperError";
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exitCode;
  }
}

/**
 * The management daemon answered 4xx/5xx; `message` is its text. A name it refuses is a USAGE error,
 * as when the CLI refuses the name itself; anything else it refuses is ADMIN_REJECTED.
 */
export class AdminApiError extends ClipperError {
  constructor(readonly status: number, message: string, code: "ADMIN_REJECTED" | "USAGE" | "WRITE_OUTCOME_UNKNOWN" = "ADMIN_REJECTED", hint?: string) {
    super(code, message, hint);
  }
}

/** A predict function run here (test-predict, save-function) failed or could not be loaded; `details` holds the traceback. */
export class PredictFailedError extends ClipperError {
  constructor(message: string, readonly traceback: string | undefined, readonly log = "") {
    super("PREDICT_FAILED", message);
    this.name = "PredictFailedError";
  }

  /** Printed under the error line by the CLI. */
  get details(): string | undefined {
    return this.traceback;
  }
}
