/**
 * How every manager reports a failed call to what it drives (the Docker Engine API, the Kubernetes
 * API server): 404 is NOT_FOUND, 409 CONFLICT, another status CONTROL_API with the server's own
 * message, and no status at all means the server could not be reached.
 */
import { ManagerError } from "../errors.js";

export function apiCallError(doing: string, system: string, status: number | undefined, message: string): ManagerError {
  if (status === 404) return new ManagerError(`${doing}: ${message}`, "NOT_FOUND");
  if (status === 409) return new ManagerError(`${doing}: ${message}`, "CONFLICT");
  if (status !== undefined) return new ManagerError(`${doing}: the ${system} answered ${status}: ${message}`, "CONTROL_API");
  return new ManagerError(`${doing}: cannot reach the ${system}: ${message}`, "CONTROL_API");
}

/** Whether an error is a manager error of this reason (e.g. a 404 a caller treats as "already gone"). */
export function isReason(err: unknown, reason: ManagerError["reason"]): boolean {
  return err instanceof ManagerError && err.reason === reason;
}

/** Runs `fn`; NOT_FOUND (already gone) ends as undefined, anything else is rethrown. */
export async function unlessGone<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (isReason(err, "NOT_FOUND")) return undefined;
    throw err;
  }
}
