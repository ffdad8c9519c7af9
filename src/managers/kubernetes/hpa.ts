/**
 * A HorizontalPodAutoscaler for one model version, for users who would rather have Kubernetes scale
 * it than Clipper's autoscaler. `deploy-model --dry-run` prints it commented out, after the objects
 * it would apply: applying both would have two controllers fight over the replica count.
 *
 * Why Clipper's own autoscaler is the default (docs/autoscaling.md): it decides on the frontends'
 * queue, shed/default answers and p99 against the SLO, which it reads directly; an HPA can only see
 * them through a metrics adapter (prometheus-adapter or KEDA) serving the frontends'
 * `clipper_model_queue_depth` as an external metric. This object assumes such an adapter.
 */
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { clusterLabels, LABEL } from "../cluster-spec.js";
import { k8sNames } from "./names.js";

export interface ModelHpaOptions {
  cluster: string;
  namespace: string;
  name: string;
  version: string;
  minReplicas: number;
  maxReplicas: number;
  /** Queries waiting per replica the HPA aims at (Clipper's target queue per replica). */
  targetQueuePerReplica: number;
}

export function modelHpa(o: ModelHpaOptions): HorizontalPodAutoscaler {
  const deployment = k8sNames.model(o.cluster, o.name, o.version);
  return new HorizontalPodAutoscaler({
    metadata: {
      name: deployment, namespace: o.namespace,
      labels: { ...clusterLabels(o.cluster, "model"), [LABEL.modelName]: o.name, [LABEL.modelVersion]: o.version },
    },
    spec: {
      scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: deployment },
      minReplicas: Math.max(1, o.minReplicas),
      maxReplicas: o.maxReplicas,
      metrics: [{
        type: "External",
        external: {
          // The frontends' gauge, labelled model="<name>:<version>", as the adapter exposes it.
          metric: { name: "clipper_model_queue_depth", selector: { matchLabels: { model: `${o.name}:${o.version}` } } },
          target: { type: "AverageValue", averageValue: String(o.targetQueuePerReplica) },
        },
      }],
      // Up fast, down slowly, as Clipper's controller does.
      behavior: {
        scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: "Pods", value: 4, periodSeconds: 15 }] },
        scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: "Pods", value: 1, periodSeconds: 60 }] },
      },
    },
  });
}
