/**
 * Query API keys without a server: the token bucket and the frontend's checks with an injected
 * clock, and keys limited to an application that is deleted. The admin endpoints and a frontend with
 * `--query-auth keys` over real HTTP are in test/api-keys.test.ts.
 */
import { describe, expect, it } from "vitest";
import { QueryAuth } from "../../runtime/frontend/query-auth.js";
import { QueryError } from "../../runtime/frontend/query-errors.js";
import { TokenBucket } from "../../runtime/frontend/token-bucket.js";
import { defaultQueryAuth, hashApiKey } from "../../runtime/shared/api-keys.js";
import { emptyState, type ClusterState } from "../../runtime/shared/state.js";
import { addApiKey } from "../../runtime/management/api-key-operations.js";
import { addApp, deleteApp } from "../../runtime/management/operations.js";
import { describeViolation, stateViolations } from "../../runtime/shared/state-invariants.js";
import { stateAfter } from "../support/write-outcome.js";

describe("TokenBucket", () => {
  it("allows a burst, then one request per 1/rate seconds, with Retry-After in whole seconds", () => {
    let now = 0;
    const bucket = new TokenBucket(2, 2, () => now);
    expect(bucket.take().ok).toBe(true);
    expect(bucket.take().ok).toBe(true);
    expect(bucket.take()).toEqual({ ok: false, retryAfterSeconds: 1 });
    now = 499;
    expect(bucket.take().ok).toBe(false);
    now = 500;
    expect(bucket.take().ok).toBe(true);
    now = 60_000; // a long pause refills to the burst, no more
    expect([bucket.take().ok, bucket.take().ok, bucket.take().ok]).toEqual([true, true, false]);
  });

  it("says how long a slow rate must wait", () => {
    let now = 0;
    const bucket = new TokenBucket(0.1, 1, () => now);
    expect(bucket.take().ok).toBe(true);
    expect(bucket.take()).toEqual({ ok: false, retryAfterSeconds: 10 });
    now = 4_000;
    expect(bucket.take()).toEqual({ ok: false, retryAfterSeconds: 6 });
  });
});

function stateWith(keys: { id: string; key: string; app?: string; rate?: number }[]): ClusterState {
  return {
    ...emptyState(),
    api_keys: keys.map((k) => ({
      id: k.id, sha256: hashApiKey(k.key), created_at: "2026-01-01T00:00:00.000Z",
      ...(k.app ? { app: k.app } : {}), ...(k.rate ? { rate: k.rate } : {}),
    })),
  };
}

function refusal(run: () => void): { status: number; headers?: Record<string, string> } | undefined {
  try {
    run();
    return undefined;
  } catch (err) {
    if (!(err instanceof QueryError)) throw err;
    return { status: err.status, headers: err.headers };
  }
}

describe("QueryAuth", () => {
  it("lets everything through in mode none", () => {
    const auth = new QueryAuth("none");
    expect(refusal(() => auth.check({}, { app: "a" }))).toBeUndefined();
  });

  it("answers 401 without or with an unknown key, 403 out of scope, 429 over the rate", () => {
    let now = 0;
    const auth = new QueryAuth("keys", () => now);
    auth.onState(stateWith([{ id: "0000aaaa", key: "clk_all" }, { id: "0000bbbb", key: "clk_a", app: "a", rate: 1 }]));
    expect(refusal(() => auth.check({}, { app: "a" }))?.status).toBe(401);
    expect(refusal(() => auth.check({ authorization: "Bearer nope" }, { app: "a" }))?.status).toBe(401);
    expect(refusal(() => auth.check({ authorization: "Basic clk_all" }, { app: "a" }))?.status).toBe(401);
    expect(refusal(() => auth.check({ authorization: "Bearer clk_all" }, { app: "constructor" }))).toBeUndefined();
    expect(refusal(() => auth.check({ "x-clipper-key": "clk_all" }, { oip: true }))).toBeUndefined();
    expect(refusal(() => auth.check({ authorization: "bearer  clk_a " }, { app: "a" }))).toBeUndefined();
    expect(refusal(() => auth.check({ authorization: "Bearer clk_a" }, { app: "b" }))?.status).toBe(403);
    expect(refusal(() => auth.check({ authorization: "Bearer clk_a" }, { oip: true }))?.status).toBe(403);
    expect(refusal(() => auth.check({ authorization: "Bearer clk_a" }, { app: "a" }))).toEqual({ status: 429, headers: { "retry-after": "1" } });
    now = 1000;
    expect(refusal(() => auth.check({ authorization: "Bearer clk_a" }, { app: "a" }))).toBeUndefined();
    // Revoked: refused at once.
    auth.onState(stateWith([{ id: "0000aaaa", key: "clk_all" }]));
    expect(refusal(() => auth.check({ authorization: "Bearer clk_a" }, { app: "a" }))?.status).toBe(401);
  });

  it("is off on loopback by default and on beyond it", () => {
    expect(defaultQueryAuth("127.0.0.1")).toBe("none");
    expect(defaultQueryAuth("localhost")).toBe("none");
    expect(defaultQueryAuth("0.0.0.0")).toBe("keys");
    expect(defaultQueryAuth("192.168.1.5")).toBe("keys");
  });
});

describe("API keys and the applications they are limited to", () => {
  it("go when their application is deleted, so a new application of that name is not opened to them", () => {
    const withApp = stateAfter(emptyState(), addApp(emptyState(), JSON.stringify({ name: "a", input_type: "doubles", default_output: "-1", latency_slo_micros: 1000 })))!;
    const scoped = addApiKey(withApp, JSON.stringify({ app: "a" })).next!;
    const everyApp = addApiKey(scoped, JSON.stringify({})).next!;
    expect(everyApp.api_keys!.map((k) => k.app)).toEqual(["a", undefined]);
    const deleted = stateAfter(everyApp, deleteApp(everyApp, JSON.stringify({ name: "a" })))!;
    expect(deleted.api_keys!.map((k) => k.app)).toEqual([undefined]);
    expect(stateViolations(deleted)).toEqual([]);
    // And the invariant the store checks before every write would refuse a key left behind.
    expect(stateViolations({ ...deleted, api_keys: everyApp.api_keys }).map(describeViolation))
      .toEqual([expect.stringMatching(/^api_keys\.0: key '.*' is limited to application 'a', which does not exist$/)]);
  });
});
