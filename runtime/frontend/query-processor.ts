/**
 * Clipper's query semantics: validate the body, encode each input for the application's input
 * type, let the application's selection policy answer, and shape the response exactly as Clipper
 * did (default outputs with Clipper's explanations, `batch_predictions` for several inputs).
 */
import { MAX_NAME } from "../shared/names.js";
import { own } from "../shared/dict.js";
import { encodeInput, InputTypeError, type InputType } from "../shared/input-types.js";
import type { AppRecord, ClusterState } from "../shared/state.js";
import type { FrontendMetrics } from "./metrics.js";
import type { ModelCaller } from "./model-caller.js";
import { QUERY_SHED } from "./policies/answers.js";
import { uidPoint } from "./policies/canary-policy.js";
import { userOf } from "./policies/common.js";
import { PolicyRegistry } from "./policies/index.js";
import type { PolicyAnswer, PolicyQuery, SelectionPolicy } from "./policies/policy.js";
import { QueryError } from "./query-errors.js";
import type { QueryLogRecorder } from "./query-log-recorder.js";
import { TextMemo } from "./text-memo.js";
import { embedOutput } from "../shared/embedded-output.js";

export { QueryError } from "./query-errors.js";
export { MODEL_FAILED, NO_CONNECTED_MODELS, QUERY_LATE, QUERY_SHED, SLO_MISSED } from "./policies/answers.js";

export interface QueryResult {
  query_id: number;
  output: unknown;
  default: boolean;
  default_explanation?: string;
  [extra: string]: unknown;
}

export { embedOutput } from "../shared/embedded-output.js";

export interface ParsedQuery {
  inputs: unknown[];
  /** Whether the body used input_batch (which answers batch_predictions for more than one). */
  batch: boolean;
  version?: string;
  uid?: string;
}

function requireObject(body: unknown, what: string): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new QueryError(400, "Json error", what);
  return body as Record<string, unknown>;
}

/** A uid may be a number (Clipper's) or a string; it selects per-user state. */
function optionalUid(record: Record<string, unknown>): string | undefined {
  const uid = record.uid;
  if (uid === undefined) return undefined;
  if ((typeof uid === "number" && Number.isFinite(uid)) || (typeof uid === "string" && uid !== "")) return String(uid);
  throw new QueryError(400, "Json error", "\"uid\" must be a number or a non-empty string");
}

/** Validates a predict body's shape (not yet its input type). */
export function parsePredictBody(body: unknown): ParsedQuery {
  const record = requireObject(body, "the request body must be a JSON object with \"input\" or \"input_batch\"");
  const version = record.version;
  if (version !== undefined && typeof version !== "string") {
    throw new QueryError(400, "Json error", "\"version\" must be a string");
  }
  const uid = optionalUid(record);
  if ("input" in record && "input_batch" in record) {
    throw new QueryError(400, "Json error", "send either \"input\" or \"input_batch\", not both");
  }
  if ("input" in record) return { inputs: [record.input], batch: false, version, uid };
  if ("input_batch" in record) {
    const batch = record.input_batch;
    if (!Array.isArray(batch) || batch.length === 0) {
      throw new QueryError(400, "Json error", "\"input_batch\" must be a non-empty JSON array of inputs");
    }
    return { inputs: batch, batch: true, version, uid };
  }
  throw new QueryError(400, "Json error", "the request body must have an \"input\" or an \"input_batch\" key");
}

export type PredictAnswer = QueryResult | { batch_predictions: QueryResult[] };

/** A predict request validated, its inputs encoded: what `answerNow` and `answer` take. */
export interface PreparedQuery {
  app: AppRecord;
  query: ParsedQuery;
  inputs: Buffer[];
  /** When processing began (the processor's clock, ms): deadlines and latency count from here. */
  started: number;
  models: ClusterState["models"];
  rollouts: ClusterState["rollouts"];
  /** The request's point for a gated rollout's split (policies/common.ts liveVersionOf), computed on first use. */
  rolloutPoint: () => number;
  policy: SelectionPolicy;
}

export interface QueryProcessorOptions {
  caller: ModelCaller;
  metrics: FrontendMetrics;
  state(): ClusterState | undefined;
  now?: () => number;
  /** The selection policies and their learned state (absent: in-memory state only). */
  policies?: PolicyRegistry;
  /** Where answered queries and feedback with a query id are offered to the query log (absent: none is logged). */
  queryLog?: QueryLogRecorder;
}


export class QueryProcessor {
  private nextQueryId = 0;
  /** Model output text -> `,"output":…,"default":false}`: toResult's answer for it, after its query id (answerNowJson). */
  private readonly answerTails = new TextMemo((output) => `,"output":${JSON.stringify(embedOutput(output))},"default":false}`);
  private readonly now: () => number;
  private readonly policies: PolicyRegistry;

  constructor(private readonly options: QueryProcessorOptions) {
    this.now = options.now ?? (() => performance.now());
    this.policies = options.policies ?? new PolicyRegistry();
  }

  application(name: string): AppRecord {
    // No such name can be registered (shared/names.ts): refused without a lookup, and quoted clipped.
    if (name.length > MAX_NAME) {
      throw new QueryError(404, "Unknown application", `No application named '${name.slice(0, MAX_NAME)}…' is registered: names have at most ${MAX_NAME} characters`);
    }
    const app = own(this.options.state()?.applications, name);
    if (!app) throw new QueryError(404, "Unknown application", `No application named '${name}' is registered`);
    return app;
  }

  /** Answers one predict request: a single result, or several for input_batch. */
  async predict(appName: string, body: unknown): Promise<PredictAnswer> {
    const prepared = this.prepare(appName, body);
    return this.answerNow(prepared) ?? this.answer(prepared);
  }

  /** Validates a predict request and encodes its inputs (throws the QueryError to answer). */
  prepare(appName: string, body: unknown): PreparedQuery {
    const started = this.now();
    const app = this.application(appName);
    const query = parsePredictBody(body);
    const inputs = query.inputs.map((input, i) => encodeFor(app.input_type, input, query.batch ? `input_batch[${i}]: ` : ""));
    const state = this.options.state();
    // Drawn once per request, so the cache fast path and the model call agree on the side; only
    // when a running rollout asks for it.
    let point: number | undefined;
    const rolloutPoint = () => {
      if (point === undefined) {
        const user = userOf(query.uid);
        point = user !== undefined ? uidPoint(app, user) : Math.random();
      }
      return point;
    };
    return { app, query, inputs, started, models: state?.models ?? {}, rollouts: state?.rollouts, rolloutPoint, policy: this.policies.forApp(app) };
  }

  /**
   * The fast path: `answer`'s result, when the policy knows it at once (a single input answered
   * from the prediction cache), with no promise and no tick; undefined otherwise (call `answer`).
   * Throws what `answer` would reject with.
   */
  answerNow(prepared: PreparedQuery): PredictAnswer | undefined {
    const answer = this.policyAnswerNow(prepared);
    return answer && this.finish(prepared, [answer]);
  }

  /**
   * `answerNow` as the JSON text the HTTP route sends (the same bytes as JSON.stringify of its
   * answer). A model's output from the cache comes back as the same string on every hit, so the
   * text after the query id is built once per output: no parse of the output, no answer object,
   * no stringify per query.
   */
  answerNowJson(prepared: PreparedQuery): string | undefined {
    const answer = this.policyAnswerNow(prepared);
    if (!answer) return undefined;
    if (answer.kind !== "output" || answer.extra) return JSON.stringify(this.finish(prepared, [answer]));
    const queryId = this.counted(prepared, 0, answer);
    return `{"query_id":${queryId}${this.answerTails.get(answer.output)}`;
  }

  private policyAnswerNow(prepared: PreparedQuery): PolicyAnswer | undefined {
    const { policy, inputs } = prepared;
    if (inputs.length !== 1 || !policy.answerNow) return undefined;
    return policy.answerNow(this.policyQuery(prepared, inputs[0]!));
  }

  /** The answer to a prepared query, asking its policy (and so the models) for each input. */
  async answer(prepared: PreparedQuery): Promise<PredictAnswer> {
    const { policy, inputs } = prepared;
    const ask = (input: Buffer) => policy.predict(this.policyQuery(prepared, input));
    // One input is the common case: skip Promise.all's extra allocation and tick.
    const answers = inputs.length === 1 ? [await ask(inputs[0]!)] : await Promise.all(inputs.map(ask));
    return this.finish(prepared, answers);
  }

  private policyQuery({ app, models, rollouts, rolloutPoint, query, started }: PreparedQuery, input: Buffer): PolicyQuery {
    return {
      app, models, inputType: app.input_type, input, deadline: started + app.latency_slo_micros / 1000,
      pinnedVersion: query.version, uid: query.uid, caller: this.options.caller, rollouts, rolloutPoint,
    };
  }

  private finish(prepared: PreparedQuery, answers: PolicyAnswer[]): PredictAnswer {
    const { app, query } = prepared;
    const results = answers.map((answer, i) => this.toResult(prepared, i, answer));
    // An application that asked for it hears 503 + Retry-After when every input was shed at admission.
    if (app.shed_with_503 && answers.every((a) => a.kind === "default" && a.reason === "overloaded")) {
      const retry = Math.max(1, ...answers.map((a) => (a.kind === "default" ? a.retryAfterSeconds ?? 1 : 1)));
      throw new QueryError(503, "Service unavailable", QUERY_SHED, { "retry-after": String(retry) });
    }
    return query.batch && results.length > 1 ? { batch_predictions: results } : results[0]!;
  }

  /** Takes the answer's query id and records the query in the metrics (and the query log, sampled). */
  private counted(prepared: PreparedQuery, index: number, answer: PolicyAnswer): number {
    const { app, started } = prepared;
    const seconds = (this.now() - started) / 1000;
    if (answer.kind === "output") this.options.metrics.query(app.name, seconds, undefined, answer.cached);
    else this.options.metrics.query(app.name, seconds, answer.reason);
    const queryId = this.nextQueryId++;
    const queryLog = this.options.queryLog;
    if (queryLog?.logs(app.name)) {
      queryLog.query({
        app: app.name, queryId, input: prepared.query.inputs[index], answer,
        defaultOutput: app.default_output, latencyMs: seconds * 1000, uid: prepared.query.uid,
      });
    }
    return queryId;
  }

  private toResult(prepared: PreparedQuery, index: number, answer: PolicyAnswer): QueryResult {
    const { app } = prepared;
    const queryId = this.counted(prepared, index, answer);
    if (answer.kind === "output") {
      return { query_id: queryId, output: embedOutput(answer.output), default: false, ...answer.extra };
    }
    return {
      query_id: queryId,
      output: embedOutput(app.default_output),
      default: true,
      default_explanation: answer.explanation,
      ...answer.extra,
    };
  }

  /** Feedback (`/update`): validated, then handed to the application's policy. */
  async update(appName: string, body: unknown): Promise<{ feedback_accepted: true }> {
    const app = this.application(appName);
    const record = requireObject(body, "the request body must be a JSON object with \"uid\", \"input\" and \"label\"");
    for (const key of ["uid", "input", "label"]) {
      if (!(key in record)) throw new QueryError(400, "Json error", `the request body must have a "${key}" key`);
    }
    const uid = optionalUid(record);
    const input = encodeFor(app.input_type, record.input, "");
    const label = record.label;
    if (typeof label !== "number" && typeof label !== "string") {
      throw new QueryError(400, "Json error", "\"label\" must be a number or a string");
    }
    // Ours, optional: the query_id of the answer this feedback is about, so the query log can join them.
    const queryId = record.query_id;
    if (queryId !== undefined && !(typeof queryId === "number" && Number.isSafeInteger(queryId) && queryId >= 0)) {
      throw new QueryError(400, "Json error", "\"query_id\" must be a whole number ≥ 0 (the query_id of the answer)");
    }
    await this.policies.forApp(app).feedback({
      app, models: this.options.state()?.models ?? {}, inputType: app.input_type, input, uid, label,
      deadline: this.now() + app.latency_slo_micros / 1000, caller: this.options.caller,
    });
    // Recorded once accepted: feedback the policy refused is no feedback.
    if (queryId !== undefined) this.options.queryLog?.feedback(app.name, queryId, record.input, label, uid);
    return { feedback_accepted: true };
  }
}

function encodeFor(type: InputType, input: unknown, where: string): Buffer {
  try {
    return encodeInput(type, input);
  } catch (err) {
    if (!(err instanceof InputTypeError)) throw err;
    throw new QueryError(400, "Json error", `${where}${err.message}`);
  }
}
