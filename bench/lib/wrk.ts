/**
 * A closed-loop HTTP load by wrk (C, epoll), the load generator the performance issue measures
 * with: it costs the machine far less CPU per request than autocannon's Node process, so on two
 * shared cores more of the CPU goes to the server being measured. The body is described rather
 * than computed (wrk runs Lua, not our JS): one fixed body, or fresh random doubles per request.
 * Answers are counted by kind in each wrk thread and summed in `done`, printed as one JSON line.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LoadBody } from "./body.js";
import type { LoadResult } from "./load.js";


export interface WrkOptions {
  url: string;
  path: string;
  connections: number;
  threads: number;
  durationSec: number;
  body: LoadBody;
}

/** wrk's counts (the shape of a LoadResult's counts and latencies, ms); ok and fromModel are answers, not rates. */
export type WrkResult = Pick<LoadResult, "requests" | "defaults" | "non2xx" | "errors" | "p50" | "p90" | "p99"> & {
  ok: number;
  fromModel: number;
  max: number;
};

let available: boolean | undefined;

/** Whether a `wrk` binary is on PATH (Debian: `apt-get install wrk`). */
export function wrkAvailable(): boolean {
  if (available === undefined) {
    try {
      execFileSync("wrk", ["--version"], { stdio: "ignore" });
      available = true;
    } catch (err) {
      // wrk --version exits 1 after printing its banner; only a missing binary is "absent".
      available = (err as NodeJS.ErrnoException).code !== "ENOENT";
    }
  }
  return available;
}

function luaString(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")}"`;
}

function bodyLua(body: LoadBody): string {
  if ("fixed" in body) {
    // Formatted on first use: at load time wrk has not filled in the thread's path yet.
    return `local fixed
request = function()
  if not fixed then fixed = wrk.format("POST", nil, headers, ${luaString(body.fixed)}) end
  return fixed
end`;
  }
  return `local width = ${Math.max(1, Math.trunc(body.distinctDoubles))}
local parts = {}
request = function()
  for i = 1, width do parts[i] = string.format("%.17g", math.random()) end
  return wrk.format("POST", nil, headers, '{"input":[' .. table.concat(parts, ",") .. ']}')
end`;
}

/** The script: per-thread counters, a seeded generator per thread, one JSON summary line. */
function script(body: LoadBody): string {
  return `local threads = {}
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end
local headers = { ["content-type"] = "application/json" }
ok, fromModel, defaults = 0, 0, 0
init = function(args)
  math.randomseed(os.time() * 1000 + (id or 0))
end
${bodyLua(body)}
response = function(status, hdrs, text)
  if status == 200 then
    ok = ok + 1
    if string.find(text, '"default":false', 1, true) then fromModel = fromModel + 1
    elseif string.find(text, '"default":true', 1, true) then defaults = defaults + 1 end
  end
end
done = function(summary, latency, requests)
  local o, m, d = 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); m = m + t:get("fromModel"); d = d + t:get("defaults")
  end
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"ok":%d,"fromModel":%d,"defaults":%d,"non2xx":%d,"errors":%d,"p50":%f,"p90":%f,"p99":%f,"max":%f}\\n',
    summary.requests, o, m, d, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
`;
}

export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const dir = mkdtempSync(join(tmpdir(), "clipper-wrk-"));
  const file = join(dir, "load.lua");
  writeFileSync(file, script(options.body));
  const url = new URL(options.path, options.url).toString();
  const args = ["-t", String(options.threads), "-c", String(options.connections), "-d", `${options.durationSec}s`, "--timeout", "10s", "-s", file, url];
  try {
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (c: Buffer) => { out += c.toString(); });
      child.stderr.on("data", (c: Buffer) => { out += c.toString(); });
      child.on("error", reject);
      child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`wrk exited ${code}: ${out.slice(-500)}`))));
    });
    const line = output.split("\n").find((l) => l.startsWith("WRK_JSON "));
    if (!line) throw new Error(`wrk printed no summary: ${output.slice(-500)}`);
    return JSON.parse(line.slice("WRK_JSON ".length)) as WrkResult;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
