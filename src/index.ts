/** The library: `import { ClipperConnection } from "clipper"`. */
export { ClipperConnection, DEFAULT_CLUSTER_OPTIONS, parsePredictSpec } from "./connection.js";
export type { ConnectOptions, DeployModelOptions, ModelInfo, PolicyInput, RegisterApplicationOptions, PredictReply } from "./connection.js";
export { formatPolicy, parsePolicySpec, PolicySpecError } from "./policy-spec.js";
export { AdminClient } from "./admin-client.js";
export { ClipperError, AdminApiError, ERROR_CODES } from "./errors.js";
export type { ErrorCode } from "./errors.js";
export { createManager, MANAGER_KINDS } from "./managers/index.js";
export { LocalContainerManager } from "./managers/local/local-manager.js";
export { DockerContainerManager } from "./managers/docker/docker-manager.js";
export type * from "./managers/container-manager.js";
export { INPUT_TYPES, canonicalInputType } from "../runtime/shared/input-types.js";
export type { InputType } from "../runtime/shared/input-types.js";
export type { AppRecord, ModelVersionRecord, PolicyConfig, ReplicaRecord } from "../runtime/shared/state.js";
