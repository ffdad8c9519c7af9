/**
 * `clipper logs --follow / --since` below the CLI: the local manager's file cursor (rotation,
 * truncation, partial lines, a character split across reads), line times for --since, Docker's
 * framed log stream in arbitrary chunks, the --since flag, and the Docker manager following its
 * containers on the fake engine (a stop and restart resumes without repeats, a new replica joins).
 */
import { appendFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { LogLine, ModelDeployment } from "../../src/managers/container-manager.js";
import { DockerContainerManager } from "../../src/managers/docker/docker-manager.js";
import { LogStreamLines } from "../../src/managers/docker/logs.js";
import { LogFileCursor, lineTime, linesSince, streamLogFiles } from "../../src/managers/local/log-follow.js";
import { sinceArg } from "../../src/cli/parse.js";
import { FakeClock, FakeDockerEngine } from "../support/fake-docker.js";

const dir = mkdtempSync(join(tmpdir(), "clipper-log-follow-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Resolves once `check` holds, polling the real clock (the streams poll it too). */
async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function frame(stream: number, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe("the local log file cursor", () => {
  it("tails, then reads appended lines across a partial line, truncation and rotation", () => {
    const path = join(dir, "a.log");
    writeFileSync(path, "one\ntwo\nthree\npart");
    const { lines, cursor } = LogFileCursor.opening(path, 2);
    expect(lines).toEqual(["two", "three"]);
    expect(cursor.poll()).toEqual([]);
    appendFileSync(path, "ial\nfour\n");
    expect(cursor.poll()).toEqual(["partial", "four"]);
    // A character split across two writes (and so possibly two reads) stays whole.
    const snow = Buffer.from("❄\n");
    appendFileSync(path, snow.subarray(0, 1));
    expect(cursor.poll()).toEqual([]);
    appendFileSync(path, snow.subarray(1));
    expect(cursor.poll()).toEqual(["❄"]);
    // Rotation: the old file's last lines first, then the new file from its start.
    appendFileSync(path, "last of old\n");
    renameSync(path, `${path}.1`);
    writeFileSync(path, "first of new\n");
    expect(cursor.poll()).toEqual(["last of old", "first of new"]);
    // Truncation shows as a file shorter than where the cursor is (as with tail -F).
    truncateSync(path, 0);
    expect(cursor.poll()).toEqual([]);
    appendFileSync(path, "after truncation\n");
    expect(cursor.poll()).toEqual(["after truncation"]);
    appendFileSync(path, "no newline yet");
    expect(cursor.poll()).toEqual([]);
    expect(cursor.close()).toEqual(["no newline yet"]);
  });

  it("waits for a file that does not exist yet", () => {
    const path = join(dir, "later.log");
    const cursor = LogFileCursor.at(path);
    expect(cursor.poll()).toEqual([]);
    writeFileSync(path, "hello\n");
    expect(cursor.poll()).toEqual(["hello"]);
    cursor.close();
  });

  it("reads times from pino and ISO lines; untimed lines go with the line before", () => {
    expect(lineTime('{"level":30,"time":1796281200000,"msg":"x"}')).toBe(1796281200000);
    expect(lineTime("2026-12-03T07:00:00Z started")).toBe(Date.parse("2026-12-03T07:00:00Z"));
    expect(lineTime("[2026-12-03 07:00:00,250+00:00] x")).toBe(Date.parse("2026-12-03T07:00:00.250Z"));
    expect(lineTime("Traceback (most recent call last):")).toBeUndefined();
    const t = Date.parse("2026-12-03T07:00:00Z");
    const lines = ["untimed first", `{"time":${t - 1000}}`, "old trace", `{"time":${t}}`, "new trace", "2026-12-03T06:00:00Z old again"];
    expect(linesSince(lines, t)).toEqual(["untimed first", `{"time":${t}}`, "new trace"]);
  });

  it("with --since, skips a file not written since and filters one that was", () => {
    const old = join(dir, "old.log");
    writeFileSync(old, `{"time":${Date.now()}}\n`);
    utimesSync(old, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    expect(LogFileCursor.opening(old, 100, Date.now() - 60_000).lines).toEqual([]);
    const now = Date.now();
    const fresh = join(dir, "fresh.log");
    writeFileSync(fresh, `{"time":${now - 120_000}}\n{"time":${now - 30_000}}\n{"time":${now}}\n`);
    expect(LogFileCursor.opening(fresh, 100, now - 60_000).lines).toEqual([`{"time":${now - 30_000}}`, `{"time":${now}}`]);
    expect(LogFileCursor.opening(fresh, 1, now - 60_000).lines).toEqual([`{"time":${now}}`]);
  });

  it("streams every matching file, new ones from their start, until aborted", async () => {
    const logs = join(dir, "cluster");
    mkdirSync(logs);
    writeFileSync(join(logs, "frontend.log"), "old frontend\n");
    writeFileSync(join(logs, "m-1-1.log"), "from an earlier run\n");
    const sources = [{ component: "frontend", path: join(logs, "frontend.log") }];
    const all = () => ["frontend", "m-1-0", "m-1-1"].map((c) => ({ component: c, path: join(logs, `${c}.log`) }));
    const got: LogLine[] = [];
    const stop = new AbortController();
    const done = streamLogFiles(async () => sources, all, { tail: 10, follow: true, signal: stop.signal }, (l) => got.push(l));
    await until(() => got.length === 1, "the tail");
    appendFileSync(join(logs, "frontend.log"), "new frontend\n");
    // Replicas that appear while following: a new file from its start, an old one from where it was.
    writeFileSync(join(logs, "m-1-0.log"), "replica up\n");
    appendFileSync(join(logs, "m-1-1.log"), "restarted\n");
    sources.push({ component: "m-1-0", path: join(logs, "m-1-0.log") }, { component: "m-1-1", path: join(logs, "m-1-1.log") });
    await until(() => got.length === 4, "the new lines");
    stop.abort();
    await done;
    expect(got).toEqual([
      { component: "frontend", line: "old frontend" },
      { component: "frontend", line: "new frontend" },
      { component: "m-1-0", line: "replica up" },
      { component: "m-1-1", line: "restarted" },
    ]);
  });
});

describe("Docker's framed log stream", () => {
  it("splits frames that arrive in any chunks, keeping stdout and stderr lines apart", () => {
    const got: string[] = [];
    const lines = new LogStreamLines((l) => got.push(l));
    const bytes = Buffer.concat([frame(1, "out one\nout "), frame(2, "err one\n"), frame(1, "two\r\n"), frame(2, "err tail")]);
    for (let i = 0; i < bytes.length; i += 3) lines.push(bytes.subarray(i, i + 3));
    lines.end();
    expect(got).toEqual(["out one", "err one", "out two", "err tail"]);
    const raw: string[] = [];
    const tty = new LogStreamLines((l) => raw.push(l));
    tty.push(Buffer.from("plain text\nfrom a tty"));
    tty.end();
    expect(raw).toEqual(["plain text", "from a tty"]);
  });
});

describe("--since", () => {
  const now = () => Date.parse("2026-12-03T08:00:00Z");
  it("takes durations and times", () => {
    expect(sinceArg("90s", now).toISOString()).toBe("2026-12-03T07:58:30.000Z");
    expect(sinceArg("1h30m", now).toISOString()).toBe("2026-12-03T06:30:00.000Z");
    expect(sinceArg("2d", now).toISOString()).toBe("2026-12-01T08:00:00.000Z");
    expect(sinceArg("2026-12-03T07:00:00Z").toISOString()).toBe("2026-12-03T07:00:00.000Z");
    expect(sinceArg("2026-12-03T07:00:00+01:00").toISOString()).toBe("2026-12-03T06:00:00.000Z");
  });
  it("refuses anything else", () => {
    for (const bad of ["", "10", "10x", "-5m", "yesterday", "2026-13-45", "m"]) expect(() => sinceArg(bad, now), bad).toThrow(/expected a duration/);
  });
});

describe("the Docker manager follows its containers on the fake engine", () => {
  const model: ModelDeployment = {
    name: "m", version: "1", inputType: "doubles", framework: "python", predictFile: "/m/predict.py", predictFunction: "predict", modelPath: "/m", image: "model:1",
  };

  it("streams the tail, new lines, a restarted container's without repeats, and a new replica's", async () => {
    const fake = new FakeDockerEngine({ images: ["model:1"] });
    const manager = new DockerContainerManager({ cluster: "follow", engine: fake, probe: fake.probe, clock: new FakeClock(), stopGraceSeconds: 1 });
    await manager.startClipper({
      cluster: "follow", host: "127.0.0.1", queryPort: 0, managementPort: 0, rpcPort: 0, maxBodyBytes: 1 << 20, startupTimeoutMs: 5_000, replicaTimeoutMs: 3_000,
    });
    await manager.deployModel(model, 1);
    const replica = "clipper-follow-m-1-0";
    for (const line of ["a", "b", "c"]) fake.writeLog(replica, line, Date.now() - 10_000);

    const got: LogLine[] = [];
    const stop = new AbortController();
    const done = manager.streamLogs("m", { tail: 2, follow: true, signal: stop.signal }, (l) => got.push(l));
    await until(() => got.length === 2, "the tail");
    fake.writeLog(replica, "d");
    await until(() => got.length === 3, "a new line");
    // The container stops (its log stream ends) and starts again: only what came after is new.
    await fake.stopContainer(fake.byName(replica)!.id);
    await new Promise((r) => setTimeout(r, 20));
    fake.writeLog(replica, "while restarting");
    await fake.startContainer(fake.byName(replica)!.id);
    fake.writeLog(replica, "after restart", Date.now() + 5);
    await manager.setNumReplicas("m", "1", 2);
    fake.writeLog("clipper-follow-m-1-1", "second replica", Date.now() + 5);
    await until(() => got.some((l) => l.line === "second replica") && got.some((l) => l.line === "after restart"), "the restart and the new replica", 8_000);
    stop.abort();
    await done;
    expect(got.filter((l) => l.component === "m-1-0").map((l) => l.line)).toEqual(["b", "c", "d", "while restarting", "after restart"]);
    expect(got.filter((l) => l.component === "m-1-1").map((l) => l.line)).toEqual(["second replica"]);
    expect(fake.logFollows[0]).toMatchObject({ tail: 2, follow: true });

    // Without --follow: what is there (since a time), then done.
    const since: string[] = [];
    await manager.streamLogs("m-1-0", { tail: 100, since: new Date(Date.now() - 5_000), follow: false }, (l) => since.push(l.line));
    expect(since).toEqual(["d", "while restarting", "after restart"]);
    await expect(manager.streamLogs("nothing", { tail: 1, follow: false }, () => undefined)).rejects.toMatchObject({ reason: "NOT_FOUND" });
  });
});
