/**
 * What tests of frontend workers (`--frontend-workers N`) share, whatever the manager: a query on
 * a connection of its own (so consecutive queries are spread over the workers), and each worker's
 * view of a model version's replicas from its own live stats.
 */
import { request } from "node:http";
import { LiveStatsSchema, LIVE_STATS_PATH } from "../../runtime/shared/live-stats.js";

/** One predict on its own connection (no keep-alive): each new connection may go to another worker. */
export function predictOnNewConnection(queryUrl: string, app: string, input: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(`${queryUrl}/${app}/predict`, { method: "POST", agent: false, headers: { connection: "close" } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(JSON.stringify({ input }));
  });
}

/** Per frontend id (a worker reports as `<frontend>#w<i>`): how many replicas of name:version its latest live-stats sample shows, and when it was taken. */
export async function liveReplicasByWorker(managementUrl: string, name: string, version: string): Promise<Map<string, { replicas: number; at: number }>> {
  const stats = LiveStatsSchema.parse(await (await fetch(new URL(LIVE_STATS_PATH, managementUrl))).json());
  return new Map(stats.frontends.map((f) => {
    const last = f.samples.at(-1);
    const v = last?.versions.find((s) => s.model_name === name && s.model_version === version);
    return [f.frontend_id, { replicas: v?.replicas.length ?? 0, at: last?.at ?? 0 }];
  }));
}
