/**
 * The cluster configuration the management daemon owns and publishes to query frontends.
 * Field names follow Clipper's admin API so records can be returned as they are stored.
 */
import { z } from "zod";
import { INPUT_TYPES } from "./input-types.js";

export const AppRecordSchema = z.object({
  name: z.string(),
  input_type: z.enum(INPUT_TYPES),
  default_output: z.string(),
  latency_slo_micros: z.number().int().positive(),
  linked_models: z.array(z.string()),
});
export type AppRecord = z.infer<typeof AppRecordSchema>;

export const ModelVersionRecordSchema = z.object({
  model_name: z.string(),
  model_version: z.string(),
  labels: z.array(z.string()),
  input_type: z.enum(INPUT_TYPES),
  container_name: z.string(),
  model_data_path: z.string(),
  /** A fixed batch size, or -1 to let the frontend choose. */
  batch_size: z.number().int(),
});
export type ModelVersionRecord = z.infer<typeof ModelVersionRecordSchema>;

export const ModelRecordSchema = z.object({
  name: z.string(),
  current_version: z.string().nullable(),
  versions: z.record(z.string(), ModelVersionRecordSchema),
});
export type ModelRecord = z.infer<typeof ModelRecordSchema>;

export const ClusterStateSchema = z.object({
  /** Increases by one with every acknowledged write. */
  revision: z.number().int().nonnegative(),
  applications: z.record(z.string(), AppRecordSchema),
  models: z.record(z.string(), ModelRecordSchema),
});
export type ClusterState = z.infer<typeof ClusterStateSchema>;

export function emptyState(): ClusterState {
  return { revision: 0, applications: {}, models: {} };
}

/** A model replica connected to a query frontend, as get_all_containers reports it. */
export const ReplicaRecordSchema = z.object({
  model_id: z.string(),
  model_name: z.string(),
  model_version: z.string(),
  model_replica_id: z.number().int().nonnegative(),
  input_type: z.enum(INPUT_TYPES),
});
export type ReplicaRecord = z.infer<typeof ReplicaRecordSchema>;

/** What a query frontend reports to the management daemon (our extension of the admin API). */
export const ReplicaReportSchema = z.object({
  frontend_id: z.string().min(1),
  replicas: z.array(ReplicaRecordSchema),
});
export type ReplicaReport = z.infer<typeof ReplicaReportSchema>;

/** Paths of our extensions to Clipper's admin API. */
export const WATCH_PATH = "/admin/watch";
export const REPORT_REPLICAS_PATH = "/admin/report_replicas";
