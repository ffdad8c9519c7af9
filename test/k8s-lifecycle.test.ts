// The shared model lifecycle (test/support/lifecycle-contract.ts) on the Kubernetes manager: the
// in-process fake API server, whose service proxy leads to a real management daemon and query
// frontend on loopback, and whose "kubelet" (test/support/fake-kubelet.ts) runs each model pod as a
// process of our Node runtime that registers with that frontend. `running` counts those processes.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { KubernetesContainerManager } from "../src/managers/kubernetes/kubernetes-manager.js";
import { k8sNames } from "../src/managers/kubernetes/names.js";
import { startInProcessCluster } from "./support/cluster-in-process.js";
import { startFakeKubeApi, writeKubeconfig } from "./support/fake-kube-api.js";
import { startFakeKubelet } from "./support/fake-kubelet.js";
import { describeLifecycle } from "./support/lifecycle-contract.js";

const FIXTURES = fileURLToPath(new URL("./fixtures/node-models", import.meta.url));

describeLifecycle("Kubernetes (fake API server and kubelet)", async () => {
  const api = await startFakeKubeApi();
  const dir = mkdtempSync(join(tmpdir(), "k8s-lifecycle-"));
  const cluster = await startInProcessCluster({ replicaTimeoutMs: 5000 });
  api.setServiceBackend(k8sNames.management("life"), cluster.management.url, "ml");
  api.setServiceBackend(k8sNames.frontend("life"), cluster.frontend.queryUrl, "ml");
  // The cluster's own pods are the servers above: ready as soon as they are applied.
  api.onDeployment((event, dep) => {
    if (event !== "DELETED" && dep.metadata.labels["ai.clipper.name"] !== "model") setImmediate(() => api.markReady(dep.metadata.name, dep.metadata.namespace));
  });
  const kubelet = startFakeKubelet(api, {
    env: { CLIPPER_IP: "127.0.0.1", CLIPPER_PORT: String(cluster.frontend.rpcPort), CLIPPER_MODEL_PATH: FIXTURES, CLIPPER_PREDICT: "sum.mjs" },
  });
  // The in-process frontend checks replicas' credentials against its own key: the cluster's key
  // Secret holds it, as an earlier start would have left it (start keeps an existing key).
  const create = (path: string, body: unknown) => fetch(`${api.url}${path}`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  await create("/api/v1/namespaces", { metadata: { name: "ml" } });
  await create("/api/v1/namespaces/ml/secrets", {
    metadata: { name: k8sNames.rpcKey("life"), labels: { "ai.clipper.container.label": "life" } }, stringData: { key: cluster.rpcKey },
  });
  const manager = await KubernetesContainerManager.create({
    cluster: "life", kubeconfig: writeKubeconfig(join(dir, "kubeconfig"), api.url, "ml"),
    runtimeImage: "registry.example/clipper-runtime:1", pollMs: 20, rolloutTimeoutMs: 20_000,
  });
  return {
    manager,
    options: {
      cluster: "life", host: "0.0.0.0", queryPort: 1337, managementPort: 1338, rpcPort: 7000,
      maxBodyBytes: 1 << 20, startupTimeoutMs: 10_000, replicaTimeoutMs: 5000,
    },
    deployment: (name, version, variant = 0) => ({
      name, version, inputType: "doubles", framework: "node", predictFile: join(FIXTURES, "sum.mjs"), predictFunction: "predict",
      modelPath: FIXTURES, image: "registry.example/sum:1", ...(variant ? { env: { VARIANT: String(variant) } } : {}),
    }),
    running: async (name, version) => kubelet.running(k8sNames.model("life", name, version)),
    async close() {
      await kubelet.close();
      await cluster.close();
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
