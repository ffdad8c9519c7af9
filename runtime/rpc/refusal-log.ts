/**
 * Logs a refused peer once, not once per message or per reconnect attempt: a peer that keeps
 * retrying (ZeroMQ reconnects every 100 ms by default) must not flood the log. Each key is logged
 * at most once per window; the set of keys is bounded so that a stream of distinct peers cannot
 * grow it.
 */
const MAX_KEYS = 1024;
export const DEFAULT_REFUSAL_WINDOW_MS = 10 * 60_000;

export class RefusalLog {
  private readonly lastLogged = new Map<string, number>();

  constructor(
    private readonly now: () => number,
    private readonly windowMs = DEFAULT_REFUSAL_WINDOW_MS,
  ) {}

  /** Whether to log `key` now; remembers that it was. */
  shouldLog(key: string): boolean {
    const now = this.now();
    const last = this.lastLogged.get(key);
    if (last !== undefined && now - last < this.windowMs) return false;
    this.lastLogged.delete(key);
    if (this.lastLogged.size >= MAX_KEYS) {
      const oldest = this.lastLogged.keys().next().value;
      if (oldest !== undefined) this.lastLogged.delete(oldest);
    }
    this.lastLogged.set(key, now);
    return true;
  }
}
