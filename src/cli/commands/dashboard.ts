/** dashboard: the URL of the cluster's live dashboard (docs/dashboard.md), opened in a browser when there is a display. */
import { spawn } from "node:child_process";
import { ClipperConnection } from "../../connection.js";
import { findCluster } from "../../context.js";
import { INTERNAL_PORTS } from "../../managers/cluster-spec.js";
import { k8sNames } from "../../managers/kubernetes/names.js";
import { emit, style, type OutputOptions } from "../output.js";

export interface DashboardOptions extends OutputOptions {
  cluster?: string;
  /** Commander's negation of --no-open. */
  open?: boolean;
}

export async function dashboard(options: DashboardOptions, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const entry = findCluster(options.cluster);
  if (entry?.manager === "kubernetes" && entry.kubernetes) return kubernetesDashboard(options, entry.cluster, entry.kubernetes.namespace);
  const conn = await ClipperConnection.locate({ cluster: options.cluster });
  let url: string;
  let token: boolean;
  try {
    const addresses = await conn.connect();
    url = new URL("/dashboard/", addresses.managementUrl).href;
    token = addresses.token !== undefined;
  } finally {
    await conn.close();
  }
  const opened = options.open !== false && hasDisplay(env) && openInBrowser(url);
  emit(options, { url, opened }, [
    `${style.bold("Dashboard:")} ${url}`,
    ...(opened ? [style.dim("opened in your browser")] : []),
    ...(token ? [style.dim("from another machine the page asks for the cluster's token (kept in $CLIPPER_HOME/context.json)")] : []),
  ]);
}

/**
 * On Kubernetes the CLI reaches the daemon through the API server's service proxy, on a loopback
 * port that lives only as long as the command: no URL to hand a browser. A port-forward to the
 * daemon's Service gives one that lasts, and the daemon sees the browser as a loopback client.
 */
function kubernetesDashboard(options: DashboardOptions, cluster: string, namespace: string): void {
  const port = INTERNAL_PORTS.management;
  const portForward = `kubectl port-forward --namespace ${namespace} service/${k8sNames.management(cluster)} ${port}:${port}`;
  const url = `http://127.0.0.1:${port}/dashboard/`;
  emit(options, { url, opened: false, port_forward: portForward }, [
    `On Kubernetes, forward the management daemon's port first (it stays in the foreground):`,
    `  ${style.cmd(portForward)}`,
    `${style.bold("Dashboard:")} ${url}`,
  ]);
}

function hasDisplay(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.DISPLAY || env.WAYLAND_DISPLAY);
}

/** Starts xdg-open and lets it go; false when it cannot even be started. */
function openInBrowser(url: string): boolean {
  try {
    const child = spawn("xdg-open", [url], { detached: true, stdio: "ignore" });
    child.on("error", () => undefined);
    child.unref();
    return child.pid !== undefined;
  } catch {
    return false;
  }
}
