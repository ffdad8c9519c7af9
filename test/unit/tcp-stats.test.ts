import { describe, expect, it } from "vitest";
import { parseRetransSegs, retransSegs } from "../../bench/lib/tcp-stats.js";

const SNMP = [
  "Ip: Forwarding DefaultTTL InReceives",
  "Ip: 1 64 123",
  "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors",
  "Tcp: 1 200 120000 -1 678909 603792 73500 8453 0 25112773 25102268 728 0 79143 0",
  "Udp: InDatagrams NoPorts",
  "Udp: 5 6",
].join("\n");

describe("RetransSegs from /proc/net/snmp", () => {
  it("reads the counter by its column name", () => {
    expect(parseRetransSegs(SNMP)).toBe(728);
  });

  it("is undefined when the Tcp lines or the column are missing or not a count", () => {
    expect(parseRetransSegs("")).toBeUndefined();
    expect(parseRetransSegs("Tcp: RtoAlgorithm RetransSegs\n")).toBeUndefined();
    expect(parseRetransSegs("Tcp: RtoAlgorithm InSegs\nTcp: 1 2\n")).toBeUndefined();
    expect(parseRetransSegs("Tcp: RtoAlgorithm RetransSegs\nTcp: 1\n")).toBeUndefined();
    expect(parseRetransSegs("Tcp: RtoAlgorithm RetransSegs\nTcp: 1 x\n")).toBeUndefined();
  });

  it("reads this machine's counter on Linux", () => {
    const value = retransSegs();
    if (process.platform === "linux") expect(Number.isSafeInteger(value)).toBe(true);
    else expect(value).toBeUndefined();
  });
});
