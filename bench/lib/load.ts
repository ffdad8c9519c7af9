/**
 * A closed- or open-loop HTTP load on loopback, counting which answers came from a model
 * (`"default":false`) and which were default outputs, with latency percentiles. Closed loops run
 * on wrk when it is installed (the load generator, and far cheaper per request than a Node
 * client on two shared cores); open loops (a fixed rate) and machines without wrk use autocannon.
 * `BENCH_LOAD=autocannon` forces autocannon for a comparison with older tables.
 */
import autocannon from "autocannon";
import { bodyFunction, type LoadBody } from "./body.js";
import { positiveEnv } from "./env.js";
import { runWrk, wrkAvailable } from "./wrk.js";

export type LoadGenerator = "wrk" | "autocannon" | "node open loop";

/** The generator a closed-loop load uses on this machine (printed under every table). */
export function closedLoopGenerator(): LoadGenerator {
  return process.env.BENCH_LOAD !== "autocannon" && wrkAvailable() ? "wrk" : "autocannon";
}

export interface LoadOptions {
  url: string;
  path: string;
  connections: number;
  durationSec: number;
  /** A fresh body per request (distinct inputs defeat the cache) or a fixed one. */
  body: LoadBody;
  /** Requests per second across all connections (open loop); none: as fast as answers come. */
  overallRate?: number;
}

export interface LoadResult {
  requests: number;
  seconds: number;
  /** All 2xx answers per second. */
  rps: number;
  /** Answers produced by a model (`"default":false`) per second. */
  modelRps: number;
  defaults: number;
  non2xx: number;
  errors: number;
  p50: number;
  p90: number;
  p99: number;
  /** The slowest answer, ms (closed loops; a lost loopback segment's 200 ms shows here, not in p99). */
  max?: number;
  generator: LoadGenerator;
}

/**
 * wrk threads: two, as the issue measures (one per core here); BENCH_WRK_THREADS for a machine
 * with cores to spare (two threads cannot saturate eight frontend workers).
 */
const WRK_THREADS = positiveEnv("BENCH_WRK_THREADS", 2, 64);

/** The wrk threads a closed loop uses (reported under a table). */
export function closedLoopThreads(): number {
  return WRK_THREADS;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  if (options.overallRate === undefined && closedLoopGenerator() === "wrk") {
    const threads = Math.min(WRK_THREADS, options.connections);
    const r = await runWrk({ ...options, threads });
    const seconds = options.durationSec;
    return {
      requests: r.requests, seconds, rps: r.ok / seconds, modelRps: r.fromModel / seconds, defaults: r.defaults,
      non2xx: r.non2xx, errors: r.errors, p50: r.p50, p90: r.p90, p99: r.p99, max: r.max, generator: "wrk",
    };
  }
  const body = bodyFunction(options.body);
  let fromModel = 0;
  let defaults = 0;
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.durationSec,
    overallRate: options.overallRate,
    pipelining: 1,
    requests: [{
      method: "POST",
      path: options.path,
      headers: { "content-type": "application/json" },
      setupRequest: (req) => ({ ...req, body: body() }),
      onResponse: (status: number, body: string) => {
        if (status !== 200) return;
        // Cheaper than JSON.parse per answer, and both shapes carry the flag once per prediction.
        if (body.includes("\"default\":false")) fromModel++;
        else if (body.includes("\"default\":true")) defaults++;
      },
    }],
  });
  const seconds = options.durationSec;
  const ok = result["2xx"];
  return {
    requests: result.requests.total,
    seconds,
    rps: ok / seconds,
    modelRps: fromModel / seconds,
    defaults,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    max: result.latency.max,
    generator: "autocannon",
  };
}

/** Warms a path up so JIT and connections are settled before measuring. */
export async function warmUp(options: LoadOptions, seconds = 2): Promise<void> {
  await runLoad({ ...options, durationSec: seconds });
}
