/** The local manager's side of the supervisor's control API. */
import { fetchText, type FetchedText } from "../../http-fetch.js";
import { ManagerError, type ManagerErrorCode } from "../errors.js";
import type { SupervisorRecord } from "./schemas.js";

/** The supervisor did not answer at all (not running, or stuck). */
export class ControlUnavailableError extends Error {}

const CODES: Record<number, ManagerErrorCode> = {
  400: "INVALID_ARGUMENT",
  404: "NOT_FOUND",
  409: "CONFLICT",
  503: "CLUSTER_NOT_RUNNING",
};

export class ControlClient {
  constructor(private readonly record: SupervisorRecord) {}

  get url(): string {
    return `http://127.0.0.1:${this.record.controlPort}`;
  }

  async call<T>(method: "GET" | "POST", path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
    let res: FetchedText;
    try {
      res = await fetchText(`${this.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.record.controlToken}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      }, timeoutMs);
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new ControlUnavailableError(`the supervisor of cluster ${this.record.cluster} did not answer ${method} ${path} (${cause})`);
    }
    const text = res.text;
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      throw new ManagerError(`the supervisor answered ${method} ${path} with ${res.status} and a body that is not JSON`);
    }
    if (!res.ok) {
      const message = (json as { error?: unknown }).error;
      throw new ManagerError(
        typeof message === "string" ? message : `the supervisor answered ${method} ${path} with ${res.status}`,
        CODES[res.status] ?? "CONTROL_API",
      );
    }
    return json as T;
  }
}
