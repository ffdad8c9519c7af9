/**
 * The kubeconfig a live Kubernetes manager talks through, refused up front — in a user's words, with
 * the fix — when it cannot work. The client library accepts too much: with no kubeconfig at all it
 * falls back to http://localhost:8080 and only the first request fails ("HTTP protocol is not allowed
 * when skipTLSVerify is not set or false"); a missing file, a context naming no cluster or a cluster
 * without a server surface later still, as errors about something else.
 */
import type { Cluster, KubeConfig } from "@kubernetes/client-node";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { ManagerError } from "../errors.js";

/** Where a pod's service account token lives: its presence means "running in a cluster". */
const IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

const HOW_TO_POINT =
  "point at a kubeconfig with --kubeconfig FILE or KUBECONFIG=FILE (`kind create cluster`, `minikube start` or your provider's " +
  "`get-credentials` command writes ~/.kube/config), and pick a context with --context NAME (`kubectl config get-contexts` lists them)";

export interface KubeconfigChoice {
  /** --kubeconfig (or the file the CLI's context recorded). */
  kubeconfig?: string;
  /** --context. */
  context?: string;
}

interface Source {
  /** The file(s) and where they came from: "/x (from --kubeconfig)", "/a:/b (from $KUBECONFIG)". */
  describe: string;
  load(kc: KubeConfig): void;
}

/** The SDK's KubeConfig class: passed in, so that only kube-client.ts loads the SDK (lazily). */
export interface KubeConfigSdk {
  KubeConfig: new () => KubeConfig;
}

/** The files the client library would read, in its order; undefined: none, and not in a pod. */
function sourceOf(sdk: KubeConfigSdk, choice: KubeconfigChoice, env: NodeJS.ProcessEnv, inClusterToken: string): Source | undefined {
  const files = (paths: string[], from: string): Source => {
    const missing = paths.find((p) => !existsSync(p));
    if (missing !== undefined) throw kubeconfigError(`the kubeconfig ${missing} (from ${from}) does not exist`);
    return {
      describe: `${paths.join(delimiter)} (from ${from})`,
      load: (kc) => {
        kc.loadFromFile(paths[0]!);
        for (const path of paths.slice(1)) {
          const more = new sdk.KubeConfig();
          more.loadFromFile(path);
          kc.mergeConfig(more);
        }
      },
    };
  };
  if (choice.kubeconfig) return files([choice.kubeconfig], "--kubeconfig");
  const listed = (env.KUBECONFIG ?? "").split(delimiter).filter(Boolean);
  if (listed.length) return files(listed, "$KUBECONFIG");
  const home = homeKubeconfig(env);
  if (existsSync(home)) return files([home], "~/.kube/config");
  if (existsSync(inClusterToken) && env.KUBERNETES_SERVICE_HOST) {
    return { describe: "in-cluster (the pod's service account)", load: (kc) => kc.loadFromCluster() };
  }
  return undefined;
}

function homeKubeconfig(env: NodeJS.ProcessEnv): string {
  return join(env.HOME || homedir(), ".kube", "config");
}

function kubeconfigError(message: string, hint = HOW_TO_POINT): ManagerError {
  return new ManagerError(message, "INVALID_ARGUMENT", hint);
}

/**
 * Loads the kubeconfig (--kubeconfig, else $KUBECONFIG, else ~/.kube/config, else the pod's service
 * account), applies --context, and checks that its current context names a cluster the client can
 * reach: a server address, and HTTPS unless the cluster says insecure-skip-tls-verify. Every refusal is
 * a ManagerError (INVALID_ARGUMENT: exit code 2) whose hint says how to fix it.
 */
export function loadKubeConfig(
  sdk: KubeConfigSdk, choice: KubeconfigChoice, env: NodeJS.ProcessEnv = process.env, inClusterToken = IN_CLUSTER_TOKEN,
): KubeConfig {
  const source = sourceOf(sdk, choice, env, inClusterToken);
  if (!source) {
    throw kubeconfigError(`no kubeconfig found: --kubeconfig is not given, $KUBECONFIG is not set and ${homeKubeconfig(env)} does not exist`);
  }
  const kc = new sdk.KubeConfig();
  try {
    source.load(kc);
  } catch (err) {
    throw unreadable(source.describe, err as Error);
  }
  const names = kc.getContexts().map((c) => c.name);
  if (!names.length) throw kubeconfigError(`the kubeconfig ${source.describe} defines no contexts`);
  const known = `its contexts: ${names.join(", ")}`;
  if (choice.context !== undefined) {
    if (!kc.getContextObject(choice.context)) {
      throw kubeconfigError(`the kubeconfig ${source.describe} has no context named ${choice.context} (${known})`,
        "pick one of its contexts with --context NAME (`kubectl config get-contexts` lists them)");
    }
    kc.setCurrentContext(choice.context);
  }
  const current = kc.getCurrentContext();
  if (!current) {
    throw kubeconfigError(`the kubeconfig ${source.describe} has no current context (${known})`,
      "pick one with --context NAME, or make it the default with `kubectl config use-context NAME`");
  }
  const context = kc.getContextObject(current);
  if (!context) {
    throw kubeconfigError(`the kubeconfig ${source.describe} names ${current} as its current context but defines no such context (${known})`,
      "pick another with --context NAME, or `kubectl config use-context NAME`");
  }
  const cluster = kc.getCluster(context.cluster);
  if (!cluster) {
    throw kubeconfigError(`context ${current} of the kubeconfig ${source.describe} names the cluster ${context.cluster || "(none)"}, which it does not define`,
      "fix the context (`kubectl config set-context`) or pick another with --context NAME");
  }
  checkServer(cluster, current, source.describe);
  return kc;
}

/** What the client library says of a file it cannot load, in a user's words. */
function unreadable(describe: string, err: Error): ManagerError {
  const noServer = /^clusters\[(\d+)\]\.cluster\.server is missing/.exec(err.message);
  if (noServer) {
    return kubeconfigError(`cluster entry ${Number(noServer[1]) + 1} of the kubeconfig ${describe} has no server address`,
      "set it with `kubectl config set-cluster NAME --server https://HOST:PORT`, or use the kubeconfig your cluster's tools wrote");
  }
  // yaml.load of an empty file is undefined, and the client reads `.clusters` of it.
  const what = err instanceof TypeError ? "it is empty or not a kubeconfig" : err.message.split("\n")[0];
  return kubeconfigError(`cannot read the kubeconfig ${describe}: ${what}`, "fix or replace the file (`kubectl config view` shows what kubectl makes of it)");
}

/** The client refuses plain HTTP unless the cluster entry explicitly skips TLS verification. */
function checkServer(cluster: Cluster, context: string, describe: string): void {
  if (cluster.server.startsWith("http:") && !cluster.skipTLSVerify) {
    throw kubeconfigError(`cluster ${cluster.name} (context ${context}) of the kubeconfig ${describe} has a plain-HTTP server, ${cluster.server}, ` +
      "which the Kubernetes client refuses without insecure-skip-tls-verify",
      `use the API server's https:// address, or, for a local test server only, \`kubectl config set-cluster ${cluster.name} --insecure-skip-tls-verify=true\``);
  }
}
