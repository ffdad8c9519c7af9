/**
 * Keeps the process alive while a request is pending. Node's fetch times out through
 * AbortSignal.timeout, whose timer is unref'd, and a socket Docker's port proxy has accepted but not
 * yet answered holds nothing either: a CLI awaiting it would exit (code 13) instead of waiting.
 */
export async function holdEventLoop<T>(timeoutMs: number, work: Promise<T>): Promise<T> {
  const hold = setTimeout(() => undefined, timeoutMs + 1_000);
  try {
    return await work;
  } finally {
    clearTimeout(hold);
  }
}
