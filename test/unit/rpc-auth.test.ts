/**
 * runtime/shared/rpc-auth.ts as functions: credentials, routing ids and the refusal log's window.
 * Real ZeroMQ peers against a real frontend are in test/rpc-auth.test.ts.
 */
import { describe, expect, it } from "vitest";
import { RefusalLog } from "../../runtime/rpc/refusal-log.js";
import {
  generateRpcKey,
  plainUsername,
  replicaRoutingId,
  verifyPlain,
  verifyRoutingId,
  versionSecret,
  type RpcPrincipal,
} from "../../runtime/shared/rpc-auth.js";

// ---- rpc-auth.ts --------------------------------------------------------------------------------

describe("rpc-auth.ts", () => {
  const key = generateRpcKey();
  const a: RpcPrincipal = { name: "a", version: "1", inputType: "doubles" };
  const b: RpcPrincipal = { name: "b", version: "1", inputType: "doubles" };

  it("verifies a model version's PLAIN credential, and nothing else", () => {
    expect(verifyPlain(key, "a:1:doubles", versionSecret(key, a))).toEqual(a);
    expect(verifyPlain(key, "a:1:doubles", versionSecret(key, b))).toBeUndefined(); // B's secret
    expect(verifyPlain(key, "a:1:strings", versionSecret(key, a))).toBeUndefined(); // another input type
    expect(verifyPlain(generateRpcKey(), "a:1:doubles", versionSecret(key, a))).toBeUndefined(); // another cluster
    expect(verifyPlain(key, "a:1:doubles", "")).toBeUndefined();
    expect(verifyPlain(key, "a:1:tensor", versionSecret(key, a))).toBeUndefined();
    expect(verifyPlain(key, "a:1", versionSecret(key, a))).toBeUndefined();
    expect(verifyPlain(key, "a:1:doubles:x", versionSecret(key, a))).toBeUndefined();
    expect(verifyPlain(key, "::doubles", versionSecret(key, { name: "", version: "", inputType: "doubles" }))).toBeUndefined();
    const proto: RpcPrincipal = { name: "__proto__", version: "constructor", inputType: "bytes" };
    expect(verifyPlain(key, plainUsername(proto), versionSecret(key, proto))).toEqual(proto);
  });

  it("verifies a routing id only with the mac of the version's own secret", () => {
    const id = replicaRoutingId(a, versionSecret(key, a));
    expect(verifyRoutingId(key, id)).toEqual(a);
    expect(verifyRoutingId(key, Buffer.from(id))).toEqual(a);
    expect(replicaRoutingId(a, versionSecret(key, a))).not.toBe(id); // a fresh nonce each time
    const [name, version, type, nonce, mac] = id.split(":") as [string, string, string, string, string];
    // B's secret cannot make A's routing id.
    expect(verifyRoutingId(key, replicaRoutingId(a, versionSecret(key, b)))).toBeUndefined();
    expect(verifyRoutingId(key, `${name}:${version}:strings:${nonce}:${mac}`)).toBeUndefined();
    expect(verifyRoutingId(key, `${name}:${version}:${type}:${nonce}x:${mac}`)).toBeUndefined();
    expect(verifyRoutingId(key, `${name}:${version}:${type}:${nonce}:${mac.slice(1)}`)).toBeUndefined();
    expect(verifyRoutingId(key, `${name}:${version}:${type}::${mac}`)).toBeUndefined();
    expect(verifyRoutingId(key, `${name}:${version}:${type}:${nonce}`)).toBeUndefined();
    expect(verifyRoutingId(key, `${id}:extra`)).toBeUndefined();
    expect(verifyRoutingId(key, Buffer.from([0, 1, 2, 3, 4]))).toBeUndefined(); // libzmq's generated ids
    expect(verifyRoutingId(generateRpcKey(), id)).toBeUndefined();
  });

  it("logs a refusal once per window, with a bounded memory of keys", () => {
    let t = 0;
    const log = new RefusalLog(() => t, 1000);
    expect(log.shouldLog("x")).toBe(true);
    expect(log.shouldLog("x")).toBe(false);
    expect(log.shouldLog("y")).toBe(true);
    t = 999;
    expect(log.shouldLog("x")).toBe(false);
    t = 1000;
    expect(log.shouldLog("x")).toBe(true);
    for (let i = 0; i < 5000; i++) log.shouldLog(`k${i}`);
    expect(log.shouldLog("y")).toBe(true); // forgotten: the memory is bounded
  });
});
