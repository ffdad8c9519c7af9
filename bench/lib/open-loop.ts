/**
 * An open-loop load: requests start at evenly spaced times whatever the answers do, as independent
 * users would send them. (autocannon's rate limit runs one timer per connection, which sends in
 * synchronized bursts; against a model with a fixed capacity that measures the bursts, not the
 * server.) Latency is measured from each request's scheduled start, so a stalled generator cannot
 * hide queueing (no coordinated omission).
 */
import { Agent, request } from "node:http";
import type { LoadResult } from "./load.js";
import { bodyFunction, type LoadBody } from "./body.js";

export interface OpenLoopOptions {
  url: string;
  path: string;
  /** Requests per second. */
  rate: number;
  durationSec: number;
  body: LoadBody;
}

export async function runOpenLoop(options: OpenLoopOptions): Promise<LoadResult> {
  const makeBody = bodyFunction(options.body);
  const agent = new Agent({ keepAlive: true, maxSockets: 512 });
  const target = new URL(options.path, options.url);
  const latencies: number[] = [];
  let fromModel = 0;
  let defaults = 0;
  let non2xx = 0;
  let errors = 0;
  const pending = new Set<Promise<void>>();
  const total = Math.round(options.rate * options.durationSec);
  const start = performance.now();

  const send = (scheduled: number): void => {
    const body = makeBody();
    const done = new Promise<void>((resolve) => {
      const req = request(target, { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => {
          latencies.push(performance.now() - scheduled);
          if (res.statusCode !== 200) non2xx++;
          else if (text.includes("\"default\":false")) fromModel++;
          else defaults++;
          resolve();
        });
      });
      req.on("error", () => {
        errors++;
        resolve();
      });
      req.end(body);
    });
    pending.add(done);
    void done.then(() => pending.delete(done));
  };

  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * options.rate));
      while (sent < due) send(start + (sent++ * 1000) / options.rate);
      if (sent >= total) {
        clearInterval(tick);
        resolve();
      }
    }, 1);
  });
  await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 10_000))]);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  const ok = fromModel + defaults;
  return {
    requests: sent, seconds: options.durationSec, rps: ok / options.durationSec, modelRps: fromModel / options.durationSec,
    defaults, non2xx, errors, p50: Math.round(at(0.5)), p90: Math.round(at(0.9)), p99: Math.round(at(0.99)),
    generator: "node open loop",
  };
}
