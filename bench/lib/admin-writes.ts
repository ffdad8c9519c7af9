/** The control-plane benchmark's admin writes: its client of the daemon, and the probe writes it times. */
import { Agent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import type { BenchCluster } from "./cluster.js";
import { APPLIED_REVISIONS_PATH, AppliedRevisionsSchema, REVISION_HEADER, WATCH_PATH } from "../../runtime/shared/state.js";

export interface Write {
  ms: number;
  revision: number;
}

/**
 * The bench's admin client. Writes go over node:http on a keep-alive agent: the writer shares the
 * two cores with the cluster it measures, and fetch cost about a millisecond of CPU per write.
 */
export class Admin {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });

  constructor(private readonly url: string) {}

  async post(path: string, body: unknown): Promise<Write> {
    const started = performance.now();
    const { status, headers, text } = await this.request("POST", path, JSON.stringify(body));
    if (status !== 200) throw new Error(`${path} answered ${status}: ${text}`);
    return { ms: performance.now() - started, revision: Number(headers[REVISION_HEADER]) };
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  private request(method: "GET" | "POST", path: string, body?: string): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
    return new Promise((resolve, reject) => {
      const headers = body === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) };
      const req = httpRequest(this.url + path, { method, agent: this.agent, headers }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(body);
    });
  }

  /** The size of the state as a frontend receives it: the watch stream's first line. */
  async snapshotBytes(): Promise<number> {
    const abort = new AbortController();
    const res = await fetch(this.url + WATCH_PATH, { signal: abort.signal });
    const reader = res.body!.getReader();
    let bytes = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const newline = value.indexOf(10);
      bytes += newline >= 0 ? newline : value.length;
      if (newline >= 0) break;
    }
    abort.abort();
    return bytes;
  }

  /** The revision every live frontend has applied (the least), and how many frontends there are. */
  async applied(): Promise<{ least: number; frontends: number }> {
    const applied = AppliedRevisionsSchema.parse(JSON.parse((await this.request("GET", APPLIED_REVISIONS_PATH)).text));
    const revisions = applied.frontends.map((f) => f.revision ?? -1);
    return { least: revisions.length === 0 ? -1 : Math.min(...revisions), frontends: revisions.length };
  }
}

/** Probe applications: each write adds or removes the probe model's link on one of them. */
export const PROBE_APPS = 100;

/** Link writes on the probe applications in turn; one application's writes run one after another (each toggles its link). */
export class ProbeWriter {
  private readonly linked = new Set<number>();
  private readonly chains = new Map<number, Promise<unknown>>();
  private next = 0;
  errors = 0;

  constructor(private readonly admin: Admin) {}

  write(): Promise<Write | undefined> {
    const app = this.next++ % PROBE_APPS;
    const run = (this.chains.get(app) ?? Promise.resolve()).then(async () => {
      const linking = !this.linked.has(app);
      try {
        const write = await this.admin.post(linking ? "/admin/add_model_links" : "/admin/delete_model_links",
          { app_name: `probe-${app}`, model_names: ["probe-model"] });
        if (linking) this.linked.add(app);
        else this.linked.delete(app);
        return write;
      } catch {
        this.errors++;
        return undefined;
      }
    });
    this.chains.set(app, run);
    return run;
  }
}

/** The queried application ("hot": a 1 ms Python model), the probe model and the probe applications. */
export async function prepareProbes(cluster: BenchCluster): Promise<{ admin: Admin; probes: ProbeWriter }> {
  const admin = new Admin(cluster.managementUrl);
  await cluster.pythonModel("hot", 1000, { name: "hot-model", version: "1", file: "cost_model.py:predict", env: { BENCH_A_MS: "1", BENCH_B_MS: "0" } });
  await admin.post("/admin/add_model", {
    model_name: "probe-model", model_version: "1", labels: [], input_type: "doubles", container_name: "NO_CONTAINER", model_data_path: "none", batch_size: -1,
  });
  for (let i = 0; i < PROBE_APPS; i++) await admin.post("/admin/add_app", { name: `probe-${i}`, input_type: "doubles", default_output: "-1", latency_slo_micros: 100_000 });
  return { admin, probes: new ProbeWriter(admin) };
}

/**
 * `total` probe writes at `rate` per second, open loop: each one's latency (to `acked`) counts
 * from its scheduled time, so a store that falls behind shows.
 */
export async function writeAtRate(probes: ProbeWriter, rate: number, total: number, acked: (ms: number) => void): Promise<void> {
  const start = performance.now();
  const pending: Array<Promise<unknown>> = [];
  for (let issued = 0; issued < total;) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
    for (; issued < due; issued++) {
      const scheduled = start + (issued * 1000) / rate;
      pending.push(probes.write().then((w) => w && acked(performance.now() - scheduled)));
    }
    // Asleep until the next write is due: the writer shares the cores with what it measures.
    if (issued < total) await new Promise((r) => setTimeout(r, Math.max(1, start + (issued * 1000) / rate - performance.now())));
  }
  await Promise.all(pending);
}
