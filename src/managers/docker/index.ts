export { DockerContainerManager, MAX_REPLICAS, type DockerManagerOptions } from "./docker-manager.js";
export { LABEL, names, type StoredDeployment } from "./labels.js";
export { deviceRequests, type DeviceRequest } from "./specs.js";
