/**
 * Replay (docs/rollouts.md#replay-and-warm-up): recorded queries sent to one model version at a
 * fixed rate, their answers compared with the recorded outputs. Open loop: query i leaves at
 * start + i / rate whatever the answers before it, so a slow version shows as latency, not as a
 * slower replay; at most `maxInFlight` queries wait for answers at once, beyond which sending
 * waits (counted in `held_back`), so a stuck version cannot pile up requests without bound.
 *
 * How each recorded query counts:
 * - sent, then `answered` (the version gave an output) or an `error` (no output: a refusal, a
 *   timeout, a model failure, no connection); errors keep a few examples.
 * - answered records whose recorded answer was the model's are `compared`: `agree` or `disagree`
 *   (replay-request.ts says how outputs compare); a few disagreements are kept as examples.
 * - answered records whose recorded answer was the application's default output (`default: true`
 *   in the log: the model missed the SLO, failed, was shed...) have no model answer to compare
 *   with: they are counted in `recorded_default`, never as disagreements.
 * - records that cannot be sent at all (an input that does not fit the version's input type, an
 *   empty input) are counted in `unsendable`, never sent.
 * The agreement is agree / compared (null when nothing was compared). Latency percentiles are over
 * the answered queries, from the request sent to its answer, in milliseconds, nearest rank.
 */
import { percentile } from "../runtime/frontend/live-stats-collector.js";
import type { QueryRecord } from "../runtime/shared/query-log.js";
import type { SkippedLines } from "./recorded-queries.js";
import { sameOutput } from "./replay-request.js";

export const DEFAULT_REPLAY_RATE = 50;
export const MAX_REPLAY_RATE = 1_000_000;
/** Queries awaiting an answer at once, at most. */
export const DEFAULT_REPLAY_IN_FLIGHT = 32;
/** Examples of disagreements and of errors kept for the report, each. */
export const REPLAY_EXAMPLES = 5;
/** How long a value may be in an example before it is cut (inputs can be large). */
const EXAMPLE_CHARS = 300;

/** What one sent query came back with. */
export type SendOutcome =
  | { kind: "output"; text: string; latencyMs: number }
  | { kind: "error"; message: string };

/** A recorded query ready to send, or why it cannot be sent. */
export type PreparedQuery = { send(): Promise<SendOutcome> } | { unsendable: string };

export interface ReplayClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: ReplayClock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export interface ReplayProgress {
  sent: number;
  answered: number;
  errors: number;
  agree: number;
  disagree: number;
  in_flight: number;
}

export interface ReplayRunOptions {
  records: AsyncIterable<QueryRecord>;
  /** One recorded query as a request to the version; its send() never rejects (an error is an outcome). */
  prepare(record: QueryRecord): PreparedQuery;
  /** Queries per second. */
  rate: number;
  /** Send at most this many. */
  limit?: number;
  maxInFlight?: number;
  /** Called about every `progressMs` while running. */
  onProgress?(progress: ReplayProgress): void;
  progressMs?: number;
  /** Stops sending (what is in flight is still awaited); the report says `stopped`. */
  signal?: AbortSignal;
  clock?: ReplayClock;
}

export interface ReplayExample {
  query_id: number;
  input: string;
  recorded: string;
  replayed: string;
}

export interface ReplayFigures {
  sent: number;
  answered: number;
  errors: number;
  compared: number;
  agree: number;
  disagree: number;
  /** agree / compared; null when nothing was compared. */
  agreement: number | null;
  /** Answered queries whose recorded answer was the default output: not compared. */
  recorded_default: number;
  /** Records not sent: their input cannot be sent to the version. */
  unsendable: number;
  /** Times sending waited because maxInFlight queries were awaiting answers. */
  held_back: number;
  latency_ms: { p50: number; p90: number; p99: number } | null;
  disagreements: ReplayExample[];
  error_examples: Array<{ query_id: number; message: string }>;
  duration_s: number;
  /** The signal stopped the replay before the records ran out. */
  stopped: boolean;
}

/** The report: what was replayed where, and its figures. */
export interface ReplayReport extends ReplayFigures {
  app: string;
  model_name: string;
  model_version: string;
  source: string;
  rate: number;
  /** Lines of the source skipped before sending (invalid, another application). */
  skipped: SkippedLines;
}

function cut(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  return text.length > EXAMPLE_CHARS ? `${text.slice(0, EXAMPLE_CHARS - 3)}...` : text;
}

/** Replays the records; resolves once every sent query has its outcome. */
export async function runReplay(options: ReplayRunOptions): Promise<ReplayFigures> {
  const clock = options.clock ?? realClock;
  const maxInFlight = options.maxInFlight ?? DEFAULT_REPLAY_IN_FLIGHT;
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const interval = 1000 / options.rate;
  const f: ReplayFigures = {
    sent: 0, answered: 0, errors: 0, compared: 0, agree: 0, disagree: 0, agreement: null, recorded_default: 0, unsendable: 0,
    held_back: 0, latency_ms: null, disagreements: [], error_examples: [], duration_s: 0, stopped: false,
  };
  const latencies: number[] = [];
  const inFlight = new Set<Promise<void>>();
  const started = clock.now();
  let lastProgress = started;
  const progressMs = options.progressMs ?? 500;
  const progress = () => options.onProgress?.({
    sent: f.sent, answered: f.answered, errors: f.errors, agree: f.agree, disagree: f.disagree, in_flight: inFlight.size,
  });

  const settle = (record: QueryRecord, outcome: SendOutcome): void => {
    if (outcome.kind === "error") {
      f.errors++;
      if (f.error_examples.length < REPLAY_EXAMPLES) f.error_examples.push({ query_id: record.query_id, message: cut(outcome.message) });
      return;
    }
    f.answered++;
    latencies.push(outcome.latencyMs);
    if (record.default) {
      f.recorded_default++;
      return;
    }
    f.compared++;
    if (sameOutput(record.output, outcome.text)) {
      f.agree++;
      return;
    }
    f.disagree++;
    if (f.disagreements.length < REPLAY_EXAMPLES) {
      f.disagreements.push({ query_id: record.query_id, input: cut(record.input), recorded: cut(record.output), replayed: cut(outcome.text) });
    }
  };

  let scheduled = 0;
  for await (const record of options.records) {
    if (scheduled >= limit) break;
    if (options.signal?.aborted) {
      f.stopped = true;
      break;
    }
    const query = options.prepare(record);
    if ("unsendable" in query) {
      f.unsendable++;
      continue;
    }
    const due = started + scheduled * interval;
    // Timers are not finer than a millisecond: above 1000 queries/s, queries leave in small bursts instead.
    const wait = due - clock.now();
    if (wait >= 1) await clock.sleep(wait);
    if (inFlight.size >= maxInFlight) {
      f.held_back++;
      while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    }
    if (options.signal?.aborted) {
      f.stopped = true;
      break;
    }
    scheduled++;
    f.sent++;
    const call: Promise<void> = query.send().then((outcome) => {
      settle(record, outcome);
    }, (err: unknown) => {
      // send() should not reject; if it does, the query still counts, as an error.
      settle(record, { kind: "error", message: err instanceof Error ? err.message : String(err) });
    }).finally(() => inFlight.delete(call));
    inFlight.add(call);
    if (clock.now() - lastProgress >= progressMs) {
      lastProgress = clock.now();
      progress();
    }
  }
  await Promise.all(inFlight);
  progress();
  latencies.sort((a, b) => a - b);
  const round = (x: number | null) => Math.round((x ?? 0) * 100) / 100;
  if (latencies.length > 0) {
    f.latency_ms = { p50: round(percentile(latencies, 0.5)), p90: round(percentile(latencies, 0.9)), p99: round(percentile(latencies, 0.99)) };
  }
  f.agreement = f.compared === 0 ? null : f.agree / f.compared;
  f.duration_s = Math.round(clock.now() - started) / 1000;
  return f;
}
