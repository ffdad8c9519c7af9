/**
 * The dashboard's calls to the admin API: the same endpoints the CLI uses, same origin, JSON bodies
 * (the admin plane refuses other content types, docs/security.md). Off loopback the daemon wants
 * its token: the operator types it once, it stays in this tab's sessionStorage (not localStorage:
 * it leaves with the tab) and goes with every request as a Bearer header.
 */
const TOKEN_KEY = "clipper-dashboard-token";

export function savedToken(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

export function saveToken(token: string): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class AdminCallError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function headers(json: boolean): Record<string, string> {
  const h: Record<string, string> = {};
  if (json) h["content-type"] = "application/json";
  const token = savedToken();
  if (token) h.authorization = `Bearer ${token}`;
  return h;
}

async function answer(res: Response): Promise<string> {
  const body = await res.text();
  if (!res.ok) {
    const hint = res.status === 401 ? " (enter the daemon's token above)" : "";
    throw new AdminCallError(res.status, `${res.status}: ${body}${hint}`);
  }
  return body;
}

/** A read or write operation (POST /admin/...); returns the reply's text. */
export async function post(path: string, body: unknown): Promise<string> {
  return answer(await fetch(path, { method: "POST", headers: headers(true), body: JSON.stringify(body), cache: "no-store" }));
}

export async function postJson<T>(path: string, body: unknown): Promise<T> {
  return JSON.parse(await post(path, body)) as T;
}

export async function getJson<T>(path: string): Promise<T> {
  return JSON.parse(await answer(await fetch(path, { headers: headers(false), cache: "no-store" }))) as T;
}
