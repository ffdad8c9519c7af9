/**
 * A stand-in for the kubelet, beside the fake API server: it runs the pods of model Deployments as
 * local processes of our Node model runtime, with each pod's own environment from the Deployment's
 * template, and reports a Deployment ready once every pod's readiness file exists (the pod spec's
 * `cat /model_is_ready.check` probe). What a container runtime would add is supplied here: the
 * files the image holds (CLIPPER_MODEL_PATH, CLIPPER_PREDICT) and the frontend's address on
 * loopback in place of the cluster DNS name. Environment variables from a Secret (valueFrom.secretKeyRef)
 * are resolved as the kubelet does when it starts a pod: a missing Secret or key keeps the pods from
 * starting (CreateContainerConfigError). A changed pod template replaces every pod, as a rollout
 * would; a changed replica count only starts or stops the difference. Logs are the processes' output.
 *
 * No container runtime or kubelet can run on these machines (test-environment.md); this is how the
 * CLI is tested end to end against Kubernetes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FakeKubeApi } from "./fake-kube-api.js";

type Obj = Record<string, any>;

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const NODE_RUNTIME = join(ROOT, "dist", "runtime", "container-node", "main.js");

interface Pod {
  child: ChildProcess;
  readyFile: string;
  output: string;
}

export interface FakeKubelet {
  /** Processes running per Deployment name. */
  running(deployment: string): number;
  close(): Promise<void>;
}

export function startFakeKubelet(api: FakeKubeApi, image: {
  /** Overrides of the pod environment that the image and the cluster's DNS would provide. */
  env: Record<string, string>;
  /** Images that cannot be pulled: their pods never start (the test reports why through the API). */
  skipImages?: string[];
}): FakeKubelet {
  const scratch = mkdtempSync(join(tmpdir(), "fake-kubelet-"));
  const pods = new Map<string, Pod[]>(); // key: namespace/deployment
  const templates = new Map<string, string>(); // key: namespace/deployment; the template its pods run
  const timers = new Set<NodeJS.Timeout>();

  function start(podEnv: Record<string, string>): Pod {
    const readyFile = join(mkdtempSync(join(scratch, "pod-")), "model_is_ready.check");
    const child = spawn(process.execPath, [NODE_RUNTIME], {
      env: { PATH: process.env.PATH ?? "", ...podEnv, ...image.env, CLIPPER_READY_FILE: readyFile },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const pod: Pod = { child, readyFile, output: "" };
    child.stdout!.on("data", (d: Buffer) => (pod.output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (pod.output += d.toString()));
    return pod;
  }

  function stop(pod: Pod): void {
    if (pod.child.exitCode === null && pod.child.signalCode === null) pod.child.kill("SIGTERM");
  }

  /** Marks the Deployment ready once every pod has written its readiness file. */
  function watchReadiness(namespace: string, name: string, want: number): void {
    const timer = setInterval(() => {
      const current = pods.get(`${namespace}/${name}`);
      if (!current) {
        clearInterval(timer);
        timers.delete(timer);
        return;
      }
      if (current.length === want && current.every((p) => existsSync(p.readyFile))) {
        clearInterval(timer);
        timers.delete(timer);
        try {
          api.markReady(name, namespace);
        } catch {
          // deleted meanwhile
        }
      }
    }, 50);
    timers.add(timer);
  }

  /** A container's environment with Secret references resolved, or why it cannot be (the kubelet's message). */
  function podEnv(namespace: string, vars: Obj[]): Record<string, string> | string {
    const env: Record<string, string> = {};
    for (const e of vars) {
      const ref = e.valueFrom?.secretKeyRef as Obj | undefined;
      if (!ref) {
        env[e.name] = e.value ?? "";
        continue;
      }
      const secret = api.get("secrets", ref.name, namespace);
      if (!secret) return `secret "${ref.name}" not found`;
      const data = secret.data?.[ref.key] as string | undefined;
      if (data === undefined) return `couldn't find key ${ref.key} in Secret ${namespace}/${ref.name}`;
      env[e.name] = Buffer.from(data, "base64").toString("utf8");
    }
    return env;
  }

  api.onDeployment((event, dep: Obj) => {
    if (dep.metadata?.labels?.["ai.clipper.name"] !== "model") return;
    const namespace = dep.metadata.namespace as string;
    const name = dep.metadata.name as string;
    const k = `${namespace}/${name}`;
    const current = pods.get(k) ?? [];
    if (event === "DELETED") {
      current.forEach(stop);
      pods.delete(k);
      templates.delete(k);
      return;
    }
    const template = JSON.stringify(dep.spec.template);
    if (templates.has(k) && templates.get(k) !== template) current.splice(0).forEach(stop);
    templates.set(k, template);
    const container = dep.spec.template.spec.containers[0] as Obj;
    if (image.skipImages?.includes(container.image)) return;
    const env = podEnv(namespace, container.env ?? []);
    if (typeof env === "string") {
      api.setPodProblem(name, { reason: "CreateContainerConfigError", message: env }, namespace);
      return;
    }
    const want = dep.spec.replicas ?? 1;
    while (current.length > want) stop(current.pop()!);
    while (current.length < want) current.push(start(env));
    pods.set(k, current);
    watchReadiness(namespace, name, want);
  });

  // Pod names end in their index: the i-th pod of a Deployment is its i-th process.
  api.setPodLogs((pod) => {
    const owner = String(pod.metadata.ownerReferences?.[0]?.name ?? "").replace(/-[0-9a-f]{10}$/, "");
    const index = Number(String(pod.metadata.name).split("-").at(-1));
    return pods.get(`${pod.metadata.namespace}/${owner}`)?.[index]?.output;
  });

  return {
    running: (deployment) => [...pods.entries()].filter(([k]) => k.endsWith(`/${deployment}`))
      .reduce((n, [, list]) => n + list.filter((p) => p.child.exitCode === null && p.child.signalCode === null).length, 0),
    async close() {
      for (const t of timers) clearInterval(t);
      const all = [...pods.values()].flat();
      all.forEach(stop);
      await Promise.all(all.map((p) => (p.child.exitCode !== null || p.child.signalCode !== null
        ? Promise.resolve()
        : new Promise<void>((r) => {
          const kill = setTimeout(() => p.child.kill("SIGKILL"), 3000);
          p.child.once("exit", () => { clearTimeout(kill); r(); });
        }))));
      pods.clear();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
