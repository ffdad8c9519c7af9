/**
 * Replay's parts without a cluster: reading recorded queries from a byte stream (lines split across
 * chunks, torn, over-long, foreign), the OIP request of each input type and how outputs compare,
 * and the runner's open-loop pacing, bound on queries in flight, limit and stop, on a fake clock.
 */
import { describe, expect, it } from "vitest";
import type { QueryRecord } from "../../runtime/shared/query-log.js";
import { MAX_RECORDED_LINE_BYTES, noSkippedLines, recordedQueries } from "../../src/recorded-queries.js";
import { canonicalJson, oipOutputText, oipRequestFor, sameOutput } from "../../src/replay-request.js";
import { type ReplayClock, runReplay, type SendOutcome } from "../../src/replay.js";
import { parseReplayTarget } from "../../src/connection.js";
import { recordedWarmupInputs } from "../../src/warmup-from-log.js";
import { MAX_WARMUP_INPUT_CHARS } from "../../runtime/shared/warmup.js";

const record = (queryId: number, input: unknown, output: unknown, extra: Partial<QueryRecord> = {}): QueryRecord => ({
  type: "query", app: "a", query_id: queryId, frontend_id: "f", time: "t", input, output, default: false, cached: false, latency_ms: 1, ...extra,
});

async function* chunksOf(...parts: Array<string | Buffer>): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield typeof p === "string" ? Buffer.from(p) : p;
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe("recordedQueries", () => {
  it("reads records split across chunks and skips what does not fit, counting why", async () => {
    const line = (r: QueryRecord) => JSON.stringify({ ...r, feedback: [] });
    const a = line(record(1, [1], 1));
    const b = line(record(2, "é", "x"));
    const skipped = noSkippedLines();
    const got = await collect(recordedQueries(chunksOf(
      a.slice(0, 10), `${a.slice(10)}\n\n`,
      // "é" split between its two bytes.
      Buffer.from(`${b}\n`).subarray(0, b.indexOf("é") + 1), Buffer.from(`${b}\n`).subarray(b.indexOf("é") + 1),
      `${line(record(3, [3], 3, { app: "b" }))}\n`,
      "[1,2]\n{\"type\":\"query\"}\n",
      `${JSON.stringify({ type: "query", app: "a", query_id: 4, frontend_id: "f", time: "t", default: false, cached: false, latency_ms: 1 })}\n`,
      a.slice(0, 30),
    ), "a", skipped));
    expect(got.map((r) => [r.query_id, r.input])).toEqual([[1, [1]], [2, "é"]]);
    // [1,2], a record missing fields, one without input and output, the torn last line.
    expect(skipped).toEqual({ invalid: 4, other_app: 1 });
  });

  it("skips a line longer than the bound without holding it, and reads on", async () => {
    const big = "x".repeat(1024 * 1024);
    const parts: string[] = [`{"a":"`];
    for (let held = 0; held <= MAX_RECORDED_LINE_BYTES; held += big.length) parts.push(big);
    parts.push(`"}\n${JSON.stringify(record(5, [5], 5))}\n`);
    const skipped = noSkippedLines();
    expect((await collect(recordedQueries(chunksOf(...parts), "a", skipped))).map((r) => r.query_id)).toEqual([5]);
    expect(skipped.invalid).toBe(1);
  });

  it("reads `__proto__` and `constructor` as ordinary application names and keys", async () => {
    // Written as text: an object literal's __proto__ would set a prototype, not a key.
    const r = JSON.stringify({ ...record(1, [1], "OUT"), app: "__proto__" }).replace('"OUT"', '{"__proto__":1,"constructor":2}');
    expect((await collect(recordedQueries(chunksOf(`${r}\n`), "__proto__", noSkippedLines())))[0]!.output).toEqual(JSON.parse('{"__proto__":1,"constructor":2}'));
  });
});

describe("OIP requests and output comparison", () => {
  const tensor = (inputType: Parameters<typeof oipRequestFor>[0], input: unknown) => {
    const r = oipRequestFor(inputType, input);
    return "body" in r ? JSON.parse(r.body) : r;
  };

  it("carries each input type faithfully, and asks for the output as text", () => {
    expect(tensor("doubles", [0.1, 2])).toEqual({
      inputs: [{ name: "input", datatype: "FP64", shape: [1, 2], data: [0.1, 2] }], outputs: [{ name: "output", parameters: { content_type: "str" } }],
    });
    expect(tensor("floats", [1.5]).inputs[0]).toMatchObject({ datatype: "FP32", shape: [1, 1], data: [1.5] });
    expect(tensor("integers", [-3, 7]).inputs[0]).toMatchObject({ datatype: "INT32", shape: [1, 2], data: [-3, 7] });
    expect(tensor("strings", "a b\n").inputs[0]).toEqual({ name: "input", datatype: "BYTES", shape: [1], data: ["a b\n"], parameters: { content_type: "str" } });
    expect(tensor("bytes", "AAEC").inputs[0]).toEqual({ name: "input", datatype: "BYTES", shape: [1], data: ["AAEC"], parameters: { content_type: "base64" } });
  });

  it("names why an input cannot be sent", () => {
    expect(tensor("doubles", [])).toEqual({ unsendable: "an empty input, which an Open Inference Protocol tensor cannot carry" });
    expect(tensor("integers", [1.5]).unsendable).toMatch(/does not fit input type integers: element 0 of the input is not a 32-bit integer/);
    expect(tensor("bytes", "not base64!").unsendable).toMatch(/base64/);
    expect(tensor("strings", [1]).unsendable).toMatch(/must be a JSON string/);
  });

  it("reads the output text of an answer, and nothing else", () => {
    expect(oipOutputText({ outputs: [{ name: "output", datatype: "BYTES", shape: [1], data: ["1.0"] }] })).toBe("1.0");
    expect(oipOutputText({ outputs: [{ data: [1] }] })).toBeUndefined();
    expect(oipOutputText({ outputs: [] })).toBeUndefined();
    expect(oipOutputText(null)).toBeUndefined();
  });

  it("compares strings exactly, numbers by value, objects whatever their key order", () => {
    expect(sameOutput("cat", "cat")).toBe(true);
    expect(sameOutput("cat", "Cat")).toBe(false);
    expect(sameOutput("cat", "cat ")).toBe(false);
    expect(sameOutput(1, "1.0")).toBe(true);
    expect(sameOutput(100, "1e2")).toBe(true);
    expect(sameOutput(0.3, "0.30000000000000004")).toBe(false);
    expect(sameOutput(1, "\"1\"")).toBe(false);
    expect(sameOutput({ a: 1, b: [1, { c: 2 }] }, '{"b":[1,{"c":2.0}],"a":1}')).toBe(true);
    expect(sameOutput({ a: 1, b: [1, 2] }, '{"a":1,"b":[2,1]}')).toBe(false);
    expect(sameOutput({ a: 1 }, '{"a":1,"b":null}')).toBe(false);
    expect(sameOutput(JSON.parse('{"__proto__":1}'), '{"__proto__":2}')).toBe(false);
    expect(canonicalJson(JSON.parse('{"__proto__":{"x":1},"constructor":2}'))).toBe('{"__proto__":{"x":1},"constructor":2}');
  });

  it("parses NAME:VERSION and refuses anything else", () => {
    expect(parseReplayTarget("m:2")).toEqual({ name: "m", version: "2" });
    expect(() => parseReplayTarget("m")).toThrow(/expected NAME:VERSION/);
    expect(() => parseReplayTarget(":2")).toThrow(/model name must not be empty/);
    expect(() => parseReplayTarget("m:2:3")).toThrow(/model version '2:3' must consist/);
  });
});

/** A clock that moves only when slept on; sleeps are recorded. */
function fakeClock(): ReplayClock & { sleeps: number[] } {
  let t = 0;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => t,
    sleep: async (ms) => {
      sleeps.push(ms);
      t += ms;
    },
  };
}

async function* records(n: number, make: (i: number) => QueryRecord = (i) => record(i, [i], i)): AsyncGenerator<QueryRecord> {
  for (let i = 0; i < n; i++) yield make(i);
}

const answer = (text: string, latencyMs = 1): Promise<SendOutcome> => Promise.resolve({ kind: "output", text, latencyMs });

describe("runReplay", () => {
  it("sends at the rate, open loop, and counts agreement, disagreements, errors and recorded defaults", async () => {
    const clock = fakeClock();
    const sentAt: number[] = [];
    const figures = await runReplay({
      records: records(6, (i) => record(i, [i], i, i === 5 ? { default: true, output: -1 } : {})),
      prepare: (r) => ({
        send: () => {
          sentAt.push(clock.now());
          const i = r.query_id;
          if (i === 3) return Promise.resolve({ kind: "error", message: "503: overloaded" });
          return answer(i === 4 ? "40" : String(i), 10 * (i + 1));
        },
      }),
      rate: 100,
      clock,
    });
    expect(sentAt).toEqual([0, 10, 20, 30, 40, 50]);
    expect(figures).toMatchObject({
      sent: 6, answered: 5, errors: 1, compared: 4, agree: 3, disagree: 1, agreement: 0.75, recorded_default: 1, unsendable: 0,
      disagreements: [{ query_id: 4, input: "[4]", recorded: "4", replayed: "40" }],
      error_examples: [{ query_id: 3, message: "503: overloaded" }],
      latency_ms: { p50: 30, p90: 60, p99: 60 }, stopped: false,
    });
  });

  it("above 1000 queries/s, sleeps only whole milliseconds and sends the rest in small bursts", async () => {
    const clock = fakeClock();
    const figures = await runReplay({ records: records(10), prepare: (r) => ({ send: () => answer(String(r.query_id)) }), rate: 5000, clock });
    expect(figures.sent).toBe(10);
    expect(clock.sleeps).toEqual([1]);
  });

  it("holds back when the bound on queries in flight is reached, and sends again as answers come", async () => {
    const clock = fakeClock();
    const pending: Array<() => void> = [];
    let inFlight = 0;
    let most = 0;
    const run = runReplay({
      records: records(5),
      prepare: (r) => ({
        send: () => {
          most = Math.max(most, ++inFlight);
          return new Promise<SendOutcome>((resolve) => pending.push(() => {
            inFlight--;
            resolve({ kind: "output", text: String(r.query_id), latencyMs: 1 });
          }));
        },
      }),
      rate: 1000,
      maxInFlight: 2,
      clock,
    });
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      pending.shift()?.();
    }
    for (let i = 0; i < 5 && pending.length > 0; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      pending.shift()?.();
    }
    const figures = await run;
    expect(most).toBe(2);
    expect(figures).toMatchObject({ sent: 5, agree: 5 });
    expect(figures.held_back).toBeGreaterThan(0);
  });

  it("stops at the limit, skips what cannot be sent, and stops on the signal", async () => {
    const limited = await runReplay({
      records: records(10), prepare: (r) => (r.query_id % 2 === 1 ? { unsendable: "odd" } : { send: () => answer(String(r.query_id)) }),
      rate: 1000, limit: 3, clock: fakeClock(),
    });
    expect(limited).toMatchObject({ sent: 3, agree: 3, unsendable: 2 });

    const stop = new AbortController();
    const stopped = await runReplay({
      records: records(10), prepare: (r) => ({ send: () => {
        if (r.query_id === 1) stop.abort();
        return answer(String(r.query_id));
      } }),
      rate: 1000, clock: fakeClock(), signal: stop.signal,
    });
    expect(stopped).toMatchObject({ sent: 2, answered: 2, stopped: true });
  });

  it("reports progress while running", async () => {
    const seen: number[] = [];
    await runReplay({
      records: records(10), prepare: (r) => ({ send: () => answer(String(r.query_id)) }),
      rate: 10, clock: fakeClock(), progressMs: 250, onProgress: (p) => seen.push(p.sent),
    });
    expect(seen.length).toBeGreaterThan(2);
    expect(seen.at(-1)).toBe(10);
  });
});

describe("recordedWarmupInputs", () => {
  it("keeps the latest distinct inputs that fit, oldest first, and counts those that do not", async () => {
    const inputs = [[1], [2], "x", [1], [3], [4], [2]];
    const chosen = await recordedWarmupInputs(records(inputs.length, (i) => record(i, inputs[i], 0)), "doubles", 3);
    // [1] was seen again after [2]'s first time; [2] last: the latest three distinct are [3], [4], [2].
    expect(chosen).toEqual({ inputs: [[3], [4], [2]], read: 7, unfit: 1 });
    expect((await recordedWarmupInputs(records(2, (i) => record(i, "s", 0)), "doubles", 3)).inputs).toEqual([]);
  });

  it("leaves out the oldest until the inputs' JSON fits the replica environment's bound", async () => {
    const long = (c: string) => c.repeat(MAX_WARMUP_INPUT_CHARS / 3);
    const texts = [long("a"), long("b"), long("c"), "d", "x".repeat(MAX_WARMUP_INPUT_CHARS)];
    const chosen = await recordedWarmupInputs(records(texts.length, (i) => record(i, texts[i], 0)), "strings", 10);
    // The over-long one alone could never travel; of the rest, "a..." goes first.
    expect(chosen.inputs).toEqual([long("b"), long("c"), "d"]);
    expect(JSON.stringify(chosen.inputs).length).toBeLessThanOrEqual(MAX_WARMUP_INPUT_CHARS);
  });
});
