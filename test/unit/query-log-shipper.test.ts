/**
 * The query log shipper with an injected post (no daemon): the label its delivered-records counter
 * takes when a report comes back (not when it left), and the id each report carries.
 */
import pino from "pino";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { postToManagement } from "../../runtime/frontend/management-post.js";
import { MetricNames, UNREGISTERED } from "../../runtime/frontend/metric-names.js";
import { QueryLogRecorder } from "../../runtime/frontend/query-log-recorder.js";
import { QueryLogShipper } from "../../runtime/frontend/query-log-shipper.js";
import { dict } from "../../runtime/shared/dict.js";
import { QueryLogReportHeaderSchema, type QueryLogReportHeader } from "../../runtime/shared/query-log.js";
import type { ClusterState } from "../../runtime/shared/state.js";
import { appRecord, consistent } from "../support/state-fixtures.js";

const log = pino({ level: "silent" });
type Post = typeof postToManagement;

/** A state where `app` exists and logs every query. */
function logging(app: string): ClusterState {
  const state = consistent();
  state.applications[app] = appRecord(app);
  state.query_log = dict([[app, { sample: 1, max_mb: 1 }]]);
  return state;
}

function answer(recorder: QueryLogRecorder, app: string, queryId: number): void {
  recorder.query({ app, queryId, input: [queryId], answer: { kind: "output", output: "1", model: { name: "m", version: "1" } }, defaultOutput: "-1", latencyMs: 1, uid: "u" });
}

/** The header line of a report body as the shipper passes it to post. */
function headerOf(body: unknown): QueryLogReportHeader {
  const first = (Array.isArray(body) ? body[0] : body) as Buffer;
  const text = first.toString("utf8");
  return QueryLogReportHeaderSchema.parse(JSON.parse(text.slice(0, text.indexOf("\n"))));
}

async function recorded(registry: Registry): Promise<Record<string, number>> {
  const metric = await registry.getSingleMetric("clipper_query_log_records_total")!.get();
  return Object.fromEntries(metric.values.map((v) => [String(v.labels.app), v.value]));
}

describe("the query log shipper", () => {
  it("labels delivered records as the configuration is when the report comes back: an application deleted meanwhile counts as unregistered", async () => {
    let state = logging("gone");
    const recorder = new QueryLogRecorder({ frontendId: "f" });
    recorder.configure(state);
    const registry = new Registry();
    // The application is deleted while its report is out (the daemon took the records before).
    const post: Post = async () => {
      state = consistent();
      expect(state.applications.gone).toBeUndefined();
      return "accepted";
    };
    const shipper = new QueryLogShipper({ managementUrl: "http://unused.invalid", log, frontendId: "f", recorder, registry, names: MetricNames.of(() => state), post });
    answer(recorder, "gone", 1);
    answer(recorder, "gone", 2);
    await shipper.tick();
    expect(await recorded(registry)).toEqual({ [UNREGISTERED]: 2 });

    // Still registered when the report comes back: its own name.
    state = logging("b");
    recorder.configure(state);
    const keptRegistry = new Registry();
    const kept = new QueryLogShipper({
      managementUrl: "http://unused.invalid", log, frontendId: "f", recorder, registry: keptRegistry, names: MetricNames.of(() => state),
      post: async () => "accepted",
    });
    answer(recorder, "b", 3);
    await kept.tick();
    expect(await recorded(keptRegistry)).toEqual({ b: 1 });
  });

  it("numbers its reports in one session of its own, from 1, a failed report included", async () => {
    const state = logging("a");
    const recorder = new QueryLogRecorder({ frontendId: "f" });
    recorder.configure(state);
    const headers: QueryLogReportHeader[] = [];
    const outcomes = ["accepted", "unreachable", "accepted"] as const;
    const post: Post = async (_target, _path, body) => {
      headers.push(headerOf(body));
      return outcomes[headers.length - 1] ?? "accepted";
    };
    const shipper = new QueryLogShipper({ managementUrl: "http://unused.invalid", log, frontendId: "f", recorder, registry: new Registry(), post });
    for (let i = 1; i <= 3; i++) {
      answer(recorder, "a", i);
      await shipper.tick();
    }
    expect(headers.map((h) => h.report_id?.seq)).toEqual([1, 2, 3]);
    const session = headers[0]!.report_id!.session;
    expect(headers.every((h) => h.report_id?.session === session)).toBe(true);
    // A restarted frontend (another shipper) numbers from 1 again, in another session.
    const next = new QueryLogShipper({ managementUrl: "http://unused.invalid", log, frontendId: "f", recorder, registry: new Registry(), post });
    answer(recorder, "a", 4);
    await next.tick();
    expect(headers[3]!.report_id!.seq).toBe(1);
    expect(headers[3]!.report_id!.session).not.toBe(session);
  });
});
