/** The Host rule of both APIs (runtime/shared/host-check.ts), as a function. */
import { describe, expect, it } from "vitest";
import { hostnameOf, isHostAllowed, parseAllowedHosts } from "../../runtime/shared/host-check.js";

describe("Host names (shared/host-check.ts)", () => {
  const allowed = parseAllowedHosts(["clipper.example", "Other.Example"]);
  it("admits IP literals, loopback names and the allow-list, with any port", () => {
    for (const host of ["127.0.0.1", "127.0.0.1:1338", "10.1.2.3:80", "[::1]:1338", "[::1]", "::1", "localhost", "LOCALHOST:1",
      "app.localhost:8080", "clipper.example", "CLIPPER.example:1337", "other.example", "clipper.example.", undefined]) {
      expect(isHostAllowed(host, allowed), String(host)).toBe(true);
    }
  });
  it("refuses other names and malformed values", () => {
    for (const host of ["evil.example", "evil.example:1338", "localhost.evil.example", "127.0.0.1.evil.example", "clipper.example.evil",
      "", " ", "[::1", "[evil]:1", "a:b:c", "name:port", "clipper.example:99999x", "exa mple", "constructor", "__proto__"]) {
      expect(isHostAllowed(host, allowed), host).toBe(false);
    }
  });
  it("'*' admits every name; the bound name is admitted; bad entries are refused", () => {
    expect(isHostAllowed("anything.example", parseAllowedHosts("*"))).toBe(true);
    expect(isHostAllowed("box.lan:1338", parseAllowedHosts(undefined, "box.lan"))).toBe(true);
    expect(() => parseAllowedHosts("ok.example, bad name")).toThrow(/'bad name' is not a hostname/);
    expect(hostnameOf("[::1]:80")).toBe("::1");
    expect(hostnameOf("Example.COM:80")).toBe("example.com");
  });
});
