/** dashboard: the URL of the cluster's live dashboard (docs/dashboard.md), opened in a browser when there is a display. */
import { spawn } from "node:child_process";
import { ClipperConnection } from "../../connection.js";
import { emit, style, type OutputOptions } from "../output.js";

export interface DashboardOptions extends OutputOptions {
  cluster?: string;
  /** Commander's negation of --no-open. */
  open?: boolean;
}

export async function dashboard(options: DashboardOptions, env: NodeJS.ProcessEnv = process.env): Promise<void> {
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
