/**
 * Create, read and replace for each kind of object the manager applies, so that `apply` is written
 * once over every kind instead of once per client method.
 */
import type { AppsV1Api, CoreV1Api, NetworkingV1Api, RbacAuthorizationV1Api, V1RoleBinding } from "@kubernetes/client-node";
import { ManagerError } from "../errors.js";

type Obj = Record<string, any>;

export interface ObjectOps {
  create(namespace: string, body: Obj): Promise<unknown>;
  read(namespace: string, name: string): Promise<Obj>;
  replace(namespace: string, name: string, body: Obj): Promise<unknown>;
}

export interface KubernetesApis {
  core: CoreV1Api;
  apps: AppsV1Api;
  networking: NetworkingV1Api;
  rbac: RbacAuthorizationV1Api;
}

export function objectOps({ core, apps, networking, rbac }: KubernetesApis, kind: string): ObjectOps {
  switch (kind) {
    case "Namespace": return {
      create: (_ns, body) => core.createNamespace({ body }),
      read: (_ns, name) => core.readNamespace({ name }),
      replace: (_ns, name, body) => core.replaceNamespace({ name, body }),
    };
    case "Secret": return {
      create: (namespace, body) => core.createNamespacedSecret({ namespace, body }),
      read: (namespace, name) => core.readNamespacedSecret({ namespace, name }),
      replace: (namespace, name, body) => core.replaceNamespacedSecret({ namespace, name, body }),
    };
    case "PersistentVolumeClaim": return {
      create: (namespace, body) => core.createNamespacedPersistentVolumeClaim({ namespace, body }),
      read: (namespace, name) => core.readNamespacedPersistentVolumeClaim({ namespace, name }),
      replace: (namespace, name, body) => core.replaceNamespacedPersistentVolumeClaim({ namespace, name, body }),
    };
    case "Service": return {
      create: (namespace, body) => core.createNamespacedService({ namespace, body }),
      read: (namespace, name) => core.readNamespacedService({ namespace, name }),
      replace: (namespace, name, body) => core.replaceNamespacedService({ namespace, name, body }),
    };
    case "Deployment": return {
      create: (namespace, body) => apps.createNamespacedDeployment({ namespace, body }),
      read: (namespace, name) => apps.readNamespacedDeployment({ namespace, name }),
      replace: (namespace, name, body) => apps.replaceNamespacedDeployment({ namespace, name, body }),
    };
    case "NetworkPolicy": return {
      create: (namespace, body) => networking.createNamespacedNetworkPolicy({ namespace, body }),
      read: (namespace, name) => networking.readNamespacedNetworkPolicy({ namespace, name }),
      replace: (namespace, name, body) => networking.replaceNamespacedNetworkPolicy({ namespace, name, body }),
    };
    case "ServiceAccount": return {
      create: (namespace, body) => core.createNamespacedServiceAccount({ namespace, body }),
      read: (namespace, name) => core.readNamespacedServiceAccount({ namespace, name }),
      replace: (namespace, name, body) => core.replaceNamespacedServiceAccount({ namespace, name, body }),
    };
    case "Role": return {
      create: (namespace, body) => rbac.createNamespacedRole({ namespace, body }),
      read: (namespace, name) => rbac.readNamespacedRole({ namespace, name }),
      replace: (namespace, name, body) => rbac.replaceNamespacedRole({ namespace, name, body }),
    };
    case "RoleBinding": return {
      create: (namespace, body) => rbac.createNamespacedRoleBinding({ namespace, body: body as V1RoleBinding }),
      read: (namespace, name) => rbac.readNamespacedRoleBinding({ namespace, name }),
      replace: (namespace, name, body) => rbac.replaceNamespacedRoleBinding({ namespace, name, body: body as V1RoleBinding }),
    };
    default: throw new ManagerError(`the Kubernetes manager cannot apply a ${kind}`, "INVALID_ARGUMENT");
  }
}
