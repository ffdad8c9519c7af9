/** shadow, rollout and rollout status: a shadow version's setting and what it showed, gated rollouts (docs/rollouts.md). */
import { ClipperConnection, type RolloutOptions } from "../../connection.js";
import { ClipperError, ERROR_CODES } from "../../errors.js";
import type { RolloutStatus } from "../../../runtime/shared/rollout.js";
import type { ShadowStatus } from "../../../runtime/shared/shadow.js";
import { emit, style, type OutputOptions } from "../output.js";
import { progress } from "../progress.js";

export interface ShadowFlags extends OutputOptions {
  cluster?: string;
  version?: string;
  percent?: number;
  off?: boolean;
}

export async function shadow(model: string, flags: ShadowFlags): Promise<void> {
  if (!flags.off && flags.version === undefined) {
    throw new ClipperError("USAGE", "--version is required (or --off to end the shadow)", `e.g. clipper shadow ${model} --version 2 --percent 10`);
  }
  const conn = await ClipperConnection.connect({ cluster: flags.cluster });
  const message = flags.off ? await conn.endShadow(model) : await conn.setShadow(model, flags.version!, { percent: flags.percent });
  emit(flags, { message, status: await conn.getRolloutStatus(model) }, style.ok(message));
}

export async function rolloutStatus(model: string, flags: OutputOptions & { cluster?: string }): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: flags.cluster });
  const status = await conn.getRolloutStatus(model);
  emit(flags, status, describeStatus(status));
}

export interface RolloutFlags extends OutputOptions {
  cluster?: string;
  to?: string;
  steps?: number[];
  stepS?: number;
  minQueries?: number;
  maxP99Ms?: number;
  minAgreement?: number;
  maxDefaultRate?: number;
  detach?: boolean;
  abort?: boolean;
}

/** How often the CLI asks the daemon how a rollout it follows is going. */
const FOLLOW_POLL_MS = 500;

/**
 * Starts a rollout and follows it until it ends (one progress line per change); Ctrl-C rolls it back.
 * With --detach it returns at once: the daemon drives the steps either way. Ends with exit code 10
 * (ROLLED_BACK) when the rollout did not reach 100%.
 */
export async function rollout(model: string | undefined, flags: RolloutFlags): Promise<void> {
  if (model === undefined) throw new ClipperError("USAGE", "missing the model to roll out", "e.g. clipper rollout m --to 2, or clipper rollout status m");
  if (!flags.abort && flags.to === undefined) throw new ClipperError("USAGE", "--to is required (or --abort to roll back the running rollout)", `e.g. clipper rollout ${model} --to 2 --max-p99-ms 50`);
  const conn = await ClipperConnection.connect({ cluster: flags.cluster });
  if (flags.abort) {
    const message = await conn.abortRollout(model);
    emit(flags, { message, status: await conn.getRolloutStatus(model) }, style.ok(message));
    return;
  }
  const options: RolloutOptions = {
    steps: flags.steps, step_s: flags.stepS, min_queries: flags.minQueries,
    max_p99_ms: flags.maxP99Ms, min_agreement: flags.minAgreement, max_default_rate: flags.maxDefaultRate,
  };
  const message = await conn.startRollout(model, flags.to!, options);
  if (flags.detach) {
    emit(flags, { message, status: await conn.getRolloutStatus(model) }, style.ok(message));
    return;
  }
  const shown = progress(message, flags);
  let interrupted = false;
  const abort = () => {
    interrupted = true;
    shown.update("interrupted: rolling back");
  };
  process.once("SIGINT", abort);
  let status: ShadowStatus;
  let last = "";
  try {
    for (;;) {
      if (interrupted) await conn.abortRollout(model).catch(() => undefined); // it may have ended meanwhile
      status = await conn.getRolloutStatus(model);
      const r = status.rollout;
      if (!r || r.phase !== "running" || r.to_version !== flags.to) break;
      const line = progressLine(r);
      if (line !== last) shown.update((last = line));
      await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
    }
  } finally {
    process.off("SIGINT", abort);
  }
  const r = status.rollout;
  const promoted = r?.phase === "promoted";
  const outcome = promoted ? `${model}:${r!.to_version} is the current version` : `rolled back: ${r?.reason ?? "ended"}`;
  if (promoted) shown.succeed(outcome);
  else shown.fail(outcome);
  emit(flags, { message, status }, describeStatus(status));
  if (!promoted) process.exitCode = ERROR_CODES.ROLLED_BACK.exitCode;
}

function progressLine(r: RolloutStatus): string {
  const p = r.progress;
  const seen = p ? `, ${p.step_queries}/${r.min_queries} queries, ${Math.floor(p.step_elapsed_s)}/${r.step_s} s` : "";
  return `step ${r.step + 1}/${r.steps.length - 1}: ${r.percent}% to version ${r.to_version}${seen}`;
}

function describeGates(r: RolloutStatus): string {
  const g = r.gates;
  const gates = [
    g.max_p99_ms !== undefined ? `p99 ≤ ${g.max_p99_ms} ms` : "",
    g.min_agreement !== undefined ? `agreement ≥ ${g.min_agreement}` : "",
    g.max_default_rate !== undefined ? `default rate ≤ ${g.max_default_rate}` : "",
  ].filter(Boolean);
  return gates.length > 0 ? gates.join(", ") : "none (only the step's time and query count)";
}

/** The rollout's lines of `rollout status`. */
function describeRollout(r: RolloutStatus): string[] {
  const head = r.phase === "running"
    ? `${style.bold("rollout")} to version ${r.to_version} from ${r.from_version}: ${progressLine(r)}`
    : `${style.bold("rollout")} to version ${r.to_version} from ${r.from_version}: ${r.phase.replace("_", " ")} (${r.reason ?? ""})`;
  return [head, `steps      ${r.steps.map((s) => `${s}%`).join(", ")} of ${r.step_s} s, at least ${r.min_queries} queries each`, `gates      ${describeGates(r)}`];
}

const ms = (value: number | null): string => (value === null ? "-" : `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`);

/** The status as the human view shows it (latencies are bucket bounds: within about 12%). */
export function describeStatus(status: ShadowStatus): string[] {
  const lines = [
    `${style.bold("model")} ${status.model_name}  ${style.bold("current version")} ${status.current_version ?? "none"}`,
    ...(status.rollout ? describeRollout(status.rollout) : []),
  ];
  const { shadow, figures } = status;
  if (!shadow || !figures) return [...lines, `no shadow version (set one with ${style.cmd(`clipper shadow ${status.model_name} --version V`)})`];
  const c = figures.counts;
  const agreement = figures.agreement === null ? "- (no copy answered yet)" : `${(figures.agreement * 100).toFixed(1)}% of ${figures.compared}`;
  return [
    ...lines,
    `${style.bold("shadow")} version ${shadow.model_version} on ${shadow.percent}% of live queries (since revision ${shadow.since_revision})`,
    `agreement  ${agreement}`,
    `copies     agree ${c.agree}, disagree ${c.disagree}, errors ${c.error}, timeouts ${c.timeout}, skipped ${c.skipped}`,
    `latency    shadow p50 ${ms(figures.shadow_p50_ms)}, p99 ${ms(figures.shadow_p99_ms)}; live p50 ${ms(figures.live_p50_ms)}, p99 ${ms(figures.live_p99_ms)}`,
  ];
}
