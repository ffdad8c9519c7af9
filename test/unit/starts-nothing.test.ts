/** The unit tier's guard (starts-nothing.ts) is live: every way out of the process is refused. */
import * as childProcess from "node:child_process";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { Dealer, Router } from "zeromq";

describe("the unit tier's guard", () => {
  it("refuses to start a process, through named imports and the module object alike", () => {
    expect(() => spawn(process.execPath, ["-e", ""])).toThrow(/may not start a process \(child_process\.spawn\)/);
    expect(() => childProcess.execFileSync(process.execPath, ["-e", ""])).toThrow(/child_process\.execFileSync/);
    expect(() => childProcess.fork("nothing.js")).toThrow(/child_process\.fork/);
  });

  it("refuses to listen or connect", async () => {
    expect(() => createServer().listen(0, "127.0.0.1")).toThrow(/may not listen/);
    expect(() => connect({ port: 9, host: "127.0.0.1" })).toThrow(/may not connect/);
    // fetch wraps the refusal in its own TypeError; the cause says who refused.
    const failed = await fetch("http://127.0.0.1:58080/").then(() => undefined, (e: unknown) => e);
    expect((failed as Error).cause).toMatchObject({ message: expect.stringMatching(/may not connect/) });
  });

  it("refuses ZeroMQ sockets", () => {
    const router = new Router();
    const dealer = new Dealer();
    try {
      expect(() => router.bind("tcp://127.0.0.1:*")).toThrow(/may not open a ZeroMQ socket/);
      expect(() => dealer.connect("tcp://127.0.0.1:9")).toThrow(/may not open a ZeroMQ socket/);
    } finally {
      router.close();
      dealer.close();
    }
  });
});
