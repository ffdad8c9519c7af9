/**
 * Clipper's query semantics: find the application's linked model and version, send each input to
 * that version's queue, and answer with the model's output or the application's default output
 * (with Clipper's exact explanations) when no replica is connected or the SLO runs out.
 */
import { encodeInput, InputTypeError } from "../shared/input-types.js";
import type { AppRecord, ClusterState } from "../shared/state.js";
import type { Dispatcher, ModelResult } from "./dispatcher.js";
import type { DefaultReason, FrontendMetrics } from "./metrics.js";

export const NO_CONNECTED_MODELS = "No connected models found for query";
export const SLO_MISSED = "Failed to retrieve a prediction response within the specified latency SLO";
export const MODEL_FAILED = "The model failed to produce a prediction";

export interface QueryResult {
  query_id: number;
  output: unknown;
  default: boolean;
  default_explanation?: string;
}

/** An error the HTTP layer turns into a JSON error response. */
export class QueryError extends Error {
  constructor(readonly status: number, readonly error: string, readonly cause_: string) {
    super(`${error}: ${cause_}`);
  }
}

/** A model output (or default output) that parses as JSON is embedded as JSON, else as a string. */
export function embedOutput(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export interface ParsedQuery {
  inputs: unknown[];
  /** Whether the body used input_batch (which answers batch_predictions for more than one). */
  batch: boolean;
  version?: string;
}

/** Validates a predict body's shape (not yet its input type). */
export function parsePredictBody(body: unknown): ParsedQuery {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new QueryError(400, "Json error", "the request body must be a JSON object with \"input\" or \"input_batch\"");
  }
  const record = body as Record<string, unknown>;
  const version = record.version;
  if (version !== undefined && typeof version !== "string") {
    throw new QueryError(400, "Json error", "\"version\" must be a string");
  }
  if ("input" in record && "input_batch" in record) {
    throw new QueryError(400, "Json error", "send either \"input\" or \"input_batch\", not both");
  }
  if ("input" in record) return { inputs: [record.input], batch: false, version };
  if ("input_batch" in record) {
    const batch = record.input_batch;
    if (!Array.isArray(batch) || batch.length === 0) {
      throw new QueryError(400, "Json error", "\"input_batch\" must be a non-empty JSON array of inputs");
    }
    return { inputs: batch, batch: true, version };
  }
  throw new QueryError(400, "Json error", "the request body must have an \"input\" or an \"input_batch\" key");
}

export interface QueryProcessorOptions {
  dispatcher: Dispatcher;
  metrics: FrontendMetrics;
  state(): ClusterState | undefined;
  now?: () => number;
}

export class QueryProcessor {
  private nextQueryId = 0;
  private readonly now: () => number;

  constructor(private readonly options: QueryProcessorOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  application(name: string): AppRecord {
    const app = this.options.state()?.applications[name];
    if (!app) throw new QueryError(404, "Unknown application", `No application named '${name}' is registered`);
    return app;
  }

  /** Answers one predict request: a single result, or several for input_batch. */
  async predict(appName: string, body: unknown): Promise<QueryResult | { batch_predictions: QueryResult[] }> {
    const started = this.now();
    const app = this.application(appName);
    const query = parsePredictBody(body);
    const inputs = query.inputs.map((input, i) => {
      try {
        return encodeInput(app.input_type, input);
      } catch (err) {
        if (!(err instanceof InputTypeError)) throw err;
        const where = query.batch ? `input_batch[${i}]: ` : "";
        throw new QueryError(400, "Json error", `${where}${err.message}`);
      }
    });
    const target = this.resolveTarget(app, query.version);
    const results = await Promise.all(inputs.map((input) => this.predictOne(app, target, input, started)));
    return query.batch && results.length > 1 ? { batch_predictions: results } : results[0]!;
  }

  /** The model version that serves an application, or undefined when none is linked and current. */
  private resolveTarget(app: AppRecord, pinned: string | undefined): { name: string; version: string } | undefined {
    const modelName = app.linked_models[0];
    const model = modelName === undefined ? undefined : this.options.state()?.models[modelName];
    if (pinned !== undefined) {
      if (!model || !(pinned in model.versions)) {
        throw new QueryError(400, "Query processing error", `Requested version: ${pinned} does not exist for model: ${modelName ?? ""}`);
      }
      return { name: model.name, version: pinned };
    }
    if (!model || model.current_version === null) return undefined;
    return { name: model.name, version: model.current_version };
  }

  private async predictOne(
    app: AppRecord,
    target: { name: string; version: string } | undefined,
    input: Buffer,
    started: number,
  ): Promise<QueryResult> {
    const queryId = this.nextQueryId++;
    const finish = (result: QueryResult, reason?: DefaultReason): QueryResult => {
      this.options.metrics.query(app.name, (this.now() - started) / 1000, reason);
      return result;
    };
    const fallback = (explanation: string): QueryResult => ({
      query_id: queryId,
      output: embedOutput(app.default_output),
      default: true,
      default_explanation: explanation,
    });
    const { dispatcher } = this.options;
    if (!target || dispatcher.liveReplicaCount(target.name, target.version) === 0) {
      return finish(fallback(NO_CONNECTED_MODELS), "no_connected_models");
    }
    const deadline = started + app.latency_slo_micros / 1000;
    const result = await new Promise<ModelResult | "timeout">((resolve) => {
      const task = {
        input,
        inputType: app.input_type,
        deadline,
        enqueuedAt: this.now(),
        settled: false,
        resolve: (r: ModelResult) => {
          if (task.settled) return;
          task.settled = true;
          clearTimeout(timer);
          resolve(r);
        },
      };
      const timer = setTimeout(() => {
        task.settled = true;
        resolve("timeout");
      }, Math.max(0, deadline - this.now()));
      dispatcher.submit(target.name, target.version, task);
    });
    if (result === "timeout") return finish(fallback(SLO_MISSED), "slo_missed");
    if (!result.ok) return finish(fallback(`${MODEL_FAILED}: ${result.reason}`), "model_error");
    return finish({ query_id: queryId, output: embedOutput(result.output), default: false });
  }

  /** Feedback (`/update`): validated and acknowledged; the default policy learns nothing from it. */
  update(appName: string, body: unknown): { feedback_accepted: true } {
    const app = this.application(appName);
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new QueryError(400, "Json error", "the request body must be a JSON object with \"uid\", \"input\" and \"label\"");
    }
    const record = body as Record<string, unknown>;
    for (const key of ["uid", "input", "label"]) {
      if (!(key in record)) throw new QueryError(400, "Json error", `the request body must have a "${key}" key`);
    }
    try {
      encodeInput(app.input_type, record.input);
    } catch (err) {
      if (err instanceof InputTypeError) throw new QueryError(400, "Json error", err.message);
      throw err;
    }
    if (typeof record.label !== "number" && typeof record.label !== "string") {
      throw new QueryError(400, "Json error", "\"label\" must be a number or a string");
    }
    return { feedback_accepted: true };
  }
}
