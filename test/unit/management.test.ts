/**
 * The management daemon's pure parts: the replica registry (injected clock), the auth rule, the
 * error-code statuses and the flag parser. The admin API, the watch stream, durability across
 * `kill -9` and the daemon process are in test/management.test.ts.
 */
import { writeFile } from "node:fs/promises";
import { STATUS_CODES } from "node:http";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isAuthorized, isOpenEndpoint } from "../../runtime/management/auth.js";
import { ADMIN_ERROR_STATUS, AdminError, type AdminErrorCode } from "../../runtime/management/errors.js";
import { FlagError, parseFlags } from "../../runtime/management/flags.js";
import { defaultMaxConnections } from "../../runtime/shared/connection-limit.js";
import { ReplicaRegistry } from "../../runtime/management/replicas.js";
import { replicaRecord } from "../support/state-fixtures.js";
import { tempDirs } from "../support/temp-dirs.js";

const tempDir = tempDirs("clipper-mgmt-");

describe("replica reports", () => {
  const replica = replicaRecord;

  it("forgets a frontend that stopped reporting", () => {
    let now = 1_000;
    const registry = new ReplicaRegistry(60_000, () => now);
    registry.report({ frontend_id: "f1", replicas: [replica("m", "1", 0)] });
    now += 30_000;
    registry.report({ frontend_id: "f2", replicas: [replica("m", "1", 0), replica("m", "2", 0)] });
    expect(registry.all().map((r) => `${r.model_name}:${r.model_version}`)).toEqual(["m:1", "m:2"]); // duplicate shown once
    now += 30_001;
    expect(registry.frontends).toBe(1);
    now += 30_000;
    expect(registry.all()).toEqual([]);
  });
});

describe("access control", () => {
  const policy = { host: "0.0.0.0", token: "s3cret" };

  it("requires the bearer token from non-loopback clients only when bound beyond loopback with a token", () => {
    expect(isAuthorized(policy, "10.1.2.3", undefined)).toBe(false);
    expect(isAuthorized(policy, "10.1.2.3", "Bearer wrong")).toBe(false);
    expect(isAuthorized(policy, "10.1.2.3", "Basic s3cret")).toBe(false);
    expect(isAuthorized(policy, "10.1.2.3", "Bearer s3cret")).toBe(true);
    expect(isAuthorized(policy, "::ffff:10.1.2.3", "bearer  s3cret ")).toBe(true);
    // X-Clipper-Token: what survives a proxy that strips Authorization (the Kubernetes API server's).
    expect(isAuthorized(policy, "10.1.2.3", undefined, "s3cret")).toBe(true);
    expect(isAuthorized(policy, "10.1.2.3", undefined, "wrong")).toBe(false);
    expect(isAuthorized(policy, "10.1.2.3", undefined, "")).toBe(false);
    // Loopback clients stay open.
    expect(isAuthorized(policy, "127.0.0.1", undefined)).toBe(true);
    expect(isAuthorized(policy, "::1", undefined)).toBe(true);
    expect(isAuthorized(policy, "::ffff:127.0.0.1", undefined)).toBe(true);
    // No token configured, or bound to loopback: open.
    expect(isAuthorized({ host: "0.0.0.0" }, "10.1.2.3", undefined)).toBe(true);
    expect(isAuthorized({ host: "127.0.0.1", token: "s3cret" }, "10.1.2.3", undefined)).toBe(true);
  });

  it("leaves only GET /admin/ping open to everyone (Kubernetes probes carry no token)", () => {
    expect(isOpenEndpoint("GET", "/admin/ping")).toBe(true);
    expect(isOpenEndpoint("POST", "/admin/ping")).toBe(false);
    expect(isOpenEndpoint("GET", "/admin/get_state")).toBe(false);
    expect(isOpenEndpoint("GET", "/admin/watch")).toBe(false);
    expect(isOpenEndpoint("POST", "/admin/add_app")).toBe(false);
  });

  it("maps every error code to the HTTP status it names", () => {
    // Checked against Node's reason phrases rather than a copy of the table: 413 is "Payload Too Large".
    for (const [code, status] of Object.entries(ADMIN_ERROR_STATUS)) {
      expect(STATUS_CODES[status]?.toLowerCase().replaceAll(" ", "_"), code).toMatch(new RegExp(`^${code}(_|$)`));
      expect(new AdminError(code as AdminErrorCode, "x").status).toBe(status);
    }
    expect(new AdminError("unauthorized", "x").status).toBe(401);
  });
});

describe("flags", () => {
  it("parses defaults and values", async () => {
    const parsed = parseFlags(["--state-dir", "/s"]);
    expect(parsed).toEqual({
      help: false,
      options: {
        host: "127.0.0.1",
        port: 1338,
        stateDir: "/s",
        token: undefined,
        allowedHosts: [],
        maxBodyBytes: 1024 * 1024,
        watchKeepaliveMs: 10_000,
        replicaReportTtlMs: 60_000,
        // Below this process's descriptor limit, which differs between machines.
        maxConnections: defaultMaxConnections(),
      },
    });
    const tokenFile = join(await tempDir(), "token");
    await writeFile(tokenFile, "abc\n");
    const withToken = parseFlags(["--state-dir", "/s", "--token-file", tokenFile, "--port", "0", "--host", "0.0.0.0"]);
    expect(withToken).toMatchObject({ options: { token: "abc", port: 0, host: "0.0.0.0" } });
  });

  it("rejects bad values", () => {
    for (const argv of [
      ["--state-dir", "/s", "--port", "70000"],
      ["--state-dir", "/s", "--port", "-1"],
      ["--state-dir", "/s", "--max-body-bytes", "0"],
      ["--state-dir", "/s", "--token-file", "/nonexistent/token"],
      ["--state-dir", "/s", "extra"],
    ]) {
      expect(() => parseFlags(argv), argv.join(" ")).toThrow(FlagError);
    }
  });
});
