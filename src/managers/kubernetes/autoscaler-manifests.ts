/**
 * The autoscaler of a Kubernetes cluster (docs/autoscaling.md): a Deployment of one pod running the
 * autoscaler host (src/autoscaler/host-main.ts) under a ServiceAccount of its own, whose Role grants
 * exactly what that host calls: the scale subresource of Deployments, read and written
 * (readNamespacedDeploymentScale and replaceNamespacedDeploymentScale in KubernetesContainerManager
 * getNumReplicas and requestReplicas), and nothing else. It reads the cluster through the
 * management Service with the cluster's token, like the frontends.
 */
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import type { ILocalObjectReference } from "kubernetes-models/v1/LocalObjectReference";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { AUTOSCALER_COMMAND, autoscalerEnv, clusterLabels, INTERNAL_PORTS, TOKEN_DIR, TOKEN_FILE } from "../cluster-spec.js";
import { k8sNames } from "./names.js";

/** What the autoscaler's Role allows: what the host calls, and only that (a test holds the host to it). */
export const AUTOSCALER_RULES = [
  { apiGroups: ["apps"], resources: ["deployments/scale"], verbs: ["get", "update"] },
] as const;

/** Requests and limits of the autoscaler pod: one loop a second over a few admin answers. */
export const AUTOSCALER_RESOURCES = { requests: { cpu: "50m", memory: "96Mi" }, limits: { cpu: "500m", memory: "256Mi" } } as const;

export interface AutoscalerSpec {
  cluster: string;
  namespace: string;
  runtimeImage: string;
  /** Labels on every object besides the cluster's. */
  labels: Record<string, string>;
  /** The Secret holding the management token (key `token`), when the cluster has one. */
  tokenSecret?: string;
  imagePullSecrets?: ILocalObjectReference[];
}

/** The ServiceAccount, its Role and RoleBinding, then the Deployment (the order to apply them). */
export function autoscalerManifests(spec: AutoscalerSpec): (ServiceAccount | Role | RoleBinding | Deployment)[] {
  const { cluster, namespace } = spec;
  const name = k8sNames.autoscaler(cluster);
  const selector = clusterLabels(cluster, "autoscaler");
  const metadata = { name, namespace, labels: { ...spec.labels, ...selector } };
  const env = autoscalerEnv({
    cluster,
    token: spec.tokenSecret !== undefined,
    managementUrl: `http://${k8sNames.management(cluster)}.${namespace}.svc:${INTERNAL_PORTS.management}`,
    manager: { kind: "kubernetes", namespace },
  });
  return [
    new ServiceAccount({ metadata }),
    new Role({ metadata, rules: AUTOSCALER_RULES.map((r) => ({ apiGroups: [...r.apiGroups], resources: [...r.resources], verbs: [...r.verbs] })) }),
    new RoleBinding({
      metadata,
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name, namespace }],
    }),
    new Deployment({
      metadata,
      spec: {
        replicas: 1,
        // Never two loops deciding for the same versions.
        strategy: { type: "Recreate" },
        selector: { matchLabels: selector },
        template: {
          metadata: { labels: { ...spec.labels, ...selector } },
          spec: {
            serviceAccountName: name,
            ...(spec.imagePullSecrets ? { imagePullSecrets: spec.imagePullSecrets } : {}),
            containers: [{
              name: "autoscaler",
              image: spec.runtimeImage,
              command: [...AUTOSCALER_COMMAND],
              env: Object.entries(env).map(([k, v]) => ({ name: k, value: v })),
              resources: { requests: { ...AUTOSCALER_RESOURCES.requests }, limits: { ...AUTOSCALER_RESOURCES.limits } },
              ...(spec.tokenSecret ? { volumeMounts: [{ name: "token", mountPath: TOKEN_DIR, readOnly: true }] } : {}),
            }],
            ...(spec.tokenSecret ? {
              volumes: [{ name: "token", secret: { secretName: spec.tokenSecret, items: [{ key: "token", path: TOKEN_FILE.slice(TOKEN_DIR.length + 1) }], defaultMode: 0o444 } }],
            } : {}),
          },
        },
      },
    }),
  ];
}
