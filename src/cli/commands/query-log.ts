/** query-log: an application's query log — sample, bound, switch off, show, export (docs/rollouts.md#query-log). */
import { ClipperConnection } from "../../connection.js";
import { ClipperError } from "../../errors.js";
import type { QueryLogStatus } from "../../../runtime/shared/query-log.js";
import { emit, style, type OutputOptions } from "../output.js";

export interface QueryLogFlags extends OutputOptions {
  cluster?: string;
  sample?: number;
  maxMb?: number;
  off?: boolean;
  export?: string;
}

/** The log's state in one line per fact. */
export function describeStatus(s: QueryLogStatus): string[] {
  const setting = s.sample === null
    ? style.dim("off")
    : style.bold(`sampling ${+(s.sample * 100).toPrecision(6)}% of queries, at most ${s.max_mb} MiB`);
  return [
    `query log of '${s.app_name}': ${setting}`,
    `  held: ${s.records} records, ${(s.bytes / (1024 * 1024)).toFixed(2)} MiB`,
    `  dropped: ${s.dropped} records ${style.dim("(frontend buffer full or daemon away, since the daemon started)")}`,
  ];
}

export async function queryLog(app: string, flags: QueryLogFlags): Promise<void> {
  if (flags.maxMb !== undefined && flags.sample === undefined) {
    throw new ClipperError("USAGE", "--max-mb goes with --sample", `e.g. clipper query-log ${app} --sample 0.01 --max-mb ${flags.maxMb}`);
  }
  const conn = await ClipperConnection.connect({ cluster: flags.cluster });
  if (flags.export !== undefined) {
    const queries = await conn.exportQueryLog(app, flags.export);
    const message = `Wrote ${queries} queries of '${app}' to ${flags.export}`;
    emit(flags, { message, queries, file: flags.export }, style.ok(message));
    return;
  }
  let message: string | undefined;
  if (flags.off) message = await conn.setQueryLog(app, { off: true });
  else if (flags.sample !== undefined) message = await conn.setQueryLog(app, { sample: flags.sample, maxMb: flags.maxMb });
  const status = await conn.getQueryLog(app);
  emit(flags, message === undefined ? status : { message, ...status }, [...(message ? [style.ok(message)] : []), ...describeStatus(status)]);
}
