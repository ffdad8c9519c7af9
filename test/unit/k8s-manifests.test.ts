/**
 * The Kubernetes manifests, checked offline (no API server runs here): each object against the
 * Kubernetes OpenAPI schemas (kubernetes-models' validate()), then what that misses: unknown fields
 * (the objects' JSON type-checked against the model classes' interfaces, where TypeScript rejects
 * any property the API does not have), selectors that match their pods, valid label values, GPUs
 * only where asked. The dry-run CLI is tested in test/k8s-manifests.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { ClipperError } from "../../src/errors.js";
import { LABEL } from "../../src/managers/cluster-spec.js";
import type { ClusterOptions } from "../../src/managers/container-manager.js";
import { isLabelValue } from "../../src/managers/kubernetes/names.js";
import {
  clusterManifests,
  DEFAULT_RESOURCES,
  frontendResources,
  GPU_RESOURCE,
  modelManifests,
  type KubernetesClusterSpec,
  type KubernetesModelSpec,
  type KubernetesObject,
} from "../../src/managers/kubernetes/manifests.js";
import { plainObjects as validatedObjects } from "../../src/managers/kubernetes/render.js";
import { apiServerHostOf } from "../../src/managers/kubernetes/service-proxy.js";
import { KubeConfig } from "@kubernetes/client-node";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

const OPTIONS: ClusterOptions = {
  cluster: "prod", host: "0.0.0.0", queryPort: 1337, managementPort: 1338, rpcPort: 7000, maxBodyBytes: 1 << 20,
  startupTimeoutMs: 60_000, replicaTimeoutMs: 30_000, cacheBytes: 0, maxBatch: 32, admission: false,
};

const CLUSTER: KubernetesClusterSpec = {
  cluster: "prod", namespace: "ml", createNamespace: true, options: OPTIONS, runtimeImage: "reg.example.com/clipper-runtime:0.1.0",
  frontendReplicas: 3, serviceTypes: { query: "LoadBalancer", management: "NodePort" }, imagePullSecrets: ["regcred"],
  token: { value: "s3cret" }, rpcKey: "rpc-k3y", stateStorage: { size: "2Gi", storageClass: "fast" },
};

const MODEL: KubernetesModelSpec = {
  cluster: "prod", namespace: "ml", name: "sum-model", version: "1", inputType: "doubles", framework: "python",
  image: "reg.example.com/prod-sum-model:1", replicas: 2, imagePullSecrets: ["regcred"], rpcCredential: { secret: "v3rsion-secret" },
};

const GPU_MODEL: KubernetesModelSpec = {
  ...MODEL, name: "resnet", version: "v2-1", framework: "pytorch", gpu: { count: 1 }, nodeSelector: { "cloud.google.com/gke-accelerator": "nvidia-h200" },
};

const variants: [string, KubernetesObject[]][] = [
  ["a cluster with every option", clusterManifests(CLUSTER)],
  ["a minimal cluster", clusterManifests({ cluster: "default", namespace: "default", options: { ...OPTIONS, rpcAuth: "none" }, runtimeImage: "clipper-runtime:0.1.0" })],
  ["a cluster with an existing token secret", clusterManifests({ ...CLUSTER, createNamespace: false, token: { existingSecret: "clipper-token" } })],
  ["a cluster without an autoscaler", clusterManifests({ ...CLUSTER, options: { ...OPTIONS, autoscaler: false } })],
  ["a cluster with 8 frontend workers per pod", clusterManifests({ ...CLUSTER, options: { ...OPTIONS, frontendWorkers: 8 } })],
  ["a model of a cluster with 8 frontend workers per pod", modelManifests({ ...MODEL, frontendWorkers: 8 })],
  ["a CPU model", modelManifests(MODEL)],
  ["a GPU model", modelManifests(GPU_MODEL)],
  ["a model whose Secret a live deploy creates", modelManifests({ ...MODEL, rpcCredential: {} })],
  ["a model of a cluster without RPC auth", modelManifests({ ...MODEL, rpcCredential: undefined })],
  ["a GPU model with its own tolerations", modelManifests({ ...GPU_MODEL, gpu: { count: 2 }, tolerations: [{ key: "gpu", operator: "Equal", value: "h200", effect: "NoSchedule" }] })],
];
type Json = Record<string, any>;
/** The objects as plain JSON, after schema validation, typed loosely for inspection. */
const plainObjects = (objects: readonly KubernetesObject[]): Json[] => validatedObjects(objects);
const all = variants.flatMap(([, objects]) => plainObjects(objects));

const deployments = (objects: Json[]) => objects.filter((o) => o.kind === "Deployment");
const containersOf = (d: Json): Json[] => d.spec.template.spec.containers;

describe("schema validation (kubernetes-models 4.5, the Kubernetes OpenAPI definitions)", () => {
  it.each(variants)("validates every object of %s", (_what, objects) => {
    expect(objects.length).toBeGreaterThan(0);
    for (const object of objects) expect(() => object.validate(), `${object.kind} ${object.metadata?.name}`).not.toThrow();
  });

  it("catches an invalid object (the validator is live)", () => {
    const [deployment] = modelManifests({ ...MODEL, rpcCredential: undefined });
    ((deployment as Json).spec as Json).strategy = { type: "Sometimes" };
    expect(() => deployment!.validate()).toThrow();
  });
});

/**
 * Type-checks each object's JSON, as an object literal, against its kubernetes-models interface:
 * TypeScript's excess-property check rejects any field the API does not define, at any depth.
 */
function unknownFieldErrors(objects: Json[]): string[] {
  const types: Record<string, [string, string]> = {
    Deployment: ["kubernetes-models/apps/v1/Deployment", "IDeployment"],
    Service: ["kubernetes-models/v1/Service", "IService"],
    Secret: ["kubernetes-models/v1/Secret", "ISecret"],
    Namespace: ["kubernetes-models/v1/Namespace", "INamespace"],
    PersistentVolumeClaim: ["kubernetes-models/v1/PersistentVolumeClaim", "IPersistentVolumeClaim"],
    NetworkPolicy: ["kubernetes-models/networking.k8s.io/v1/NetworkPolicy", "INetworkPolicy"],
    ServiceAccount: ["kubernetes-models/v1/ServiceAccount", "IServiceAccount"],
    Role: ["kubernetes-models/rbac.authorization.k8s.io/v1/Role", "IRole"],
    RoleBinding: ["kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding", "IRoleBinding"],
  };
  const dir = mkdtempSync(join(ROOT, "test", ".k8s-typecheck-"));
  try {
    const lines = Object.entries(types).map(([, [path, name]]) => `import type { ${name} } from "${path}";`);
    objects.forEach((o, i) => {
      const type = types[o.kind];
      if (!type) throw new Error(`no type for ${o.kind}`);
      lines.push(`export const o${i}: ${type[1]} = ${JSON.stringify(o, null, 2)};`);
    });
    const file = join(dir, "objects.ts");
    writeFileSync(file, lines.join("\n"));
    const program = ts.createProgram([file], {
      strict: true, noEmit: true, skipLibCheck: true, types: [],
      module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022,
    });
    return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("what the schemas miss", () => {
  it("has no field the Kubernetes API does not define (checked against the model classes' types)", () => {
    expect(unknownFieldErrors(all)).toEqual([]);
    // The check itself catches an unknown field deep inside a pod spec.
    const broken = structuredClone(deployments(plainObjects(modelManifests(MODEL)))[0]!);
    broken.spec.template.spec.containers[0].gpus = 1;
    const errors = unknownFieldErrors([broken]);
    expect(errors.join("\n")).toMatch(/gpus/);
  }, 60_000);

  it.each(variants)("gives every Deployment of %s a selector that matches its pod template", (_what, objects) => {
    for (const d of deployments(plainObjects(objects))) {
      const selector: Record<string, string> = d.spec.selector.matchLabels;
      expect(Object.keys(selector).length).toBeGreaterThan(1);
      expect(d.spec.template.metadata.labels).toMatchObject(selector);
      expect(d.spec.selector.matchExpressions).toBeUndefined();
    }
  });

  it.each(variants)("has every Service of %s select the pods of one of its Deployments", (_what, objects) => {
    const plain = plainObjects(objects);
    for (const s of plain.filter((o) => o.kind === "Service")) {
      const selector: Record<string, string> = s.spec.selector;
      const matches = deployments(plain).filter((d) =>
        Object.entries(selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v));
      expect(matches.length, s.metadata.name).toBe(1);
      // Every target port is a named port of the selected pods.
      const ports = containersOf(matches[0]!).flatMap((c) => (c.ports ?? []).map((p: Json) => p.name));
      for (const p of s.spec.ports) expect(ports, `${s.metadata.name} ${p.targetPort}`).toContain(p.targetPort);
    }
  });

  it("uses only valid label keys and values, and carries the cluster label on everything", () => {
    const qualifiedName = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
    for (const o of all) {
      const sets = [o.metadata.labels, o.spec?.template?.metadata?.labels, o.spec?.selector?.matchLabels, o.kind === "Service" ? o.spec.selector : undefined];
      for (const labels of sets.filter(Boolean) as Record<string, string>[]) {
        for (const [k, v] of Object.entries(labels)) {
          expect(k, `${o.kind} ${o.metadata.name}`).toMatch(qualifiedName);
          expect(isLabelValue(v), `${o.kind} ${o.metadata.name} ${k}=${v}`).toBe(true);
        }
      }
      expect(o.metadata.labels[LABEL.cluster]).toMatch(/^(prod|default)$/);
    }
  });

  it("labels model pods as Clipper did: cluster, role model, <name>_<version>", () => {
    const [d] = deployments(plainObjects(modelManifests(GPU_MODEL)));
    expect(d!.spec.template.metadata.labels).toMatchObject({
      [LABEL.cluster]: "prod", [LABEL.role]: "model", [LABEL.modelContainer]: "resnet_v2-1",
      [LABEL.modelName]: "resnet", [LABEL.modelVersion]: "v2-1",
    });
    expect(JSON.parse(d!.metadata.annotations[LABEL.deployment])).toMatchObject({ name: "resnet", version: "v2-1", gpu: { count: 1 } });
  });

  it("gives model pods 30 s after SIGTERM to drain (no preStop hook: SIGTERM starts the drain), or the grace asked for", () => {
    const [d] = deployments(plainObjects(modelManifests(MODEL)));
    expect(d!.spec.template.spec.terminationGracePeriodSeconds).toBe(30);
    expect(d!.spec.template.spec.containers[0].lifecycle).toBeUndefined();
    const [quick] = deployments(plainObjects(modelManifests({ ...MODEL, stopGraceSeconds: 5 })));
    expect(quick!.spec.template.spec.terminationGracePeriodSeconds).toBe(5);
  });

  it("refuses names Kubernetes would reject, with a usage error", () => {
    const usage = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return err instanceof ClipperError && err.code === "USAGE" ? err.message : `unexpected ${String(err)}`;
      }
      return "no error";
    };
    expect(usage(() => modelManifests({ ...MODEL, name: "m".repeat(60), version: "12345" }))).toMatch(/ai\.clipper\.model_container\.label/);
    expect(usage(() => clusterManifests({ ...CLUSTER, cluster: "c".repeat(50) }))).toMatch(/service name/);
    expect(usage(() => clusterManifests({ ...CLUSTER, namespace: "ML" }))).toMatch(/namespace 'ML'/);
    expect(usage(() => modelManifests({ ...MODEL, gpu: { count: "all" } }))).toMatch(/number of GPUs/);
    expect(usage(() => modelManifests({ ...MODEL, gpu: { deviceIds: ["0"] } }))).toMatch(/by count/);
  });
});

describe("the design in the objects", () => {
  const cluster = plainObjects(clusterManifests(CLUSTER));
  const byName = (kind: string, name: string) => cluster.find((o) => o.kind === kind && o.metadata.name === name)!;

  it("runs one management daemon with Recreate, its state on a claim, and probes on every pod", () => {
    const m = byName("Deployment", "clipper-prod-management");
    expect(m.spec).toMatchObject({ replicas: 1, strategy: { type: "Recreate" } });
    expect(m.spec.template.spec.volumes).toContainEqual({ name: "state", persistentVolumeClaim: { claimName: "clipper-prod-state" } });
    expect(byName("PersistentVolumeClaim", "clipper-prod-state").spec).toMatchObject({
      accessModes: ["ReadWriteOnce"], storageClassName: "fast", resources: { requests: { storage: "2Gi" } },
    });
    for (const d of [...deployments(cluster), ...deployments(plainObjects(modelManifests(MODEL)))]) {
      for (const c of containersOf(d)) {
        // The autoscaler serves nothing to probe: a failure it cannot retry exits the process, which the kubelet restarts.
        if (d.metadata.name !== "clipper-prod-autoscaler") {
          expect(c.readinessProbe, d.metadata.name).toBeDefined();
          expect(c.livenessProbe, d.metadata.name).toBeDefined();
        }
        expect(c.resources.requests && c.resources.limits, d.metadata.name).toBeTruthy();
      }
      expect(d.spec.template.spec.imagePullSecrets).toEqual([{ name: "regcred" }]);
    }
    // Readiness fails while the daemon refuses writes; liveness only when it stops serving.
    expect(containersOf(m)[0]!.readinessProbe.httpGet).toEqual({ path: "/admin/live", port: "management" });
    expect(containersOf(m)[0]!.livenessProbe.httpGet).toEqual({ path: "/admin/live", port: "management" });
  });

  it("puts N frontends behind a query Service and a headless RPC Service the models connect to", () => {
    const f = byName("Deployment", "clipper-prod-query-frontend");
    expect(f.spec.replicas).toBe(3);
    expect(containersOf(f)[0]!.readinessProbe.httpGet).toEqual({ path: "/health", port: "query" });
    expect(containersOf(f)[0]!.command).toContain("http://clipper-prod-management.ml.svc:1338");
    expect(byName("Service", "clipper-prod-query-frontend").spec.type).toBe("LoadBalancer");
    expect(byName("Service", "clipper-prod-management").spec.type).toBe("NodePort");
    const rpc = byName("Service", "clipper-prod-frontend-rpc");
    expect(rpc.spec).toMatchObject({ clusterIP: "None", publishNotReadyAddresses: true, ports: [{ port: 7000 }] });
    const env = containersOf(deployments(plainObjects(modelManifests(MODEL)))[0]!)[0]!.env as { name: string; value: string }[];
    expect(env).toContainEqual({ name: "CLIPPER_IP", value: "clipper-prod-frontend-rpc.ml.svc" });
    expect(env).toContainEqual({ name: "CLIPPER_PORT", value: "7000" });
  });

  it("runs N frontend workers per pod: every worker's RPC port on the container, the headless Service and the NetworkPolicy; replicas told each", () => {
    const objects = plainObjects(clusterManifests({ ...CLUSTER, options: { ...OPTIONS, frontendWorkers: 3 } }));
    const pick = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name)!;
    const f = pick("Deployment", "clipper-prod-query-frontend");
    expect(f.metadata.annotations[LABEL.frontendWorkers]).toBe("3");
    const command = containersOf(f)[0]!.command as string[];
    expect(command.slice(command.indexOf("--rpc-port"), command.indexOf("--rpc-port") + 4)).toEqual(["--rpc-port", "7000", "--workers", "3"]);
    expect(containersOf(f)[0]!.ports).toEqual([
      { name: "query", containerPort: 1337, protocol: "TCP" }, { name: "rpc", containerPort: 7000, protocol: "TCP" },
      { name: "rpc-1", containerPort: 7001, protocol: "TCP" }, { name: "rpc-2", containerPort: 7002, protocol: "TCP" },
    ]);
    expect(pick("Service", "clipper-prod-frontend-rpc").spec.ports).toEqual([
      { name: "rpc", port: 7000, targetPort: "rpc", protocol: "TCP" }, { name: "rpc-1", port: 7001, targetPort: "rpc-1", protocol: "TCP" },
      { name: "rpc-2", port: 7002, targetPort: "rpc-2", protocol: "TCP" },
    ]);
    expect(pick("NetworkPolicy", "clipper-prod-frontend-rpc").spec.ingress[0].ports.map((p: Json) => p.port)).toEqual([7000, 7001, 7002]);
    // One worker: no --workers flag, Clipper's one `rpc` port, as before workers.
    const single = byName("Deployment", "clipper-prod-query-frontend");
    expect(containersOf(single)[0]!.command).not.toContain("--workers");
    expect(single.metadata.annotations[LABEL.frontendWorkers]).toBe("1");
    // Each worker requests what one frontend does, and has a core under the limit.
    expect(containersOf(f)[0]!.resources).toEqual({ requests: { cpu: "1500m", memory: "768Mi" }, limits: { cpu: "3", memory: "3Gi" } });
    expect(frontendResources(1)).toEqual(DEFAULT_RESOURCES.frontend);
    expect(frontendResources(8).limits).toEqual({ cpu: "8", memory: "8Gi" });
    const own = { requests: { cpu: "4" }, limits: { cpu: "4" } };
    const chosen = plainObjects(clusterManifests({ ...CLUSTER, options: { ...OPTIONS, frontendWorkers: 3 }, resources: { frontend: own } }))
      .find((o) => o.kind === "Deployment" && o.metadata.name === "clipper-prod-query-frontend")!;
    expect(containersOf(chosen)[0]!.resources).toEqual(own);
    const env = containersOf(deployments(plainObjects(modelManifests({ ...MODEL, frontendWorkers: 3 })))[0]!)[0]!.env as { name: string; value: string }[];
    expect(env.filter((e) => e.name === "CLIPPER_PORT")).toEqual([{ name: "CLIPPER_PORT", value: "7000,7001,7002" }]);
  });

  it("admits the Services' DNS names and the API server's name in Host, and sets the query API's auth", () => {
    const withApiServer = plainObjects(clusterManifests({ ...CLUSTER, apiServerHost: "api.k8s.example" }));
    for (const name of ["clipper-prod-management", "clipper-prod-query-frontend"]) {
      const command = containersOf(withApiServer.find((o) => o.kind === "Deployment" && o.metadata.name === name)!)[0]!.command as string[];
      const allowed = command[command.indexOf("--allowed-hosts") + 1]!.split(",");
      for (const service of ["clipper-prod-management", "clipper-prod-query-frontend"]) {
        expect(allowed).toEqual(expect.arrayContaining([service, `${service}.ml`, `${service}.ml.svc`, `${service}.ml.svc.cluster.local`]));
      }
      expect(allowed).toContain("api.k8s.example");
    }
    const frontend = containersOf(byName("Deployment", "clipper-prod-query-frontend"))[0]!.command as string[];
    expect(frontend[frontend.indexOf("--query-auth") + 1]).toBe("keys"); // OPTIONS.host is 0.0.0.0
  });

  it("takes the API server's name from the kubeconfig, but not an address", () => {
    const kubeconfig = (server: string) => {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: "c", server }], users: [{ name: "u" }], contexts: [{ name: "x", cluster: "c", user: "u" }], currentContext: "x",
      });
      return kc;
    };
    expect(apiServerHostOf(kubeconfig("https://ABC.hcp.eastus.azmk8s.io:443"))).toEqual({ apiServerHost: "abc.hcp.eastus.azmk8s.io" });
    expect(apiServerHostOf(kubeconfig("https://127.0.0.1:6443"))).toEqual({});
    expect(apiServerHostOf(kubeconfig("https://[::1]:6443"))).toEqual({});
  });

  it("mounts the token Secret into management and frontends, or refers to an existing one", () => {
    expect(byName("Secret", "clipper-prod-token").stringData).toEqual({ token: "s3cret" });
    for (const name of ["clipper-prod-management", "clipper-prod-query-frontend"]) {
      const d = byName("Deployment", name);
      expect(containersOf(d)[0]!.command).toContain("/etc/clipper/token");
      expect(d.spec.template.spec.volumes).toContainEqual(expect.objectContaining({ secret: expect.objectContaining({ secretName: "clipper-prod-token" }) }));
    }
    const existing = plainObjects(clusterManifests({ ...CLUSTER, token: { existingSecret: "mine" } }));
    expect(existing.some((o) => o.kind === "Secret" && o.metadata.name.endsWith("-token"))).toBe(false);
    expect(JSON.stringify(existing)).toContain('"secretName":"mine"');
  });

  it("mounts the RPC key Secret into the frontends only, and passes --rpc-auth plain --rpc-key-file", () => {
    expect(byName("Secret", "clipper-prod-rpc-key").stringData).toEqual({ key: "rpc-k3y" });
    const f = byName("Deployment", "clipper-prod-query-frontend");
    const command: string[] = containersOf(f)[0]!.command;
    expect(command.slice(command.indexOf("--rpc-auth"), command.indexOf("--rpc-auth") + 4)).toEqual(["--rpc-auth", "plain", "--rpc-key-file", "/etc/clipper-rpc/key"]);
    expect(f.metadata.annotations[LABEL.rpcAuth]).toBe("plain");
    expect(containersOf(f)[0]!.volumeMounts).toContainEqual({ name: "rpc-key", mountPath: "/etc/clipper-rpc", readOnly: true });
    expect(f.spec.template.spec.volumes).toContainEqual(expect.objectContaining({ secret: expect.objectContaining({ secretName: "clipper-prod-rpc-key" }) }));
    expect(JSON.stringify(byName("Deployment", "clipper-prod-management"))).not.toContain("rpc-key");
    // --rpc-auth none: no key anywhere.
    const open = plainObjects(clusterManifests({ ...CLUSTER, options: { ...OPTIONS, rpcAuth: "none", maxRpcFrameBytes: 4096 } }));
    expect(open.some((o) => o.kind === "Secret" && o.metadata.name.endsWith("rpc-key"))).toBe(false);
    const openCommand: string[] = containersOf(open.find((o) => o.metadata.name === "clipper-prod-query-frontend" && o.kind === "Deployment")!)[0]!.command;
    expect(openCommand).not.toContain("--rpc-key-file");
    expect(openCommand.join(" ")).toContain("--rpc-auth none --max-rpc-frame-bytes 4096");
    expect(() => clusterManifests({ ...CLUSTER, rpcKey: undefined })).toThrow(/RPC key/);
  });

  it("gives each model version its own credential Secret, read as CLIPPER_RPC_SECRET and never written into the Deployment", () => {
    const objects = plainObjects(modelManifests({ ...MODEL, env: { CLIPPER_RPC_SECRET: "user-given", OTHER: "x" } }));
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(["Secret/clipper-prod-sum-model-1-rpc", "Deployment/clipper-prod-sum-model-1"]);
    const [secret, d] = objects as [Json, Json];
    expect(secret.stringData).toEqual({ secret: "v3rsion-secret" });
    expect(secret.metadata.labels).toMatchObject({ [LABEL.cluster]: "prod", [LABEL.role]: "model", [LABEL.modelName]: "sum-model", [LABEL.modelVersion]: "1" });
    const env = containersOf(d)[0]!.env as Json[];
    expect(env.filter((e) => e.name === "CLIPPER_RPC_SECRET")).toEqual([
      { name: "CLIPPER_RPC_SECRET", valueFrom: { secretKeyRef: { name: "clipper-prod-sum-model-1-rpc", key: "secret" } } },
    ]);
    expect(env).toContainEqual({ name: "OTHER", value: "x" });
    expect(JSON.stringify(d)).not.toContain("v3rsion-secret");
    const open = plainObjects(modelManifests({ ...MODEL, rpcCredential: undefined }));
    expect(open.map((o) => o.kind)).toEqual(["Deployment"]);
    expect(JSON.stringify(open)).not.toContain("CLIPPER_RPC_SECRET");
  });

  it("admits only this cluster's model pods to the frontends' RPC port, and anyone to the query port", () => {
    const policy = byName("NetworkPolicy", "clipper-prod-frontend-rpc");
    const frontendPods = byName("Deployment", "clipper-prod-query-frontend").spec.template.metadata.labels;
    expect(frontendPods).toMatchObject(policy.spec.podSelector.matchLabels);
    expect(policy.spec.policyTypes).toEqual(["Ingress"]);
    const [rpc, query] = policy.spec.ingress as Json[];
    expect(rpc!.ports).toEqual([{ port: 7000, protocol: "TCP" }]);
    const modelPods = deployments(plainObjects(modelManifests(MODEL)))[0]!.spec.template.metadata.labels;
    const from: Record<string, string> = rpc!.from[0].podSelector.matchLabels;
    expect(modelPods).toMatchObject(from);
    expect(from[LABEL.cluster]).toBe("prod");
    // Another cluster's model pods, and the frontends themselves, do not match.
    expect(Object.entries(from).every(([k, v]) => ({ ...modelPods, [LABEL.cluster]: "other" })[k] === v)).toBe(false);
    expect(Object.entries(from).every(([k, v]) => frontendPods[k] === v)).toBe(false);
    expect(query).toEqual({ ports: [{ port: 1337, protocol: "TCP" }] });
  });

  it("gives a --gpu 1 model nvidia.com/gpu: 1 in limits, a node selector and the GPU toleration; frontends and management none", () => {
    const [gpu] = deployments(plainObjects(modelManifests(GPU_MODEL)));
    const pod = gpu!.spec.template.spec;
    expect(Number(pod.containers[0].resources.limits[GPU_RESOURCE])).toBe(1);
    expect(pod.nodeSelector).toEqual({ "cloud.google.com/gke-accelerator": "nvidia-h200" });
    expect(pod.tolerations).toEqual([{ key: GPU_RESOURCE, operator: "Exists", effect: "NoSchedule" }]);
    const [cpu] = deployments(plainObjects(modelManifests(MODEL)));
    expect(JSON.stringify(cpu)).not.toContain(GPU_RESOURCE);
    for (const d of deployments(cluster)) expect(JSON.stringify(d), d.metadata.name).not.toContain("nvidia");
  });

  it("runs the autoscaler under its own ServiceAccount, allowed only to read and set Deployments' scale", () => {
    const name = "clipper-prod-autoscaler";
    expect(cluster.filter((o) => o.metadata.name === name).map((o) => o.kind)).toEqual(["ServiceAccount", "Role", "RoleBinding", "Deployment"]);
    expect(byName("Role", name).rules).toEqual([{ apiGroups: ["apps"], resources: ["deployments/scale"], verbs: ["get", "update"] }]);
    expect(byName("RoleBinding", name)).toMatchObject({
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name, namespace: "ml" }],
    });
    const d = byName("Deployment", name);
    expect(d.spec).toMatchObject({ replicas: 1, strategy: { type: "Recreate" } });
    expect(d.spec.template.spec.serviceAccountName).toBe(name);
    const [c] = containersOf(d);
    expect(c!.image).toBe("reg.example.com/clipper-runtime:0.1.0");
    expect(c!.command).toEqual(["node", "dist/src/autoscaler/host-main.js"]);
    expect(c!.env).toEqual([
      { name: "CLIPPER_CLUSTER", value: "prod" }, { name: "CLIPPER_MANAGER", value: "kubernetes" },
      { name: "CLIPPER_ADMIN_URL", value: "http://clipper-prod-management.ml.svc:1338" },
      { name: "CLIPPER_ADMIN_TOKEN_FILE", value: "/etc/clipper/token" }, { name: "CLIPPER_NAMESPACE", value: "ml" },
    ]);
    expect(c!.volumeMounts).toEqual([{ name: "token", mountPath: "/etc/clipper", readOnly: true }]);
    // It reaches the daemon by a name the daemon admits in Host, and holds neither the RPC key nor a port.
    const management = containersOf(byName("Deployment", "clipper-prod-management"))[0]!.command as string[];
    expect(management[management.indexOf("--allowed-hosts") + 1]!.split(",")).toContain("clipper-prod-management.ml.svc");
    expect(JSON.stringify(d)).not.toContain("rpc-key");
    expect(c!.ports).toBeUndefined();
    // --no-autoscaler: none of the four, so no credential to scale exists in the namespace.
    const without = plainObjects(clusterManifests({ ...CLUSTER, options: { ...OPTIONS, autoscaler: false } }));
    expect(without.filter((o) => o.metadata.name === name)).toEqual([]);
    expect(without.some((o) => ["ServiceAccount", "Role", "RoleBinding"].includes(o.kind))).toBe(false);
  });
});
