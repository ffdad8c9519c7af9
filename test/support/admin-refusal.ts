/** Admin operations' refusals in unit tests. */
import { expect } from "vitest";
import { AdminError } from "../../runtime/management/errors.js";

/** The 400 an operation throws, or a failure when it throws anything else (a 500 in the daemon). */
export function refusal(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(AdminError);
    expect((err as AdminError).status).toBe(400);
    return (err as AdminError).message;
  }
  throw new Error("expected a 400");
}
