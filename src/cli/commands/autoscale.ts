/** autoscale: set or switch off a model version's autoscaling (docs/autoscaling.md). */
import { ClipperConnection } from "../../connection.js";
import { ClipperError } from "../../errors.js";
import { emit, style, type OutputOptions } from "../output.js";

export interface AutoscaleFlags extends OutputOptions {
  cluster?: string;
  version?: string;
  min?: number;
  max?: number;
  targetQueuePerReplica?: number;
  scaleDownDelayS?: number;
  off?: boolean;
}

export async function autoscale(model: string, flags: AutoscaleFlags): Promise<void> {
  if (!flags.off && (flags.min === undefined || flags.max === undefined)) {
    throw new ClipperError("USAGE", "--min and --max are required (or --off to switch autoscaling off)",
      `e.g. clipper autoscale ${model} --min 1 --max 4`);
  }
  if (flags.min !== undefined && flags.max !== undefined && flags.min > flags.max) {
    throw new ClipperError("USAGE", `--min (${flags.min}) must not be above --max (${flags.max})`);
  }
  const conn = await ClipperConnection.connect({ cluster: flags.cluster });
  const message = flags.off
    ? await conn.setAutoscaling(model, { version: flags.version, off: true })
    : await conn.setAutoscaling(model, {
      version: flags.version, min: flags.min!, max: flags.max!,
      targetQueuePerReplica: flags.targetQueuePerReplica, scaleDownDelayS: flags.scaleDownDelayS,
    });
  const configured = flags.off ? [] : await conn.getAutoscaling(model);
  emit(flags, { message, autoscaling: configured }, style.ok(message));
}
