/**
 * The Open Inference Protocol v2 (KServe / Triton "v2" REST) on the query port, beside Clipper's
 * API: server and model metadata, health, and inference. A model is addressed directly (no
 * application); each row of the input tensor is one call through ModelCaller, so OIP requests
 * share the version's queue, batching and cache with Clipper's queries. Every error answers
 * `{"error": "..."}` — this module writes its own responses and never lets an error escape.
 */
import { own } from "../../shared/dict.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { Counter, Histogram, type Registry } from "prom-client";
import { BodyNotUtf8Error, BodyTooLargeError, readTextBody } from "../../shared/http-body.js";
import { DEFAULT_OIP_TIMEOUT_MS } from "../../shared/frontend-defaults.js";
import { packageRoot } from "../../shared/package-root.js";
import type { ClusterState, ModelRecord, ModelVersionRecord } from "../../shared/state.js";
import type { CallOutcome, ModelCaller } from "../model-caller.js";
import { OipError } from "./errors.js";
import { MetricNames, UNREGISTERED } from "../metric-names.js";
import {
  OUTPUT_NAME, inputMetadata, outputMetadata, outputsToTensor, parseInputTensor, tensorToInputs, type OutputTensor,
} from "./tensors.js";

export { OipError } from "./errors.js";

export const OIP_SERVER_NAME = "clipper";
export const OIP_PLATFORM = "clipper";

export interface OipOptions {
  caller: ModelCaller;
  state(): ClusterState | undefined;
  log: Logger;
  maxBodyBytes: number;
  /** Deadline for inference on a model no application links; else the smallest linked SLO applies. */
  defaultTimeoutMs?: number;
  /** Where to register the OIP metrics (the frontend's registry); none when omitted. */
  registry?: Registry;
  now?: () => number;
}

interface Target {
  model: ModelRecord;
  version: ModelVersionRecord;
}

interface Route {
  kind: "server" | "live" | "ready" | "model" | "model-ready" | "infer";
  name?: string;
  version?: string;
}

interface InferResponse {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: OutputTensor[];
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new OipError(400, `'${segment}' in the path is not valid URL encoding`);
  }
}

/** Parses a path under /v2 (trailing slash allowed); undefined when no OIP endpoint has it. */
export function parseOipPath(path: string): Route | undefined {
  const trimmed = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
  const parts = trimmed.slice(1).split("/");
  if (parts[0] !== "v2" || parts.some((p) => p === "")) return undefined;
  const rest = parts.slice(1);
  if (rest.length === 0) return { kind: "server" };
  if (rest[0] === "health" && rest.length === 2) {
    if (rest[1] === "live") return { kind: "live" };
    if (rest[1] === "ready") return { kind: "ready" };
    return undefined;
  }
  if (rest[0] !== "models" || rest.length < 2) return undefined;
  const name = decodeSegment(rest[1]!);
  let tail = rest.slice(2);
  let version: string | undefined;
  if (tail[0] === "versions") {
    if (tail.length < 2) return undefined;
    version = decodeSegment(tail[1]!);
    tail = tail.slice(2);
  }
  if (tail.length === 0) return { kind: "model", name, version };
  if (tail.length === 1 && tail[0] === "ready") return { kind: "model-ready", name, version };
  if (tail.length === 1 && tail[0] === "infer") return { kind: "infer", name, version };
  return undefined;
}

let serverVersion: string | undefined;
function packageVersion(): string {
  if (serverVersion === undefined) {
    try {
      serverVersion = String(JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")).version);
    } catch {
      serverVersion = "unknown";
    }
  }
  return serverVersion;
}

export class OipHandler {
  private readonly now: () => number;
  /** Label values only from the configuration's names (metric-names.ts). */
  private readonly names: MetricNames;
  private readonly requests?: Counter<"model" | "code">;
  private readonly latency?: Histogram<"model">;

  constructor(private readonly options: OipOptions) {
    this.now = options.now ?? (() => performance.now());
    this.names = MetricNames.of(() => options.state());
    if (options.registry) {
      const registers = [options.registry];
      this.requests = new Counter({
        name: "clipper_oip_infer_requests_total", help: "Open Inference Protocol inference requests, by model version and status code",
        labelNames: ["model", "code"], registers,
      });
      this.latency = new Histogram({
        name: "clipper_oip_infer_latency_seconds", help: "Open Inference Protocol inference latency per model version",
        labelNames: ["model"], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers,
      });
    }
  }

  /** Answers a request whose path starts with /v2; never rejects. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    let label = UNREGISTERED; // until the path names a model version of the configuration
    const started = this.now();
    let infer = false;
    try {
      const route = parseOipPath(path);
      if (!route) throw new OipError(404, `no Open Inference Protocol endpoint at ${path}`);
      infer = route.kind === "infer";
      const method = infer ? "POST" : "GET";
      if (req.method !== method) {
        res.setHeader("allow", method);
        throw new OipError(405, `${path} accepts ${method}`);
      }
      if (route.kind === "infer") {
        const body = await this.readJson(req);
        const target = this.resolve(route.name!, route.version);
        label = `${target.model.name}:${target.version.model_version}`;
        const answer = await this.infer(target, body);
        this.count(label, 200, started);
        return sendJson(res, 200, answer);
      }
      return this.answerGet(res, route);
    } catch (err) {
      if (res.headersSent) return void res.destroy();
      if (err instanceof BodyTooLargeError) {
        if (infer) this.count(label, 413, started);
        return sendJson(res, 413, { error: err.message });
      }
      if (err instanceof OipError) {
        if (infer) this.count(label, err.status, started);
        return sendJson(res, err.status, { error: err.message }, err.headers);
      }
      this.options.log.error({ err, url: req.url }, "open inference protocol request failed");
      if (infer) this.count(label, 500, started);
      sendJson(res, 500, { error: `internal error: ${err instanceof Error ? err.message : String(err)}` });
    }
  }

  private count(resolved: string, code: number, started: number): void {
    // Resolved when the request came: its version may have been deleted while it was answered.
    const model = this.names.version(resolved);
    this.requests?.inc({ model, code: String(code) });
    if (model !== UNREGISTERED) this.latency?.observe({ model }, (this.now() - started) / 1000);
  }

  private answerGet(res: ServerResponse, route: Route): void {
    switch (route.kind) {
      case "server":
        return sendJson(res, 200, { name: OIP_SERVER_NAME, version: packageVersion(), extensions: [] });
      case "live":
        return sendJson(res, 200, { live: true });
      case "ready":
        if (!this.options.state()) throw new OipError(400, "not ready: the frontend has not received its configuration yet");
        return sendJson(res, 200, { ready: true });
      case "model": {
        const { model, version } = this.resolve(route.name!, route.version);
        return sendJson(res, 200, {
          name: model.name,
          versions: route.version === undefined ? Object.keys(model.versions) : [version.model_version],
          platform: OIP_PLATFORM,
          inputs: [inputMetadata(version.input_type)],
          outputs: [outputMetadata()],
        });
      }
      case "model-ready": {
        const model = this.model(route.name!);
        if (route.version === undefined && model.current_version === null) {
          throw new OipError(400, `model '${model.name}' is not ready: it has no current version`);
        }
        const { version } = this.resolve(route.name!, route.version);
        const ref = { name: model.name, version: version.model_version };
        if (!this.options.caller.available(ref)) {
          throw new OipError(400, `model '${ref.name}' version '${ref.version}' is not ready: no replica is connected`);
        }
        return sendJson(res, 200, { name: ref.name, version: ref.version, ready: true });
      }
      case "infer":
        throw new OipError(405, "infer accepts POST");
    }
  }

  private async readJson(req: IncomingMessage): Promise<unknown> {
    if (req.headers["inference-header-content-length"] !== undefined) {
      throw new OipError(400, "the binary tensor data extension (Inference-Header-Content-Length) is not supported: send the request as JSON");
    }
    let text: string;
    try {
      text = await readTextBody(req, this.options.maxBodyBytes);
    } catch (err) {
      if (err instanceof BodyNotUtf8Error) throw new OipError(400, err.message);
      throw err;
    }
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new OipError(400, `the request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private model(name: string): ModelRecord {
    const state = this.options.state();
    if (!state) throw new OipError(503, "the frontend has not received its configuration yet");
    const model = own(state.models, name);
    if (!model) throw new OipError(404, `unknown model '${name}'`);
    return model;
  }

  /** The addressed version, or the model's current one when none is given. */
  private resolve(name: string, versionName?: string): Target {
    const model = this.model(name);
    const wanted = versionName ?? model.current_version;
    if (wanted === null) {
      throw new OipError(404, `model '${name}' has no current version: address one as /v2/models/${name}/versions/<version>`);
    }
    const version = own(model.versions, wanted);
    if (!version) throw new OipError(404, `model '${name}' has no version '${wanted}'`);
    return { model, version };
  }

  /** The smallest SLO of the applications linking the model, else the OIP default timeout. */
  private timeout(modelName: string): { ms: number; source: string } {
    const slos = Object.values(this.options.state()?.applications ?? {})
      .filter((app) => app.linked_models.includes(modelName))
      .map((app) => app.latency_slo_micros / 1000);
    if (slos.length > 0) return { ms: Math.min(...slos), source: "the smallest SLO of the applications linking it" };
    return { ms: this.options.defaultTimeoutMs ?? DEFAULT_OIP_TIMEOUT_MS, source: "the frontend's --oip-timeout-ms" };
  }

  private async infer(target: Target, body: unknown): Promise<InferResponse> {
    const started = this.now();
    if (!isRecord(body)) throw new OipError(400, "the request body must be a JSON object with \"inputs\"");
    const { id, inputs, outputs } = body;
    if (id !== undefined && typeof id !== "string") throw new OipError(400, "\"id\" must be a string");
    if (!Array.isArray(inputs) || inputs.length === 0) throw new OipError(400, "\"inputs\" must be a non-empty array of tensors");
    if (inputs.length > 1) {
      throw new OipError(400, `a Clipper model takes one input tensor; the request has ${inputs.length}`);
    }
    const asText = requestedOutputAsText(outputs);
    const model = { name: target.model.name, version: target.version.model_version };
    const inputType = target.version.input_type;
    const rows = tensorToInputs(parseInputTensor(inputs[0], "inputs[0]"), inputType, "inputs[0]");
    const label = `model '${model.name}' version '${model.version}'`;
    if (!this.options.caller.servable(model)) throw new OipError(503, `${label} has no connected replica`);

    const { ms, source } = this.timeout(model.name);
    const deadline = started + ms;
    const outcomes = await settle(rows.map((row) => this.options.caller.call(model, inputType, row, deadline)));
    const results: string[] = [];
    let timedOut = 0;
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome === undefined) continue;
      const kind: string = outcome.kind;
      if (outcome.kind === "output") results.push(outcome.output);
      else if (outcome.kind === "timeout") timedOut++;
      else if (outcome.kind === "failed") throw new OipError(500, `${label} failed on row ${i}: ${outcome.reason}`);
      else if (outcome.kind === "unavailable") throw new OipError(503, `${label} has no connected replica`);
      else if (outcome.kind === "cold_start") {
        throw new OipError(503, `${label} has no replica yet: starting from zero (none connected within ${ms} ms, ${source})`, { "retry-after": "1" });
      }
      else if (outcome.kind === "late") {
        throw new OipError(503, `${label} could not answer row ${i} within its deadline of ${ms} ms (${source}): `
          + `its measured batch latency is ${Math.round(outcome.latencyMs)} ms`, { "retry-after": "1" });
      }
      else if (outcome.kind === "shed") {
        throw new OipError(503, `${label} is overloaded: the frontend shed row ${i}, which could not be answered within its deadline`,
          { "retry-after": String(Math.max(1, Math.ceil(outcome.retryAfterSeconds))) });
      }
      else {
        const reason = (outcome as { reason?: unknown }).reason;
        throw new OipError(503, `${label} could not answer row ${i} (${kind}${typeof reason === "string" ? `: ${reason}` : ""})`);
      }
    }
    if (timedOut > 0) {
      throw new OipError(503, `${label} did not answer ${timedOut} of ${rows.length} rows within its deadline of ${ms} ms (${source})`);
    }
    return {
      model_name: model.name,
      model_version: model.version,
      ...(id !== undefined ? { id } : {}),
      outputs: [outputsToTensor(results, asText)],
    };
  }
}

/**
 * Validates the request's optional `outputs`: only "output" exists. Returns whether the client
 * asked for the raw strings (`parameters.content_type: "str"`). Other parameters (Triton's
 * `binary_data`) are ignored: the answer is always JSON, which their clients also read.
 */
function requestedOutputAsText(outputs: unknown): boolean {
  if (outputs === undefined) return false;
  if (!Array.isArray(outputs)) throw new OipError(400, "\"outputs\" must be an array of requested outputs");
  let asText = false;
  outputs.forEach((o, i) => {
    if (!isRecord(o) || typeof o.name !== "string") throw new OipError(400, `outputs[${i}] must be an object with a "name"`);
    if (o.name !== OUTPUT_NAME) throw new OipError(400, `outputs[${i}]: a Clipper model has one output, named "${OUTPUT_NAME}"; there is no "${o.name}"`);
    const parameters = o.parameters;
    if (parameters !== undefined && !isRecord(parameters)) throw new OipError(400, `outputs[${i}].parameters must be a JSON object`);
    if (parameters && "shared_memory_region" in parameters) {
      throw new OipError(400, `outputs[${i}] asks for the shared memory extension, which this server does not support`);
    }
    if (parameters?.content_type === "str") asText = true;
  });
  return asText;
}

/**
 * Every call's outcome, in order; returns early (with the rest undefined) at the first outcome that
 * is neither an output nor a timeout, since that alone decides the answer. Calls settle by their
 * deadline, so this does too.
 */
function settle(calls: Promise<CallOutcome>[]): Promise<Array<CallOutcome | undefined>> {
  return new Promise((resolve) => {
    const results = new Array<CallOutcome | undefined>(calls.length).fill(undefined);
    let pending = calls.length;
    calls.forEach((call, i) => {
      void call.then((outcome) => {
        results[i] = outcome;
        pending--;
        if (pending === 0 || (outcome.kind !== "output" && outcome.kind !== "timeout")) resolve(results);
      });
    });
  });
}
