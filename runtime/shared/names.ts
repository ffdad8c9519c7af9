/** Name rules shared by the admin API, the CLI and the managers (Clipper's, plus app names). */

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** The longest model name, version or application name (Clipper's, a Kubernetes label value's). */
export const MAX_NAME = 63;

/** Why a model name, version or application name is invalid, or undefined when it is valid. */
export function nameProblem(kind: string, value: string): string | undefined {
  if (value.length === 0) return `${kind} must not be empty`;
  // Shown clipped: the message goes back to the client and into logs, the value may be megabytes.
  if (value.length > MAX_NAME) return `${kind} '${value.slice(0, MAX_NAME)}…' is longer than ${MAX_NAME} characters`;
  if (!NAME.test(value)) {
    return `${kind} '${value}' must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character`;
  }
  return undefined;
}

/**
 * Response header with which the admin API marks a 400 that refuses a name: a client reports it as
 * the usage error it is, exactly as when it refuses the name itself (same code, same exit code).
 */
export const REFUSAL_HEADER = "x-clipper-refusal";
export const INVALID_NAME_REFUSAL = "invalid-name";

/** Clipper's own message for names and labels containing its separators. */
export function prohibitedCharsProblem(kind: string, value: string): string | undefined {
  return /[,:]/.test(value) ? `Invalid ${kind} supplied: ${value}. Contains one of: ',', ':'` : undefined;
}
