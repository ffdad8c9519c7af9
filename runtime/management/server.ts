/**
 * The management daemon's HTTP server: Clipper's admin API on node:http, plus our extensions (the
 * watch stream, replica and applied-revision reports, and the revision headers on every write).
 * Routing, auth, body limits and error answers live here; what each endpoint does lives in
 * operations.ts, durability in store.ts.
 */
import { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createLogger, type Logger } from "../shared/logger.js";
import { APPLIED_REVISIONS_PATH, DAEMON_INSTANCE_HEADER, LIVE_PATH, REPORT_REPLICAS_PATH, REVISION_HEADER, WATCH_PATH, WRITE_OUTCOME_HEADER, WRITE_OUTCOME_UNKNOWN } from "../shared/state.js";
import { listen } from "../shared/listen.js";
import { createGuardedServer } from "../shared/http-guard.js";
import { defaultMaxConnections } from "../shared/connection-limit.js";
import { isAuthorized, isOpenEndpoint, TOKEN_HEADER, type AuthPolicy } from "./auth.js";
import { presentsToken } from "../shared/secrets.js";
import { BodyBuffers, BodyNotUtf8Error, BodyTooLargeError, readBody, readTextBody } from "../shared/http-body.js";
import { isUtf8 } from "node:buffer";
import { AdminError, badRequest } from "./errors.js";
import { type AllowedHosts, hostRefusal, isHostAllowed, parseAllowedHosts } from "../shared/host-check.js";
import { API_KEY_READ_OPERATIONS, API_KEY_WRITE_OPERATIONS, type RepliedWriteOperation } from "./api-key-operations.js";
import { refuseForeignOrigin, requireJsonContentType } from "./browser-guard.js";
import { parseReplicaReport, READ_OPERATIONS as CLIPPER_READS, type Reply, WRITE_OPERATIONS as CLIPPER_WRITES } from "./operations.js";
import { POLICY_READ_OPERATIONS, POLICY_WRITE_OPERATIONS } from "./policy-operations.js";
import { AUTOSCALE_READ_OPERATIONS, AUTOSCALE_WRITE_OPERATIONS } from "./autoscale-operations.js";
import { SHADOW_READ_OPERATIONS, SHADOW_WRITE_OPERATIONS } from "./shadow-operations.js";
import { ROLLOUT_WRITE_OPERATIONS } from "./rollout-operations.js";
import { RolloutDriver } from "./rollout-driver.js";
import { ShadowStatsStore } from "./shadow-stats-store.js";
import {
  AUTOSCALER_EVENTS_PATH, AutoscaleLoopEventSchema, type AutoscaleEventInput, COMPLETE_SCALE_REQUEST_PATH, RECORD_AUTOSCALER_EVENT_PATH,
  SCALE_REQUESTS_PATH, SET_NUM_REPLICAS_PATH,
} from "../shared/autoscaling.js";
import { Gauge } from "prom-client";
import { AutoscalerMetrics } from "./autoscaler-metrics.js";
import { ScaleRequests } from "./scale-requests.js";
import { AutoscaleEventLog } from "../autoscaler/event-log.js";
import { ReplicaRegistry } from "./replicas.js";
import type { OpenJournalHandle } from "./state-journal.js";
import { StateInvalidError, StateOutcomeUnknownError, StatePersistError, StateStore, StateWritesHaltedError } from "./store.js";
import { WatchHub } from "./watch.js";
import { LIVE_STATS_PATH, LIVE_STATS_REPORT_TEXT, LiveStatsReportSchema, REPORT_LIVE_STATS_PATH } from "../shared/live-stats.js";
import { LiveStatsStore } from "./live-stats-store.js";
import { DashboardAssets, isDashboardPath } from "./dashboard-assets.js";
import { parseBody, spec } from "./operations.js";
import {
  EXPORT_QUERY_LOG_PATH, GET_QUERY_LOG_PATH, MAX_REPORT_BYTES, QUERY_LOG_REPORT_CONTENT_TYPE, QUERY_LOG_REPORT_TEXT, QueryLogReportHeaderSchema, REPORT_QUERY_LOG_PATH,
  type QueryLogReportId, reportRecords, type QueryLogStatus,
} from "../shared/query-log.js";
import { APP_NAME_BODY, QUERY_LOG_WRITE_OPERATIONS, requireApp } from "./query-log-operations.js";
import { QUERY_LOG_DIR, QueryLogStore, REPEATED_REPORT } from "./query-log-store.js";
import { own } from "../shared/dict.js";
import { join } from "node:path";
import type { ClusterState } from "../shared/state.js";

export interface ManagementServerOptions {
  host: string;
  /** 0 picks a free port; the result says which. */
  port: number;
  stateDir: string;
  /** Required from non-loopback clients when the server is bound beyond loopback. */
  token?: string;
  /**
   * Hostnames admitted in `Host` besides loopback names, IP addresses and `host` itself
   * (shared/host-check.ts); `*` admits all. Default: none.
   */
  allowedHosts?: readonly string[];
  /** Largest accepted request body (default 1 MiB); larger ones get 413. */
  maxBodyBytes?: number;
  /** Open HTTP connections at most (shared/http-guard.ts; default below the descriptor limit: shared/connection-limit.ts). */
  maxConnections?: number;
  /** Interval of `{}` keepalive lines on watch streams (default 10 s). */
  watchKeepaliveMs?: number;
  /** A frontend that has not reported its replicas for this long is forgotten (default 60 s). */
  replicaReportTtlMs?: number;
  /** Where the dashboard's built assets are (default: the package's dist/dashboard). */
  dashboardDir?: string;
  /** Defaults to createLogger("management"). */
  logger?: Logger;
  /** The clock of manual scale requests' expiry (scale-requests.ts) and of rollout steps; injected by tests. */
  now?: () => number;
  /** How often running rollouts are looked at (ms; default ROLLOUT_TICK_MS). */
  rolloutTickMs?: number;
  /** Opens the state journal's file (default: node:fs; tests inject one that fails on cue). */
  openJournal?: OpenJournalHandle;
}

export interface ManagementServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
export const DEFAULT_WATCH_KEEPALIVE_MS = 10_000;
export const DEFAULT_REPLICA_REPORT_TTL_MS = 60_000;
/** Prometheus' conventional path: the daemon's own metrics (autoscaling, docs/autoscaling.md). */
export const METRICS_PATH = "/metrics";
/** Bounds on how long a client may take to send its headers, and its whole request. */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;

// Clipper's operations plus ours for selection policies, query API keys, autoscaling and shadow versions.
const WRITE_OPERATIONS: Readonly<Record<string, RepliedWriteOperation>> = {
  ...CLIPPER_WRITES, ...POLICY_WRITE_OPERATIONS, ...API_KEY_WRITE_OPERATIONS, ...AUTOSCALE_WRITE_OPERATIONS, ...SHADOW_WRITE_OPERATIONS, ...QUERY_LOG_WRITE_OPERATIONS,
  ...ROLLOUT_WRITE_OPERATIONS,
};
const LIVE_STATS_REPORT = spec(LiveStatsReportSchema, LIVE_STATS_REPORT_TEXT);
const QUERY_LOG_REPORT = spec(QueryLogReportHeaderSchema, QUERY_LOG_REPORT_TEXT);
const MIB = 1024 * 1024;
/**
 * A scale decision the autoscaler loop acted on, or the first replica after a scale from zero it
 * saw connect (configuration events come from the writes only).
 */
const LOOP_EVENT = spec(AutoscaleLoopEventSchema,
  `{"kind" := "scale_up"|"scale_down", "model_name" := string, "model_version" := string, "from" := int, "to" := int, "reason" := string}`
  + ` or {"kind" := "first_replica", "model_name" := string, "model_version" := string, "start_ms" := number, "reason" := string}`);
/** How /admin/ping starts its 503 answer while writes are refused. */
const WRITES_HALTED_PREFIX = "NOT READY: the daemon refuses every write until it is restarted, since an earlier write's outcome is unknown";
const READ_OPERATIONS = {
  ...CLIPPER_READS, ...POLICY_READ_OPERATIONS, ...API_KEY_READ_OPERATIONS, ...AUTOSCALE_READ_OPERATIONS, ...SHADOW_READ_OPERATIONS,
};

type Route =
  | { method: "GET"; kind: "ping" | "live" | "watch" | "applied" | "events" | "live_stats" | "scale_requests" | "metrics" }
  | {
    method: "POST";
    kind: "report" | "live_report" | "record_event" | "scale_request" | "complete_scale_request" | "query_log_report" | "query_log_status"
      | "query_log_export";
  }
  | { method: "POST"; kind: "write"; path: string }
  | { method: "POST"; kind: "read"; path: string };

function buildRoutes(): Map<string, Route> {
  const routes = new Map<string, Route>([
    ["/admin/ping", { method: "GET", kind: "ping" }],
    [LIVE_PATH, { method: "GET", kind: "live" }],
    [WATCH_PATH, { method: "GET", kind: "watch" }],
    [REPORT_REPLICAS_PATH, { method: "POST", kind: "report" }],
    [APPLIED_REVISIONS_PATH, { method: "GET", kind: "applied" }],
    [AUTOSCALER_EVENTS_PATH, { method: "GET", kind: "events" }],
    [REPORT_LIVE_STATS_PATH, { method: "POST", kind: "live_report" }],
    [LIVE_STATS_PATH, { method: "GET", kind: "live_stats" }],
    [RECORD_AUTOSCALER_EVENT_PATH, { method: "POST", kind: "record_event" }],
    [SET_NUM_REPLICAS_PATH, { method: "POST", kind: "scale_request" }],
    [SCALE_REQUESTS_PATH, { method: "GET", kind: "scale_requests" }],
    [COMPLETE_SCALE_REQUEST_PATH, { method: "POST", kind: "complete_scale_request" }],
    [METRICS_PATH, { method: "GET", kind: "metrics" }],
    [REPORT_QUERY_LOG_PATH, { method: "POST", kind: "query_log_report" }],
    [GET_QUERY_LOG_PATH, { method: "POST", kind: "query_log_status" }],
    [EXPORT_QUERY_LOG_PATH, { method: "POST", kind: "query_log_export" }],
  ]);
  for (const path of Object.keys(WRITE_OPERATIONS)) routes.set(path, { method: "POST", kind: "write", path });
  for (const path of Object.keys(READ_OPERATIONS)) routes.set(path, { method: "POST", kind: "read", path });
  return routes;
}

export async function startManagementServer(options: ManagementServerOptions): Promise<ManagementServer> {
  const log = options.logger ?? createLogger("management");
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const auth: AuthPolicy = { host: options.host, token: options.token };
  const allowedHosts: AllowedHosts = parseAllowedHosts(options.allowedHosts, options.host);
  const routes = buildRoutes();

  // The port is bound before the state is opened, so a second daemon started by mistake on the
  // same port fails without touching the state directory. Requests that arrive in between wait.
  let storeOpened!: (store: StateStore) => void;
  const storeReady = new Promise<StateStore>((resolve) => (storeOpened = resolve));
  const replicas = new ReplicaRegistry(options.replicaReportTtlMs ?? DEFAULT_REPLICA_REPORT_TTL_MS);
  const watch = new WatchHub(options.watchKeepaliveMs ?? DEFAULT_WATCH_KEEPALIVE_MS);
  const autoscaleEvents = new AutoscaleEventLog(undefined, options.now);
  const scaleRequests = new ScaleRequests((input) => recordEvent(input), options.now);
  // Collected only once requests are served, which is after the state is opened.
  const autoscalerMetrics = new AutoscalerMetrics(() => store.state, () => scaleRequests.size);
  // Every event goes through here, so the metrics count what the log recorded.
  const recordEvent = (input: AutoscaleEventInput) => autoscalerMetrics.observe(autoscaleEvents.record(input));
  const liveStats = new LiveStatsStore(options.replicaReportTtlMs ?? DEFAULT_REPLICA_REPORT_TTL_MS);
  const shadowStats = new ShadowStatsStore();
  const dashboard = new DashboardAssets(options.dashboardDir);
  const queryLogs = new QueryLogStore(join(options.stateDir, QUERY_LOG_DIR));
  /** Records the frontends could not deliver, per application, since this daemon started. */
  const queryLogDropped = new Map<string, number>();
  /** Frontends report several times a second at 100% sampling, each report about MAX_REPORT_BYTES: read into reused storage. */
  const reportBuffers = new BodyBuffers(Math.min(maxBodyBytes, 2 * MAX_REPORT_BYTES));
  // An export that outlives its client holds a segment's lines in memory: this shows one that never ends.
  let queryLogExportsOpen = 0;
  new Gauge({
    name: "clipper_query_log_exports_open", help: "Query log exports being sent (one whose client went away ends at once)",
    registers: [autoscalerMetrics.registry], collect() { this.set(queryLogExportsOpen); },
  });

  /**
   * Appends a frontend's batch to its application's log if that application logs when the
   * append's turn comes (a deletion committed meanwhile queues its log's removal first); records
   * not kept are counted as dropped. A report taken already (report-ledger.ts) changes nothing.
   */
  async function recordQueryLog(store: StateStore, body: Buffer): Promise<string> {
    if (!isUtf8(body)) throw badRequest("Request body is not valid UTF-8");
    const headerEnd = body.indexOf(0x0a);
    const report = parseBody(body.toString("utf8", 0, headerEnd < 0 ? body.length : headerEnd), QUERY_LOG_REPORT);
    const records = headerEnd < 0 ? 0 : reportRecords(body, headerEnd + 1);
    if (typeof records === "string") throw badRequest(`Error parsing the query log report: ${records}. Expected: ${QUERY_LOG_REPORT_TEXT}`);
    const app = report.app;
    if (records > 0 && app === undefined) throw badRequest(`Records need the header's "app". Expected: ${QUERY_LOG_REPORT_TEXT}`);
    const state = store.state;
    const id = report.report_id;
    const repeated = (taken: QueryLogReportId) => `Recorded 0 query log records: report ${taken.seq} of session ${taken.session} was recorded already`;
    const dropped = (name: string, count: number) => {
      if (count > 0 && own(state.applications, name)) queryLogDropped.set(name, (queryLogDropped.get(name) ?? 0) + count);
    };
    let written = 0;
    if (app === undefined || records === 0 || !own(state.query_log, app)) {
      if (id && !queryLogs.reports.take(id)) return repeated(id);
    } else {
      const appended = await queryLogs.append(app, body.subarray(headerEnd + 1), records, () => {
        const config = own(store.state.query_log, app);
        return config && config.max_mb * MIB;
      }, id);
      if (appended === REPEATED_REPORT) return repeated(id!);
      written = appended;
      dropped(app, records - written);
    }
    // Counted once the report is taken: a report refused or failed is sent again with its drop counts.
    for (const { app: name, count } of report.dropped) dropped(name, count);
    return `Recorded ${written} query log records`;
  }

  async function queryLogStatus(state: ClusterState, body: string): Promise<QueryLogStatus> {
    const { app_name } = parseBody(body, APP_NAME_BODY);
    requireApp(state, app_name);
    const config = own(state.query_log, app_name);
    const size = await queryLogs.size(app_name);
    return {
      app_name, sample: config?.sample ?? null, max_mb: config?.max_mb ?? null, ...size, dropped: queryLogDropped.get(app_name) ?? 0,
    };
  }

  /** The log as JSON lines, written as it is read (a log may hold many MiB). */
  async function exportQueryLog(state: ClusterState, body: string, res: ServerResponse): Promise<void> {
    const { app_name } = parseBody(body, APP_NAME_BODY);
    requireApp(state, app_name);
    res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
    queryLogExportsOpen++;
    try {
      for await (const query of queryLogs.exportQueries(app_name)) {
        if (res.destroyed) return;
        // A client that stops reading early (replay --limit) closes the connection: no "drain" follows, so "close" ends the wait too.
        if (!res.write(JSON.stringify(query) + "\n")) await drainedOrClosed(res);
      }
      res.end();
    } finally {
      queryLogExportsOpen--;
    }
  }

  function drainedOrClosed(res: ServerResponse): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        res.off("drain", done);
        res.off("close", done);
        resolve();
      };
      res.on("drain", done);
      res.on("close", done);
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = normalizePath(req.url);
    const store = await storeReady;
    // Browsers first (browser-guard.ts): a refused page learns nothing, not even whether a token is needed.
    const host = firstValue(req.headers.host);
    const token = firstValue(req.headers[TOKEN_HEADER]);
    if (!isHostAllowed(host, allowedHosts) && !presentsToken(auth.token, req.headers.authorization, token)) {
      throw new AdminError("forbidden", hostRefusal(host ?? ""));
    }
    // With every Host admitted ('*'), a rebound page's Origin matches its own Host: then no request
    // from a web page is admitted at all (the daemon's clients send no Origin).
    refuseForeignOrigin(req.headers, allowedHosts.any);
    // The dashboard's page and scripts hold no data, so a browser can load them without a token;
    // the page then sends the token the operator types in with each admin request it makes.
    if (isDashboardPath(path)) return dashboard.serve(req, res, path);
    if (!isOpenEndpoint(req.method, path) && !isAuthorized(auth, req.socket.remoteAddress, req.headers.authorization, token)) {
      throw new AdminError("unauthorized", "Missing or invalid token: send 'Authorization: Bearer <token>' (or 'X-Clipper-Token: <token>')", {
        "www-authenticate": 'Bearer realm="clipper-management"',
      });
    }
    const route = routes.get(path);
    if (!route) throw new AdminError("not_found", `No admin endpoint at ${path}`);
    if (req.method !== route.method) {
      throw new AdminError("method_not_allowed", `Method ${req.method} is not allowed on ${path}; use ${route.method}`, {
        allow: route.method,
      });
    }
    if (route.method === "POST") requireJsonContentType(req.headers, route.kind === "query_log_report" ? QUERY_LOG_REPORT_CONTENT_TYPE : undefined);
    switch (route.kind) {
      case "ping": {
        // Readiness: a daemon that refuses every write until it restarts is not ready (docs/operations.md).
        const halted = store.writesHaltedBecause;
        if (halted === undefined) return sendReply(res, { kind: "text", text: "PONG" });
        // Ping is open to everyone: only a client that may use the API learns the file and the disk's error.
        const detail = isAuthorized(auth, req.socket.remoteAddress, req.headers.authorization, token) ? `: ${halted}` : "";
        throw new AdminError("service_unavailable", `${WRITES_HALTED_PREFIX}${detail}`);
      }
      case "live":
        return sendReply(res, { kind: "text", text: "PONG" });
      case "watch":
        return watch.subscribe(req, res, store.state);
      case "applied":
        return sendReply(res, { kind: "json", value: replicas.applied(watch.daemon, store.state.revision) });
      case "events": {
        const { since, limit } = parseEventQuery(req.url);
        return sendReply(res, { kind: "json", value: autoscaleEvents.page(since, limit) });
      }
      case "record_event": {
        const event = parseBody(await readTextBody(req, maxBodyBytes), LOOP_EVENT);
        return sendReply(res, { kind: "json", value: { seq: recordEvent(event).seq } });
      }
      case "scale_request":
        // Not a state write: a request for the manager to act on, kept in memory (scale-requests.ts).
        return sendReply(res, { kind: "json", value: scaleRequests.request(store.state, await readTextBody(req, maxBodyBytes)) });
      case "scale_requests":
        return sendReply(res, { kind: "json", value: { requests: scaleRequests.list(store.state) } }, { "cache-control": "no-store" });
      case "complete_scale_request":
        return sendReply(res, { kind: "json", value: scaleRequests.complete(await readTextBody(req, maxBodyBytes)) });
      case "metrics":
        return send(res, 200, autoscalerMetrics.contentType, await autoscalerMetrics.text(), { "cache-control": "no-store" });
      case "report": {
        const report = parseReplicaReport(await readTextBody(req, maxBodyBytes));
        replicas.report(report);
        if (report.leaving) liveStats.forget(report.frontend_id);
        return sendReply(res, {
          kind: "text",
          text: `Recorded ${report.replicas.length} replicas for frontend '${report.frontend_id}'`,
        });
      }
      case "live_report": {
        const report = parseBody(await readTextBody(req, maxBodyBytes), LIVE_STATS_REPORT);
        liveStats.report(report);
        shadowStats.add(report.samples.flatMap((sample) => sample.shadows ?? []), store.state);
        return sendReply(res, { kind: "text", text: `Recorded ${report.samples.length} live stats samples for frontend '${report.frontend_id}'` });
      }
      case "query_log_report": {
        const body = await readBody(req, maxBodyBytes, reportBuffers.take);
        try {
          return sendReply(res, { kind: "text", text: await recordQueryLog(store, body) });
        } finally {
          reportBuffers.give(body); // appended (or refused): nothing refers to it any more
        }
      }
      case "query_log_status": {
        const body = await readTextBody(req, maxBodyBytes);
        return sendReply(res, { kind: "json", value: await queryLogStatus(store.state, body) });
      }
      case "query_log_export": {
        const body = await readTextBody(req, maxBodyBytes);
        return exportQueryLog(store.state, body, res);
      }
      case "live_stats":
        return sendReply(res, { kind: "json", value: liveStats.snapshot() }, { "cache-control": "no-store" });
      case "read": {
        const body = await readTextBody(req, maxBodyBytes);
        const operation = READ_OPERATIONS[route.path]!;
        const shadowFigures = shadowStats.figures.bind(shadowStats);
        const rolloutProgress = rollouts.progress.bind(rollouts);
        return sendReply(res, operation({ state: store.state, replicas: replicas.all(), shadowFigures, rolloutProgress }, body));
      }
      case "write": {
        const body = await readTextBody(req, maxBodyBytes);
        const operation = WRITE_OPERATIONS[route.path]!;
        // Resolves only after the change is on disk (or there was nothing to change).
        const { result: outcome, revision } = await store.updateWithRevision((state, links) => {
          const outcome = operation(state, body, replicas.all(), links);
          return { changes: outcome.changes, next: outcome.next, result: outcome };
        });
        // The log gets the text; the reply may hold more (a created API key).
        log.info({ path, revision }, outcome.text);
        // Recorded once durable: a refused or failed write is no event.
        if (outcome.event) recordEvent(outcome.event);
        // Clipper's body unchanged; the headers let a client wait until every frontend applied the change.
        return sendReply(res, outcome.reply ?? { kind: "text", text: outcome.text }, {
          [REVISION_HEADER]: String(revision),
          [DAEMON_INSTANCE_HEADER]: watch.daemon,
        });
      }
    }
  }

  const server = createGuardedServer(
    { headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS },
    {
      maxConnections: options.maxConnections ?? defaultMaxConnections(),
      errorAnswer: (_status, message) => ({ contentType: "text/plain; charset=utf-8", body: message }),
    },
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        const error = toAdminError(err);
        // A refused inconsistent state means an operation let through what it should have refused.
        if (error.status >= 500 || err instanceof StateInvalidError) log.error({ err, url: req.url }, "request failed");
        else log.debug({ url: req.url, status: error.status }, error.message);
        sendError(req, res, error);
      });
    },
  );

  await listen(server, options.port, options.host, log);

  let store: StateStore;
  try {
    store = await StateStore.open(options.stateDir, { openJournal: options.openJournal });
  } catch (err) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    throw err;
  }
  if (store.recovery) {
    const { problem, movedTo, journalMovedTo, restoredFrom, revision } = store.recovery;
    log.error({ problem, movedTo, journalMovedTo, restoredFrom, revision },
      `${problem}; moved it aside and restored revision ${revision} from ${restoredFrom}: changes after that revision are lost`);
  }
  for (const repair of store.repairs) log.warn({ repair }, "repaired what an earlier release left in the state");
  if (store.droppedTornBytes > 0) {
    log.warn({ bytes: store.droppedTornBytes }, "dropped the state journal's torn last line (a write cut short by a crash, never acknowledged)");
  }
  // A deleted application's log goes with it (and any left by a daemon killed before it removed them).
  await queryLogs.removeAllBut(new Set(Object.keys(store.state.applications)));
  store.onCommit((_state, delta) => {
    // From the delta, not by comparing every application name: a commit costs what it changed.
    for (const change of delta.changes) {
      if (change.field !== "applications" || change.value !== undefined) continue;
      const app = change.key;
      queryLogDropped.delete(app);
      queryLogs.remove(app).catch((err: unknown) => log.error({ err, app }, "could not delete the query log of a deleted application"));
    }
    try {
      watch.publish(delta);
    } catch (err) {
      log.error({ err }, "could not publish a state change to watchers");
    }
  });
  // Drives running rollouts (a daemon restart takes them up again: rollout-driver.ts).
  const rollouts = new RolloutDriver({
    state: () => store.state,
    update: (change) => store.update(change),
    figures: shadowStats.figures.bind(shadowStats),
    recordEvent: (event) => void recordEvent(event),
    now: options.now ?? Date.now,
  });
  rollouts.start(options.rolloutTickMs, (err) => log.error({ err }, "a rollout step could not be written"));
  storeOpened(store);

  const port = (server.address() as AddressInfo).port;
  const url = `http://${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}`;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      watch.close();
      await rollouts.stop();
      server.closeIdleConnections();
      // Let writes already queued reach the disk and their answers go out before cutting connections.
      await store.drain();
      await new Promise((resolve) => setImmediate(resolve));
      server.closeAllConnections();
      await closed;
      // Last: a write that slipped in before the connections were cut still reaches the journal.
      await store.close();
    })());

  return { url, port, close };
}

function normalizePath(rawUrl: string | undefined): string {
  let path: string;
  try {
    path = new URL(rawUrl ?? "/", "http://localhost").pathname;
  } catch {
    path = rawUrl ?? "/";
  }
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
}

/** `?since=SEQ&limit=N` of the events endpoint: whole numbers, else a 400 saying which. */
function parseEventQuery(rawUrl: string | undefined): { since: number; limit?: number } {
  let params: URLSearchParams;
  try {
    params = new URL(rawUrl ?? "/", "http://localhost").searchParams;
  } catch {
    throw badRequest("The request URL cannot be parsed");
  }
  const whole = (key: string, min: number): number | undefined => {
    const value = params.get(key);
    if (value === null) return undefined;
    if (!/^\d{1,15}$/.test(value) || Number(value) < min) throw badRequest(`${key} must be a whole number ≥ ${min}, got '${value}'`);
    return Number(value);
  };
  return { since: whole("since", 0) ?? 0, limit: whole("limit", 1) };
}

function toAdminError(err: unknown): AdminError {
  if (err instanceof AdminError) return err;
  if (err instanceof BodyTooLargeError) {
    return new AdminError("payload_too_large", `Request body is larger than the limit of ${err.limit} bytes`);
  }
  if (err instanceof BodyNotUtf8Error) return badRequest("Request body is not valid UTF-8");
  if (err instanceof StateInvalidError) return badRequest(`The change was refused: ${err.message}`);
  if (err instanceof StateWritesHaltedError) return new AdminError("service_unavailable", `The change was not applied: ${err.message}`);
  if (err instanceof StatePersistError) {
    return new AdminError("internal", `The change was not applied: ${err.message}`);
  }
  // Never "not applied": the next start may find it on disk (state-journal.ts). The header lets clients tell.
  if (err instanceof StateOutcomeUnknownError) return new AdminError("internal", err.message, { [WRITE_OUTCOME_HEADER]: WRITE_OUTCOME_UNKNOWN });
  return new AdminError("internal", `Internal error: ${(err as Error)?.message ?? String(err)}`);
}

function sendReply(res: ServerResponse, reply: Reply, headers: Record<string, string> = {}): void {
  if (reply.kind === "text") send(res, 200, "text/plain; charset=utf-8", reply.text, headers);
  else send(res, 200, "application/json", JSON.stringify(reply.value), headers);
}

function sendError(req: IncomingMessage, res: ServerResponse, error: AdminError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // An answer before the whole upload arrived closes the connection after a bounded drain (http-guard.ts).
  for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
  send(res, error.status, "text/plain; charset=utf-8", error.message);
}

function send(res: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  if (res.destroyed || res.writableEnded) return;
  res.writeHead(status, { ...headers, "content-type": contentType, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** A header sent more than once arrives as an array: only the first value counts. */
function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
