/**
 * The order in which a cluster's parts stop, on every manager: the autoscaler first (so nothing
 * scales a cluster that is going), then model replicas (they hold connections to the frontends),
 * then the query frontends, then the management daemon (which the frontends read their
 * configuration from).
 */
export type StopRole = "autoscaler" | "model" | "frontend" | "management";

export const STOP_ORDER: readonly StopRole[] = ["autoscaler", "model", "frontend", "management"];

/** Runs `stop` on each item, one role at a time in STOP_ORDER, items of a role in parallel. */
export async function stopInOrder<T>(items: readonly T[], roleOf: (item: T) => StopRole, stop: (item: T) => Promise<void>): Promise<void> {
  for (const role of STOP_ORDER) {
    await Promise.all(items.filter((item) => roleOf(item) === role).map(stop));
  }
}
