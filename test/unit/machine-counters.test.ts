import { describe, expect, it } from "vitest";
import { parseRetransSegs, retransSegs } from "../../bench/lib/tcp-stats.js";
import { parseCpuPressureMicros } from "../../bench/lib/cpu-pressure.js";
import { parseProcessCpuMs, processCpuMs } from "../../bench/lib/process-cpu.js";

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

describe("CPU pressure from /proc/pressure/cpu", () => {
  it("reads the total of the `some` line", () => {
    expect(parseCpuPressureMicros("some avg10=51.58 avg60=52.56 avg300=64.88 total=10819010121\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")).toBe(10819010121);
    expect(parseCpuPressureMicros("full avg10=0.00 avg60=0.00 avg300=0.00 total=5\n")).toBeUndefined();
    expect(parseCpuPressureMicros("")).toBeUndefined();
  });
});

describe("a process's CPU time from /proc/<pid>/stat", () => {
  it("adds utime and stime, in ms, after a command name with spaces and parentheses", () => {
    const stat = "4919 (node (x) y) S 1 4919 4919 0 -1 4194560 12000 0 0 0 250 31 0 0 20 0 11 0 1234 0 0";
    expect(parseProcessCpuMs(stat)).toBe((250 + 31) * 10);
    expect(parseProcessCpuMs("1 (x) S 1 2")).toBeUndefined();
  });

  it("reads this process's own", () => {
    if (process.platform !== "linux") return;
    expect(processCpuMs(process.pid)).toBeGreaterThanOrEqual(0);
    expect(processCpuMs(2 ** 30)).toBeUndefined();
  });
});
