/** start, stop, status, logs: a cluster's lifecycle. */
import { ClipperConnection } from "../../connection.js";
import type { ClusterOptions, ManagerKind } from "../../managers/container-manager.js";
import { emit, progress, style, table, type OutputOptions } from "../output.js";

export type StartOptions = OutputOptions & ClusterOptions & { manager: ManagerKind; python?: string; runtimeBaseImage?: string };

export async function start(options: StartOptions): Promise<void> {
  const conn = await ClipperConnection.create({
    cluster: options.cluster, manager: options.manager, python: options.python,
    ...(options.runtimeBaseImage ? { runtimeBaseImage: options.runtimeBaseImage } : {}),
  });
  const spinner = progress(`Starting cluster '${options.cluster}' (${options.manager})`, options);
  try {
    const { json: _json, manager: _manager, python: _python, runtimeBaseImage: _base, ...clusterOptions } = options;
    const addresses = await conn.start(clusterOptions);
    spinner.succeed(`Cluster '${addresses.cluster}' is up`);
    const { token, ...shown } = addresses;
    emit(options, { ...shown, tokenRequired: token !== undefined }, [
      `  query frontend   ${addresses.queryUrl}`,
      `  management API   ${addresses.managementUrl}`,
      `  model RPC        ${addresses.rpcAddress}`,
      `  metrics          ${addresses.metricsUrl}`,
      ...(token ? [`  ${style.dim("the management API needs the token kept under CLIPPER_HOME for non-loopback clients")}`] : []),
      "",
      `Next: ${style.cmd("clipper register-app hello --input-type doubles --default-output -1 --slo-ms 100")}`,
    ]);
  } catch (err) {
    spinner.fail(`Cluster '${options.cluster}' did not start`);
    throw err;
  }
}

export async function stop(options: OutputOptions & { cluster?: string; keepState?: boolean }): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const name = conn.getAddresses().cluster;
  const spinner = progress(`Stopping cluster '${name}'`, options);
  await conn.stopAll({ keepState: options.keepState });
  spinner.succeed(`Cluster '${name}' stopped${options.keepState ? " (state kept)" : ""}`);
  if (options.json) emit(options, { stopped: name, keepState: Boolean(options.keepState) }, []);
}

export async function status(options: OutputOptions & { cluster?: string }): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const s = await conn.inspectInstance();
  const { token: _token, ...addresses } = s.addresses;
  emit(options, { ...s, addresses }, [
    `cluster ${style.bold(s.addresses.cluster)} (${s.addresses.manager})  query ${s.addresses.queryUrl}  management ${s.addresses.managementUrl}`,
    "",
    ...table(["COMPONENT", "STATE", "PID", "RESTARTS"],
      s.components.map((c) => [c.component, c.state, String(c.pid ?? "-"), String(c.restarts)])),
    "",
    ...(s.replicas.length === 0
      ? [style.dim("no model replicas")]
      : table(["MODEL", "VERSION", "REPLICA", "STATE", "PID", "RESTARTS"],
        s.replicas.map((r) => [r.name, r.version, String(r.replica), r.state, String(r.pid ?? "-"), String(r.restarts)]))),
  ]);
}

/** Prints the last lines of each matching component's log. */
export async function logs(component: string | undefined, options: OutputOptions & { cluster?: string; tail: number }): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const read = await conn.readClipperLogs(component, options.tail);
  emit(options, read, read.flatMap((r) => [style.bold(`==> ${r.component}${r.path ? ` (${r.path})` : ""} <==`), ...r.lines, ""]));
}
