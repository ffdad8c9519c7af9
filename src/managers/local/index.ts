export { LocalContainerManager, type LocalManagerOptions } from "./local-manager.js";
export {
  ClusterAlreadyRunningError,
  ClusterNotRunningError,
  ManagerError,
  PortInUseError,
  StartupError,
  type ManagerErrorCode,
} from "../errors.js";
export { clipperHome, clusterPaths, type ClusterPaths } from "./cluster-home.js";
export type { ComponentCommands, StatusResponse, ReplicaReport, ProcessReport } from "./schemas.js";
