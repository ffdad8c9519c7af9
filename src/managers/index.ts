/**
 * Chooses a container manager by kind. Imports are lazy so that a command which never touches
 * Docker or Kubernetes does not load their SDKs.
 */
import { ClipperError } from "../errors.js";
import type { ContainerManager, ManagerKind } from "./container-manager.js";

export interface ManagerOptions {
  cluster: string;
  home?: string;
  python?: string;
  /** Docker: base image of the runtime image the frontends run from (it must hold Node 20). */
  runtimeBaseImage?: string;
  /** Docker: an existing runtime image to use instead of building one. */
  runtimeImage?: string;
}

export const MANAGER_KINDS: readonly ManagerKind[] = ["local", "docker", "kubernetes"];

export async function createManager(kind: ManagerKind, options: ManagerOptions): Promise<ContainerManager> {
  switch (kind) {
    case "local": {
      const { LocalContainerManager } = await import("./local/local-manager.js");
      return new LocalContainerManager(options);
    }
    case "docker": {
      const { DockerContainerManager } = await import("./docker/docker-manager.js");
      return new DockerContainerManager({
        cluster: options.cluster,
        ...(options.runtimeBaseImage ? { runtimeBaseImage: options.runtimeBaseImage } : {}),
        ...(options.runtimeImage ? { runtimeImage: options.runtimeImage } : {}),
      });
    }
    case "kubernetes":
      throw new ClipperError("USAGE", "the kubernetes manager is not available yet: in this release it only prints manifests (`clipper start --manager kubernetes --dry-run -o yaml`)", "use --manager local or docker to run a cluster; see docs/kubernetes.md");
  }
}
