/** shadow and rollout status: a shadow version's setting and what it showed (docs/rollouts.md). */
import { ClipperConnection } from "../../connection.js";
import { ClipperError } from "../../errors.js";
import type { ShadowStatus } from "../../../runtime/shared/shadow.js";
import { emit, style, type OutputOptions } from "../output.js";

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

const ms = (value: number | null): string => (value === null ? "-" : `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`);

/** The status as the human view shows it (latencies are bucket bounds: within about 12%). */
export function describeStatus(status: ShadowStatus): string[] {
  const lines = [`${style.bold("model")} ${status.model_name}  ${style.bold("current version")} ${status.current_version ?? "none"}`];
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
