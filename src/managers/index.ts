/**
 * Chooses a container manager by kind. Imports are lazy so that a command which never touches
 * Docker or Kubernetes does not load their SDKs.
 */
import type { ContainerManager, ManagerKind } from "./container-manager.js";
import type { KubernetesManagerOptions } from "./kubernetes/kubernetes-manager.js";
import type { BuildProgress } from "../images/types.js";

/** Kubernetes settings: where the cluster lives, and (for start) what it is made of. */
export type KubernetesSettings = Omit<KubernetesManagerOptions, "cluster">;

export interface ManagerOptions {
  cluster: string;
  home?: string;
  python?: string;
  /** Docker: base image of the runtime image the frontends run from (it must hold Node 20). */
  runtimeBaseImage?: string;
  /** Docker: an existing runtime image to use instead of building one. */
  runtimeImage?: string;
  /** Docker: progress of the runtime image build. */
  onBuildProgress?: BuildProgress;
  kubernetes?: KubernetesSettings;
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
        ...(options.onBuildProgress ? { onProgress: options.onBuildProgress } : {}),
      });
    }
    case "kubernetes": {
      const { KubernetesContainerManager } = await import("./kubernetes/kubernetes-manager.js");
      return KubernetesContainerManager.create({ ...options.kubernetes, cluster: options.cluster });
    }
  }
}
