/** The autoscaler's view of a cluster through the management daemon's admin API, every answer checked. */
import { z } from "zod";
import {
  AutoscalingConfigSchema, type AutoscaleEventInput, COMPLETE_SCALE_REQUEST_PATH, RECORD_AUTOSCALER_EVENT_PATH, type ScaleRequest,
  scaleRequestCompletion, ScaleRequestListSchema, SCALE_REQUESTS_PATH,
} from "../../runtime/shared/autoscaling.js";
import { LIVE_STATS_PATH, type LiveStats, LiveStatsSchema } from "../../runtime/shared/live-stats.js";
import type { AdminClient } from "../admin-client.js";
import { ClipperError } from "../errors.js";
import type { AutoscaledVersion, AutoscaleSource } from "./loop.js";

const ModelsSchema = z.array(z.object({
  model_name: z.string(),
  model_version: z.string(),
  is_current_version: z.boolean(),
  autoscaling: AutoscalingConfigSchema.optional(),
}));

const AppsSchema = z.array(z.object({
  name: z.string(),
  latency_slo_micros: z.number().nonnegative(),
  linked_models: z.array(z.string()),
}));

function checked<T>(path: string, schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new ClipperError("ADMIN_REJECTED", `the management daemon answered ${path} with an unexpected body`);
  return result.data;
}

export class AdminAutoscaleSource implements AutoscaleSource {
  constructor(private readonly admin: AdminClient) {}

  async autoscaled(): Promise<AutoscaledVersion[]> {
    const path = "/admin/get_all_models";
    const models = checked(path, ModelsSchema, await this.admin.postJson(path, { verbose: true }));
    return models.flatMap((m) => m.autoscaling
      ? [{ model: m.model_name, version: m.model_version, current: m.is_current_version, config: m.autoscaling }]
      : []);
  }

  async applications(): Promise<{ name: string; sloMs: number; linkedModels: string[] }[]> {
    const path = "/admin/get_all_applications";
    const apps = checked(path, AppsSchema, await this.admin.postJson(path, { verbose: true }));
    return apps.map((a) => ({ name: a.name, sloMs: a.latency_slo_micros / 1000, linkedModels: a.linked_models }));
  }

  liveStats(): Promise<LiveStats> {
    return this.admin.getValidated(LIVE_STATS_PATH, LiveStatsSchema);
  }

  async recordEvent(event: AutoscaleEventInput): Promise<void> {
    await this.admin.postText(RECORD_AUTOSCALER_EVENT_PATH, event);
  }

  async scaleRequests(): Promise<ScaleRequest[]> {
    return (await this.admin.getValidated(SCALE_REQUESTS_PATH, ScaleRequestListSchema)).requests;
  }

  async completeScaleRequest(request: ScaleRequest, outcome: { from: number } | { error: string }): Promise<void> {
    await this.admin.postText(COMPLETE_SCALE_REQUEST_PATH, scaleRequestCompletion(request, outcome));
  }
}
