/** HTTP client of the management daemon's admin API (Clipper's paths and bodies). */
import { open } from "node:fs/promises";
import type { z } from "zod";
import { AdminApiError, ClipperError } from "./errors.js";
import { fetchText, type FetchedText } from "./http-fetch.js";
import { INVALID_NAME_REFUSAL, REFUSAL_HEADER } from "../runtime/shared/names.js";
import type { WrittenRevision } from "./revision-wait.js";
import {
  APPLIED_REVISIONS_PATH, AppliedRevisionsSchema, DAEMON_INSTANCE_HEADER, REVISION_HEADER, type AppliedRevisions,
  WRITE_OUTCOME_HEADER, WRITE_OUTCOME_UNKNOWN,
} from "../runtime/shared/state.js";

/** An admin write's answer: Clipper's text, and the revision it produced where the daemon says so. */
export interface WriteAnswer {
  text: string;
  /** Absent from a daemon that sends no revision headers (Clipper's own). */
  revision?: WrittenRevision;
}

export interface AdminClientOptions {
  managementUrl: string;
  token?: string;
  timeoutMs?: number;
}

/** An answer that should be JSON; other text becomes a clear error. */
export function parseJsonAnswer<T>(path: string, text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ClipperError("ADMIN_REJECTED", `the management daemon answered ${path} with non-JSON text: ${text.slice(0, 200)}`);
  }
}

export class AdminClient {
  constructor(private readonly options: AdminClientOptions) {}

  /** POSTs a JSON body and returns the response text; non-2xx becomes AdminApiError. */
  async postText(path: string, body: unknown): Promise<string> {
    return (await this.request(path, { method: "POST", body: JSON.stringify(body) })).text;
  }

  /** POSTs a write and reads the revision headers (REVISION_HEADER, DAEMON_INSTANCE_HEADER) too. */
  async postWrite(path: string, body: unknown): Promise<WriteAnswer> {
    const res = await this.request(path, { method: "POST", body: JSON.stringify(body) });
    const revision = res.headers.get(REVISION_HEADER);
    const daemon = res.headers.get(DAEMON_INSTANCE_HEADER);
    if (revision === null || daemon === null || !/^\d{1,15}$/.test(revision)) return { text: res.text };
    return { text: res.text, revision: { daemon, revision: Number(revision) } };
  }

  /** What each live query frontend has applied (our extension); a peer that lies is refused. */
  async appliedRevisions(): Promise<AppliedRevisions> {
    return this.getValidated(APPLIED_REVISIONS_PATH, AppliedRevisionsSchema);
  }

  /** GETs a JSON answer and checks it against `schema`: a body that does not fit is a clear error. */
  async getValidated<T>(path: string, schema: z.ZodType<T>): Promise<T> {
    const text = (await this.request(path, { method: "GET" })).text;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const result = schema.safeParse(parsed);
    if (!result.success) {
      throw new ClipperError("ADMIN_REJECTED", `the management daemon answered ${path.split("?")[0]} with an unexpected body: ${text.slice(0, 200)}`);
    }
    return result.data;
  }

  async postJson<T>(path: string, body: unknown): Promise<T> {
    return parseJsonAnswer<T>(path, await this.postText(path, body));
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.request("/admin/ping", { method: "GET" })).text === "PONG";
    } catch {
      return false;
    }
  }

  /**
   * Why the daemon answers its readiness check (/admin/ping) with 503 — it refuses writes until it
   * is restarted (docs/operations.md) — or undefined when it is ready. Rejects when it does not answer.
   */
  async notReadyBecause(): Promise<string | undefined> {
    try {
      await this.request("/admin/ping", { method: "GET" });
      return undefined;
    } catch (err) {
      if (err instanceof AdminApiError && err.status === 503) return err.message;
      throw err;
    }
  }

  /**
   * POSTs a JSON body and writes the answer's body into `file` as it arrives (an answer that may be
   * many MiB: the query log's export). Resolves with the number of lines written.
   */
  async postToFile(path: string, body: unknown, file: string, timeoutMs = 600_000): Promise<number> {
    const chunks = await this.postStream(path, body, timeoutMs, true);
    const out = await open(file, "w");
    let lines = 0;
    try {
      for await (const chunk of chunks) {
        for (const byte of chunk) if (byte === 0x0a) lines++;
        await out.write(chunk);
      }
    } finally {
      await out.close();
    }
    return lines;
  }

  /**
   * POSTs a JSON body and resolves, once the daemon accepted it, with the answer's body as it
   * arrives. `timeoutMs` bounds the wait for the answer to begin; the body then flows as fast as
   * the caller reads it (replay reads the query log's export at its own rate, for as long as that
   * takes). Read it to its end or stop early: either lets the connection go.
   */
  async postStream(path: string, body: unknown, timeoutMs = 600_000, wholeExchange = false): Promise<AsyncIterable<Uint8Array>> {
    const aborter = new AbortController();
    const timer = setTimeout(() => aborter.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    let res: Response;
    try {
      res = await fetch(new URL(path, this.options.managementUrl), {
        method: "POST", headers: this.headers(), body: JSON.stringify(body), signal: aborter.signal,
      });
      if (!res.ok) throw new AdminApiError(res.status, (await res.text()).trim() || `HTTP ${res.status}`);
    } catch (err) {
      clearTimeout(timer);
      if (err instanceof AdminApiError) throw err;
      throw this.unreachable(err);
    }
    if (!wholeExchange) clearTimeout(timer);
    const stream = res.body ?? [];
    return (async function* () {
      try {
        for await (const chunk of stream) yield chunk as Uint8Array;
      } finally {
        clearTimeout(timer);
      }
    })();
  }

  private headers(): Record<string, string> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.options.token) {
      headers.authorization = `Bearer ${this.options.token}`;
      // Also where a proxy that authenticates with Authorization itself (Kubernetes) leaves it alone.
      headers["x-clipper-token"] = this.options.token;
    }
    return headers;
  }

  private unreachable(err: unknown): ClipperError {
    const reason = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    return new ClipperError("UNREACHABLE", `cannot reach the management daemon at ${this.options.managementUrl}: ${reason}`,
      "is the cluster running? try `clipper status`");
  }

  private async request(path: string, init: { method: string; body?: string }): Promise<FetchedText> {
    let res: FetchedText;
    try {
      res = await fetchText(new URL(path, this.options.managementUrl), { ...init, headers: this.headers() }, this.options.timeoutMs ?? 30_000);
    } catch (err) {
      throw this.unreachable(err);
    }
    if (!res.ok) throw refusal(res);
    return res;
  }
}

/** The error for a non-2xx answer: a refused name is a usage error; a write of unknown outcome says so, never "refused". */
function refusal(res: FetchedText): AdminApiError {
  const message = res.text.trim() || `HTTP ${res.status}`;
  if (res.headers.get(WRITE_OUTCOME_HEADER) === WRITE_OUTCOME_UNKNOWN) {
    return new AdminApiError(res.status, message, "WRITE_OUTCOME_UNKNOWN",
      "do not retry blindly: restart the management daemon, then check whether the change is there (e.g. `clipper status`)");
  }
  return new AdminApiError(res.status, message, res.headers.get(REFUSAL_HEADER) === INVALID_NAME_REFUSAL ? "USAGE" : "ADMIN_REJECTED");
}
