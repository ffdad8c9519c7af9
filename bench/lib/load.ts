/**
 * A closed- or open-loop HTTP load on loopback (autocannon), counting which answers came from a
 * model (`"default":false`) and which were default outputs, with latency percentiles.
 */
import autocannon from "autocannon";

export interface LoadOptions {
  url: string;
  path: string;
  connections: number;
  durationSec: number;
  /** A fresh body per request (distinct inputs defeat the cache) or a fixed one. */
  body: () => string;
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
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
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
      setupRequest: (req) => ({ ...req, body: options.body() }),
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
  };
}

/** Warms a path up so JIT and connections are settled before measuring. */
export async function warmUp(options: LoadOptions, seconds = 2): Promise<void> {
  await runLoad({ ...options, durationSec: seconds });
}
