/** replay: recorded queries of an application sent to one model version, answers compared (docs/rollouts.md#replay-and-warm-up). */
import { ClipperConnection, parseReplayTarget } from "../../connection.js";
import { ClipperError } from "../../errors.js";
import type { ReplayProgress, ReplayReport } from "../../replay.js";
import { emit, style, type OutputOptions } from "../output.js";
import { progress } from "../progress.js";

export interface ReplayFlags extends OutputOptions {
  cluster?: string;
  from?: string;
  log?: boolean;
  to: string;
  rate?: number;
  limit?: number;
  apiKey?: string;
}

const percent = (share: number) => `${+(share * 100).toFixed(1)}%`;

function progressLine(p: ReplayProgress): string {
  const compared = p.agree + p.disagree;
  return `replay: ${p.sent} sent, ${p.answered} answered, ${p.errors} errors` +
    (compared > 0 ? `, agreement ${percent(p.agree / compared)} of ${compared}` : "");
}

/** The report in a few lines. */
export function describeReport(r: ReplayReport): string[] {
  const skipped = r.skipped.invalid + r.skipped.other_app + r.unsendable;
  const lines = [
    `replayed ${r.source} to ${r.model_name}:${r.model_version} at ${r.rate} queries/s in ${r.duration_s} s${r.stopped ? " (stopped)" : ""}`,
    `  queries    ${r.sent} sent, ${r.answered} answered, ${r.errors} errors` +
      (skipped > 0 ? `; skipped ${r.skipped.invalid} invalid lines, ${r.skipped.other_app} of other applications, ${r.unsendable} unsendable inputs` : ""),
    `  agreement  ${r.agreement === null ? "none compared" : `${style.bold(percent(r.agreement))} of ${r.compared} (${r.agree} agree, ${r.disagree} disagree)`}` +
      (r.recorded_default > 0 ? style.dim(`; ${r.recorded_default} recorded default outputs not compared`) : ""),
    `  latency    ${r.latency_ms ? `p50 ${r.latency_ms.p50} ms, p90 ${r.latency_ms.p90} ms, p99 ${r.latency_ms.p99} ms` : "none answered"}`,
  ];
  for (const d of r.disagreements) lines.push(`  disagree   query ${d.query_id}: input ${d.input}: recorded ${d.recorded}, replayed ${d.replayed}`);
  for (const e of r.error_examples) lines.push(`  error      query ${e.query_id}: ${e.message}`);
  return lines;
}

export async function replay(app: string, flags: ReplayFlags): Promise<void> {
  if ((flags.from === undefined) === (flags.log !== true)) {
    throw new ClipperError("USAGE", "give the recorded queries with either --from FILE or --log", `e.g. clipper replay ${app} --log --to m:2`);
  }
  const to = parseReplayTarget(flags.to);
  const conn = await ClipperConnection.connect({ cluster: flags.cluster });
  const shown = progress(`replaying to ${flags.to}`, flags);
  // Ctrl-C stops sending; the queries in flight are awaited and the report printed.
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  let report: ReplayReport;
  try {
    report = await conn.replayQueries(app, {
      from: flags.from === undefined ? { log: true } : { file: flags.from },
      to,
      ...(flags.rate === undefined ? {} : { rate: flags.rate }),
      ...(flags.limit === undefined ? {} : { limit: flags.limit }),
      ...(flags.apiKey ? { apiKey: flags.apiKey } : {}),
      onProgress: (p) => shown.update(progressLine(p)),
      signal: stop.signal,
    });
  } catch (err) {
    shown.fail("replay failed");
    throw err;
  } finally {
    process.off("SIGINT", onSignal);
  }
  shown.succeed(`${report.sent} queries replayed`);
  emit(flags, report, describeReport(report));
}
