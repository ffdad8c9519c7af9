/**
 * The query log (docs/rollouts.md#query-log): per application, a sample of the answered queries and
 * the feedback sent about them, kept by the management daemon as JSON lines under the cluster's
 * state directory. This module is the contract between the parts: the setting kept in the cluster
 * state (and so published to every frontend on the watch stream), the admin paths, and the batch a
 * frontend reports, which the daemon validates with these schemas.
 *
 * Names (applications) are user input: a report carries them as values, never as object keys.
 */
import { z } from "zod";

/** Admin write: `{"app_name", "sample", "max_mb"}` or `{"app_name", "off": true}`. */
export const SET_QUERY_LOG_PATH = "/admin/set_query_log";
/** Admin read: one application's setting and what its log holds. */
export const GET_QUERY_LOG_PATH = "/admin/get_query_log";
/** Admin read: the whole log as JSON lines, feedback joined to its query. */
export const EXPORT_QUERY_LOG_PATH = "/admin/export_query_log";
/** Where a frontend POSTs its batches of sampled queries and feedback (internal). */
export const REPORT_QUERY_LOG_PATH = "/admin/report_query_log";

export const DEFAULT_QUERY_LOG_MAX_MB = 64;
export const MAX_QUERY_LOG_MAX_MB = 16_384;

/** An application's query log setting, as the cluster state keeps it (absent: off). */
export const QueryLogConfigSchema = z.object({
  /** Share of answered queries recorded, in (0, 1]. */
  sample: z.number().gt(0).max(1),
  /** The log's files stay under this many MiB in all; the oldest go first. */
  max_mb: z.number().int().min(1).max(MAX_QUERY_LOG_MAX_MB),
});
export type QueryLogConfig = z.infer<typeof QueryLogConfigSchema>;

/** Bounds on one report, so that a lying frontend cannot make the daemon hold much. */
export const MAX_RECORDS_PER_REPORT = 5_000;
/** A frontend keeps each report under this many bytes of JSON (about: the daemon's body limit is 1 MiB by default). */
export const MAX_REPORT_BYTES = 512 * 1024;
const MAX_NAME = 256;
export const MAX_UID = 4096;
/** Explanations longer than this are cut (a model's error text can be long). */
export const MAX_EXPLANATION = 4096;
const name = z.string().min(1).max(MAX_NAME);
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/**
 * Arrays and objects nest at most this deep in a record's input or output. JSON.parse takes any
 * depth but JSON.stringify recurses, and a few thousand levels overflow its stack: a line a lying
 * frontend nested that deep would otherwise break every export of the log it sits in.
 */
export const MAX_JSON_DEPTH = 256;

/** Whether `value`'s arrays and objects nest at most `depth` deep (stops at the first level beyond). */
export function nestsWithin(value: unknown, depth = MAX_JSON_DEPTH): boolean {
  if (typeof value !== "object" || value === null) return true;
  if (depth === 0) return false;
  for (const item of Array.isArray(value) ? value : Object.values(value)) if (!nestsWithin(item, depth - 1)) return false;
  return true;
}

/** Any JSON value the log can write out again. */
const jsonValue = z.unknown().refine((value) => nestsWithin(value), `nests deeper than ${MAX_JSON_DEPTH} levels`);

/** One answered query, as the log stores it (`type: "query"`). */
export const QueryRecordSchema = z.object({
  type: z.literal("query"),
  app: name,
  query_id: count,
  /** The frontend (worker) that answered: query ids count per frontend. */
  frontend_id: name,
  /** When the answer was final, ISO 8601. */
  time: z.string().max(64),
  input: jsonValue,
  output: jsonValue,
  default: z.boolean(),
  /** Why the default output was answered (metrics' reason label), and Clipper's explanation. */
  default_reason: z.string().max(64).optional(),
  default_explanation: z.string().max(MAX_EXPLANATION).optional(),
  /** The model version that answered, when one did (absent for combined answers and most defaults). */
  model: name.optional(),
  model_version: name.optional(),
  /** Answered from the prediction cache. */
  cached: z.boolean(),
  latency_ms: z.number().nonnegative().finite(),
  uid: z.string().max(MAX_UID).optional(),
});
export type QueryRecord = z.infer<typeof QueryRecordSchema>;

/** Feedback (`/APP/update`) that named a query id (`type: "feedback"`). */
export const FeedbackRecordSchema = z.object({
  type: z.literal("feedback"),
  app: name,
  query_id: count,
  frontend_id: name,
  time: z.string().max(64),
  input: jsonValue,
  label: z.union([z.number(), z.string()]),
  uid: z.string().max(MAX_UID).optional(),
});
export type FeedbackRecord = z.infer<typeof FeedbackRecordSchema>;

export const QueryLogLineSchema = z.discriminatedUnion("type", [QueryRecordSchema, FeedbackRecordSchema]);
export type QueryLogLine = z.infer<typeof QueryLogLineSchema>;

/** A record as the frontend serialized it: one JSON object on one line, at most this many UTF-8 bytes (its newline aside). */
export const MAX_LINE_BYTES = 1024 * 1024;
/** A report is JSON lines, not one JSON document (see below). */
export const QUERY_LOG_REPORT_CONTENT_TYPE = "application/x-ndjson";

/**
 * A frontend's report is JSON lines: this header first, then the records of the header's `app`,
 * one JSON object per line, as the log stores them. The daemon parses the header, checks each
 * record's framing (valid UTF-8, one line, an object, bounded: `reportRecords`) and appends the
 * bytes as they came in one write, without parsing each record: on a 2-core machine parsing every
 * record costs the daemon about what the frontend spends answering a cache hit, CPU the frontend
 * then lacks (bench/query-log.ts measures each check). Records are parsed and validated against
 * QueryLogLineSchema where they are read (the export), which skips any line that does not fit —
 * not JSON, not a record, nested too deep to write out again, or naming another application than
 * its log's — so no line a frontend sends can break the log's reader.
 */
/**
 * A report's id, the same when a report is sent again (frontend/management-post.ts): the daemon
 * stores a report once per id (management/report-ledger.ts). `session` is random per frontend
 * process (a restarted frontend numbers from 1 again), `seq` counts its reports from 1.
 */
export const QueryLogReportIdSchema = z.object({
  session: z.string().regex(/^[A-Za-z0-9-]{8,64}$/, "8 to 64 letters, digits or '-'"),
  seq: count.min(1),
});
export type QueryLogReportId = z.infer<typeof QueryLogReportIdSchema>;

export const QueryLogReportHeaderSchema = z.object({
  frontend_id: name,
  /** Absent from an older frontend's report, which is then stored each time it arrives. */
  report_id: QueryLogReportIdSchema.optional(),
  /** The application of the records that follow (required when any do). */
  app: name.optional(),
  dropped: z.array(z.object({ app: name, count })).max(10_000),
});
export type QueryLogReportHeader = z.infer<typeof QueryLogReportHeaderSchema>;
export const QUERY_LOG_REPORT_TEXT =
  `a first line {"frontend_id" := string, "report_id" := {"session" := string, "seq" := int} (optional), "app" := string (when records follow), ` +
  `"dropped" := [{"app" := string, "count" := int}]}, ` +
  `then one JSON object per line (at most ${MAX_RECORDS_PER_REPORT})`;

/**
 * The daemon writes a report's id after its records (management/query-log-store.ts) as a line
 * starting with this, which no record may start with (`reportRecords`): a frontend cannot forge one.
 * Readers of the log skip it as they skip any line that is not a record.
 */
export const REPORT_ID_LINE_PREFIX = '{"query_log_report":';
const REPORT_ID_PREFIX_BYTES = Buffer.from(REPORT_ID_LINE_PREFIX);

/** The line the daemon writes after a report's records. */
export function reportIdLine(id: QueryLogReportId): string {
  return `${REPORT_ID_LINE_PREFIX}${JSON.stringify({ session: id.session, seq: id.seq })}}\n`;
}

/** The id a log line holds, when it is a report id line (`reportIdLine`). */
export function parseReportIdLine(line: string): QueryLogReportId | undefined {
  if (!line.startsWith(REPORT_ID_LINE_PREFIX)) return undefined;
  try {
    const parsed = QueryLogReportIdSchema.safeParse((JSON.parse(line) as { query_log_report?: unknown }).query_log_report);
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the line from `at` to `end` starts as a report id line does (its third byte first: records start `{"type"`). */
function startsReportIdLine(body: Buffer, at: number, end: number): boolean {
  const length = REPORT_ID_PREFIX_BYTES.length;
  return body[at + 2] === REPORT_ID_PREFIX_BYTES[2] && end - at >= length && body.compare(REPORT_ID_PREFIX_BYTES, 0, length, at, at + length) === 0;
}

/**
 * How many record lines a report body holds from `start` (after its header line), or what is wrong
 * with them. Every line ends with "\n", is a `{...}` of at most MAX_LINE_BYTES bytes, is no report
 * id line, and no "\r" appears (a reader splitting on either must find the same lines). One pass,
 * nothing allocated per line: the records are appended as they came.
 */
export function reportRecords(body: Buffer, start: number): number | string {
  if (start >= body.length) return 0;
  if (body[body.length - 1] !== 0x0a) return "the last record does not end with a newline";
  if (body.indexOf(0x0d, start) >= 0) return "records must not contain a carriage return";
  let records = 0;
  for (let at = start; at < body.length;) {
    const end = body.indexOf(0x0a, at);
    if (end - at < 2 || body[at] !== 0x7b || body[end - 1] !== 0x7d) return `record ${records + 1} is not one JSON object on one line`;
    if (end - at > MAX_LINE_BYTES) return `record ${records + 1} is longer than ${MAX_LINE_BYTES} bytes`;
    if (startsReportIdLine(body, at, end)) return `record ${records + 1} starts as the daemon's report id lines do (${REPORT_ID_LINE_PREFIX})`;
    if (records === MAX_RECORDS_PER_REPORT) return `a report carries at most ${MAX_RECORDS_PER_REPORT} records`;
    records++;
    at = end + 1;
  }
  return records;
}

/** The answer of GET_QUERY_LOG_PATH. */
export const QueryLogStatusSchema = z.object({
  app_name: z.string(),
  /** null: off. */
  sample: z.number().nullable(),
  max_mb: z.number().nullable(),
  bytes: count,
  records: count,
  /** Records frontends could not deliver (a full buffer, the daemon away) since the daemon started. */
  dropped: count,
});
export type QueryLogStatus = z.infer<typeof QueryLogStatusSchema>;

/** An exported query: its record, with every feedback that named it. */
export type ExportedQuery = QueryRecord & { feedback: Array<Pick<FeedbackRecord, "label" | "time" | "uid">> };
