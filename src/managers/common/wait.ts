/**
 * Waiting on an injected clock. Every manager polls something until a deadline (readiness, a
 * rollout, a daemon answering); one loop here, so tests drive it with a scripted clock instead of
 * sleeping.
 */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
};

export interface WaitOptions<T> {
  /** Absolute time (on `clock`) after which `onTimeout` decides. */
  deadline: number;
  clock?: Clock;
  /** Pause between attempts (shortened to the deadline). */
  intervalMs: number;
  /** One attempt: a value ends the wait; undefined tries again; a throw ends it with that error. */
  attempt: (left: number) => Promise<T | undefined>;
  /** What the wait ends with when the deadline passes: an error to throw. */
  onTimeout: () => Error | Promise<Error>;
}

/** Repeats `attempt` until it returns a value or the deadline passes; always tries at least once. */
export async function waitUntil<T>(options: WaitOptions<T>): Promise<T> {
  const clock = options.clock ?? systemClock;
  for (;;) {
    const result = await options.attempt(Math.max(0, options.deadline - clock.now()));
    if (result !== undefined) return result;
    const left = options.deadline - clock.now();
    if (left <= 0) throw await options.onTimeout();
    await clock.sleep(Math.min(options.intervalMs, left));
  }
}
