/** HTTP client of the management daemon's admin API (Clipper's paths and bodies). */
import { AdminApiError, ClipperError } from "./errors.js";
import { fetchText, type FetchedText } from "./http-fetch.js";

export interface AdminClientOptions {
  managementUrl: string;
  token?: string;
  timeoutMs?: number;
}

export class AdminClient {
  constructor(private readonly options: AdminClientOptions) {}

  /** POSTs a JSON body and returns the response text; non-2xx becomes AdminApiError. */
  async postText(path: string, body: unknown): Promise<string> {
    return this.request(path, { method: "POST", body: JSON.stringify(body) });
  }

  async postJson<T>(path: string, body: unknown): Promise<T> {
    const text = await this.postText(path, body);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ClipperError("ADMIN_REJECTED", `the management daemon answered ${path} with non-JSON text: ${text.slice(0, 200)}`);
    }
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.request("/admin/ping", { method: "GET" })) === "PONG";
    } catch {
      return false;
    }
  }

  private async request(path: string, init: { method: string; body?: string }): Promise<string> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.options.token) {
      headers.authorization = `Bearer ${this.options.token}`;
      // Also where a proxy that authenticates with Authorization itself (Kubernetes) leaves it alone.
      headers["x-clipper-token"] = this.options.token;
    }
    let res: FetchedText;
    try {
      res = await fetchText(new URL(path, this.options.managementUrl), { ...init, headers }, this.options.timeoutMs ?? 30_000);
    } catch (err) {
      const reason = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      throw new ClipperError("UNREACHABLE", `cannot reach the management daemon at ${this.options.managementUrl}: ${reason}`,
        "is the cluster running? try `clipper status`");
    }
    if (!res.ok) throw new AdminApiError(res.status, res.text.trim() || `HTTP ${res.status}`);
    return res.text;
  }
}
