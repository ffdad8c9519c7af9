/** Small cluster states for the state store's tests (files and daemon). */
import { dict } from "../../runtime/shared/dict.js";
import { type AppRecord, type ClusterState, emptyState, type ModelVersionRecord, type ReplicaRecord } from "../../runtime/shared/state.js";

export const appRecord = (name: string, linked: string[] = [], inputType: AppRecord["input_type"] = "doubles"): AppRecord => ({
  name, input_type: inputType, default_output: "-1", latency_slo_micros: 1000, linked_models: linked,
});

export const versionRecord = (model: string, version: string, inputType: ModelVersionRecord["input_type"] = "doubles"): ModelVersionRecord => ({
  model_name: model, model_version: version, labels: [], input_type: inputType, container_name: "c", model_data_path: "p", batch_size: -1,
});

/** app `a` links model `m` (versions 1 and 2, current 2). */
export function consistent(): ClusterState {
  const state = emptyState();
  state.applications.a = appRecord("a", ["m"]);
  state.models.m = { name: "m", current_version: "2", versions: dict([["1", versionRecord("m", "1")], ["2", versionRecord("m", "2")]]) };
  return state;
}

/** A replica record as a frontend reports it. */
export const replicaRecord = (name: string, version: string, id: number): ReplicaRecord => ({
  model_id: `${name}:${version}`, model_name: name, model_version: version, model_replica_id: id, input_type: "doubles",
});
