export { DockerContainerManager, MAX_REPLICAS, type DockerManagerOptions, type Probe } from "./docker-manager.js";
export { DockerodeEngine } from "./dockerode-engine.js";
export { EngineError, type DockerEngine } from "./engine.js";
export { LABEL, names, type StoredDeployment } from "./labels.js";
export { deviceRequests, type DeviceRequest } from "./specs.js";
