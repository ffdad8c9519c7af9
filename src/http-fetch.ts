/**
 * HTTP from the CLI and library side: the whole exchange (answer and body) bounded by a timeout,
 * and the process kept alive meanwhile. Node's fetch times out through AbortSignal.timeout, whose
 * timer is unref'd, and a socket that Docker's port proxy has accepted but not yet answered holds
 * nothing either: without the hold, a CLI awaiting such a request exits (code 13) instead of waiting.
 */

export interface FetchedText {
  status: number;
  ok: boolean;
  text: string;
  headers: Headers;
}

export async function fetchText(url: string | URL, init: RequestInit, timeoutMs: number): Promise<FetchedText> {
  const hold = setTimeout(() => undefined, timeoutMs + 1_000);
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, ok: res.ok, text: await res.text(), headers: res.headers };
  } finally {
    clearTimeout(hold);
  }
}

/** Why GET url is not (yet) healthy, or undefined when it answers 200 (and `expect`, if given). */
export async function httpProblem(url: string, headers: Record<string, string>, timeoutMs: number, expect?: string): Promise<string | undefined> {
  try {
    const res = await fetchText(url, { headers }, timeoutMs);
    if (res.status !== 200) return `answered ${res.status}`;
    if (expect !== undefined && !res.text.includes(expect)) return `answered ${JSON.stringify(res.text.slice(0, 40))}, not ${expect}`;
    return undefined;
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code === "ECONNREFUSED") return "connection refused";
    if (cause?.code === "ECONNRESET" || cause?.code === "UND_ERR_SOCKET") return "connection reset";
    if ((err as Error).name === "TimeoutError") return "no answer in time";
    return cause?.code ?? cause?.message ?? (err as Error).message;
  }
}
