/** start, stop, status, logs: a cluster's lifecycle. */
import { ClipperConnection } from "../../connection.js";
import type { BuildEvent } from "../../images/types.js";
import type { ImageRemoval } from "../../images/remove-images.js";
import type { ClusterAddresses, ClusterOptions, ManagerKind, ResourceUsage } from "../../managers/container-manager.js";
import type { KubernetesSettings } from "../../managers/index.js";
import { RPC_AUTH_NONE_WARNING } from "../../managers/cluster-spec.js";
import { emit, style, table, warn, type OutputOptions } from "../output.js";
import { defaultQueryAuth } from "../../../runtime/shared/api-keys.js";
import { progress, type Progress } from "../progress.js";

export type StartOptions = OutputOptions & ClusterOptions & {
  manager: ManagerKind; python?: string; runtimeBaseImage?: string; runtimeImage?: string; kubernetes?: KubernetesSettings;
};

/** Rollout and image-push progress of the Kubernetes manager, shown behind the spinner. */
function kubernetesProgress(spinner: Progress, prefix: string): Pick<KubernetesSettings, "onProgress" | "onBuildProgress"> {
  return {
    onProgress: (message) => spinner.update(`${prefix}: ${message}`),
    onBuildProgress: (event: BuildEvent) => {
      if (event.type === "step") spinner.update(`${prefix}: building the runtime image, step ${event.index}/${event.total}`);
      else if (event.type === "push") spinner.update(`${prefix}: pushing the runtime image: ${event.status}${event.progress ? ` ${event.progress}` : ""}`);
    },
  };
}

/** The runtime image build's progress (Docker), shown behind the spinner. */
function runtimeBuildProgress(spinner: Progress, prefix: string): (event: BuildEvent) => void {
  return (event) => {
    if (event.type === "step") spinner.update(`${prefix}: building the runtime image, step ${event.index}/${event.total}: ${event.instruction}`);
    else if (event.type === "built") spinner.update(`${prefix}: built the runtime image ${event.tag}`);
    else if (event.type === "reused") spinner.update(`${prefix}: the runtime image ${event.tag} is up to date`);
  };
}

/** The lines that say where a cluster answers (start and attach). */
function addressLines(addresses: ClusterAddresses): string[] {
  const k8s = addresses.kubernetes;
  return [
    ...(k8s ? [`  namespace        ${k8s.namespace}${k8s.context ? ` (context ${k8s.context})` : ""}`] : []),
    `  query frontend   ${addresses.queryUrl}${k8s ? style.dim("  (through the Kubernetes API server, for this process only)") : ""}`,
    ...(addresses.applicationQueryUrls ?? []).map((url) => `  for applications ${url}`),
    `  management API   ${addresses.managementUrl}`,
    `  model RPC        ${addresses.rpcAddress}`,
    `  metrics          ${addresses.metricsUrl}`,
  ];
}

/** What `--registry` absent means on Kubernetes: images stay on the local Docker daemon. */
export const LOCAL_IMAGES_WARNING = "no --registry: images are built with the local Docker daemon and not pushed, so the cluster must run on " +
  "that daemon's images (minikube after `eval $(minikube docker-env)`); for any other cluster pass --registry (docs/kubernetes.md)";

export async function start(options: StartOptions): Promise<void> {
  if (options.kubernetes && !options.kubernetes.registry && !options.kubernetes.runtimeImage) warn(LOCAL_IMAGES_WARNING);
  if (options.rpcAuth === "none") warn(RPC_AUTH_NONE_WARNING);
  const spinner = progress(`Starting cluster '${options.cluster}' (${options.manager})`, options);
  const { json: _json, manager, python: _python, runtimeBaseImage: _base, runtimeImage: _image, kubernetes, ...clusterOptions } = options;
  const prefix = `Starting cluster '${options.cluster}'`;
  try {
    const conn = await ClipperConnection.create({
      cluster: options.cluster, manager, python: options.python,
      ...(options.runtimeBaseImage ? { runtimeBaseImage: options.runtimeBaseImage } : {}),
      ...(options.runtimeImage ? { runtimeImage: options.runtimeImage } : {}),
      onBuildProgress: runtimeBuildProgress(spinner, prefix),
      ...(kubernetes ? { kubernetes: { ...kubernetes, ...kubernetesProgress(spinner, prefix) } } : {}),
    });
    const addresses = await conn.start(clusterOptions);
    spinner.succeed(`Cluster '${addresses.cluster}' is up`);
    const { token, ...shown } = addresses;
    const queryAuth = clusterOptions.queryAuth ?? defaultQueryAuth(clusterOptions.host);
    emit(options, { ...shown, tokenRequired: token !== undefined, queryAuth }, [
      ...addressLines(addresses),
      ...(token ? [`  ${style.dim("the management API needs the token kept under CLIPPER_HOME for non-loopback clients")}`] : []),
      ...(queryAuth === "keys" ? [`  ${style.dim("queries need an API key: create one with `clipper api-key create` (--query-auth keys)")}`] : []),
      "",
      `Next: ${style.cmd("clipper register-app hello --input-type doubles --default-output -1 --slo-ms 100")}`,
    ]);
  } catch (err) {
    spinner.fail(`Cluster '${options.cluster}' did not start`);
    throw err;
  }
}

/** Finds a running cluster (Kubernetes: by its labels in the namespace) and makes it current. */
export async function attach(options: OutputOptions & { manager: ManagerKind; cluster: string; kubeconfig?: string; context?: string; namespace?: string }): Promise<void> {
  const conn = await ClipperConnection.connect({
    cluster: options.cluster, manager: options.manager, remember: true,
    ...(options.manager === "kubernetes" ? { kubernetes: { kubeconfig: options.kubeconfig, context: options.context, namespace: options.namespace } } : {}),
  });
  const addresses = conn.getAddresses();
  const { token, ...shown } = addresses;
  emit(options, { ...shown, tokenRequired: token !== undefined }, [`Attached to cluster '${addresses.cluster}' (${addresses.manager})`, ...addressLines(addresses)]);
}

export async function stop(options: OutputOptions & { cluster?: string; keepState?: boolean; removeImages?: boolean }): Promise<void> {
  // Not connect(): a cluster whose supervisor or daemon died must still be stoppable.
  const conn = await ClipperConnection.locate({ cluster: options.cluster });
  const name = conn.manager.cluster;
  const spinner = progress(`Stopping cluster '${name}'`, options);
  try {
    await conn.stopAll({ keepState: options.keepState });
  } catch (err) {
    spinner.fail(`Cluster '${name}' was not stopped`);
    throw err;
  }
  spinner.succeed(`Cluster '${name}' stopped${options.keepState ? " (state kept)" : ""}`);
  // After the stop, on its own: a daemon that cannot remove them does not make the stop a failure to report as one.
  let images: ImageRemoval | undefined;
  if (options.removeImages) {
    const removing = progress(`Removing the model images of cluster '${name}'`, options);
    try {
      images = await conn.removeBuiltImages();
    } catch (err) {
      removing.fail(`Cluster '${name}' stopped, but its model images were not removed`);
      throw err;
    }
    removing.succeed(images.removed.length === 0 ? `No model images of cluster '${name}' to remove` : `Removed ${images.removed.join(", ")}`);
  }
  for (const kept of images?.kept ?? []) warn(`image ${kept.image} was kept: ${kept.reason}`);
  if (options.json) emit(options, { stopped: name, keepState: Boolean(options.keepState), ...(images ? { images } : {}) }, []);
}

export async function status(options: OutputOptions & { cluster?: string }): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const s = await conn.clusterOverview();
  const { token: _token, ...addresses } = s.addresses;
  // Kubernetes reports pods and readiness; the other managers process ids.
  const pods = conn.manager.capabilities.reportsPods;
  const ready = (r: boolean | undefined) => (r === undefined ? "-" : r ? "yes" : style.bold("no"));
  const usage = (u: ResourceUsage | undefined) => [duration(u?.uptimeSeconds), u?.cpuPercent === undefined ? "-" : `${u.cpuPercent}%`, bytes(u?.memoryBytes)];
  const idOf = (x: { pid?: number; ready?: boolean }) => (pods ? ready(x.ready) : String(x.pid ?? "-"));
  const USAGE = ["UPTIME", "CPU", "MEMORY"];
  // Status is what one reads when something is down: a daemon that does not answer leaves the key out.
  const autoscaling = await conn.getAutoscaling().catch(() => undefined);
  emit(options, { ...s, addresses, ...(autoscaling ? { autoscaling } : {}) }, [
    `cluster ${style.bold(s.addresses.cluster)} (${s.addresses.manager})  query ${s.addresses.queryUrl}  management ${s.addresses.managementUrl}`,
    ...(s.managementNotReady ? [style.bold(`management daemon not ready: ${s.managementNotReady}`)] : []),
    ...(s.addresses.applicationQueryUrls ?? []).map((url) => `applications query ${url}`),
    "",
    ...table(["COMPONENT", "STATE", pods ? "READY" : "PID", "RESTARTS", ...USAGE],
      s.components.map((c) => [c.component, c.state, idOf(c), String(c.restarts), ...usage(c.usage)])),
    "",
    ...(s.replicas.length === 0
      ? [style.dim("no model replicas")]
      : table(["MODEL", "VERSION", "REPLICA", ...(pods ? ["POD"] : []), "STATE", pods ? "READY" : "PID", "RESTARTS", ...USAGE],
        s.replicas.map((r) => [r.name, r.version, String(r.replica), ...(pods ? [r.pod ?? "-"] : []), r.state, idOf(r), String(r.restarts), ...usage(r.usage)]))),
    ...(s.usageNote ? [style.dim(`CPU and memory: ${s.usageNote}`)] : []),
    "",
    ...(s.models.length === 0
      ? [style.dim("no models")]
      : table(["MODEL", "VERSION", "CURRENT", "QUEUE", "P99"], s.models.map((m) => [
        m.name, m.version, m.current ? "yes" : "", m.queueDepth === undefined ? "-" : String(m.queueDepth), m.p99Ms === undefined ? "-" : `${m.p99Ms} ms`,
      ]))),
    ...(s.loadNote ? [style.dim(s.loadNote)] : []),
    "",
    ...(s.apps.length === 0
      ? [style.dim("no applications")]
      : table(["APPLICATION", "SLO", "LINKED MODELS"], s.apps.map((a) => [a.name, `${a.sloMicros / 1000} ms`, a.linkedModels.join(", ") || "-"]))),
  ]);
}

/** 3d4h, 2h5m, 4m10s, 12s: the two largest units, as people read an uptime. */
export function duration(seconds: number | undefined): string {
  if (seconds === undefined) return "-";
  const parts: [number, string][] = [[Math.floor(seconds / 86_400), "d"], [Math.floor(seconds / 3600) % 24, "h"], [Math.floor(seconds / 60) % 60, "m"], [seconds % 60, "s"]];
  const first = parts.findIndex(([n]) => n > 0);
  if (first < 0) return "0s";
  return parts.slice(first, first + 2).filter(([n], i) => i === 0 || n > 0).map(([n, u]) => `${n}${u}`).join("");
}

/** 512 KiB, 48.2 MiB, 1.5 GiB. */
export function bytes(n: number | undefined): string {
  if (n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/**
 * Prints the last lines of each matching component's log; with --follow or --since, streams them
 * line by line (prefixed by component when several can match; --json: one JSON object per line)
 * until Ctrl-C.
 */
export async function logs(
  component: string | undefined,
  options: OutputOptions & { cluster?: string; tail: number; follow?: boolean; since?: Date },
): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  if (!options.follow && !options.since) {
    const read = await conn.readClipperLogs(component, options.tail);
    emit(options, read, read.flatMap((r) => [style.bold(`==> ${r.component}${r.path ? ` (${r.path})` : ""} <==`), ...r.lines, ""]));
    return;
  }
  const sources = await conn.getClipperLogs(component);
  // One exact component stays one stream; a role or model may match more, now or once it scales.
  const prefixed = !(sources.length === 1 && sources[0]!.component === component);
  const width = Math.max(0, ...sources.map((s) => s.component.length));
  const stop = new AbortController();
  const abort = () => stop.abort();
  process.once("SIGINT", abort);
  process.once("SIGTERM", abort);
  // A reader that went away (`| head`) ends the stream like Ctrl-C does.
  process.stdout.once("error", abort);
  try {
    await conn.streamClipperLogs(component, { tail: options.tail, since: options.since, follow: Boolean(options.follow), signal: stop.signal }, ({ component: c, line }) => {
      if (process.stdout.destroyed) return;
      if (options.json) process.stdout.write(`${JSON.stringify({ component: c, line })}\n`);
      else process.stdout.write(prefixed ? `${style.dim(`${c.padEnd(width)} |`)} ${line}\n` : `${line}\n`);
    });
  } finally {
    process.off("SIGINT", abort);
    process.off("SIGTERM", abort);
    process.stdout.off("error", abort);
    await conn.close();
  }
}
