/** deploy-model, set-version, replicas, models: model versions and their replicas. */
import { ClipperConnection } from "../../connection.js";
import type { ModelFramework } from "../../managers/container-manager.js";
import { emit, progress, style, table, type OutputOptions } from "../output.js";

type Common = OutputOptions & { cluster?: string };

export interface DeployOptions extends Common {
  version: string;
  inputType: string;
  framework: ModelFramework;
  predict: string;
  modelPath?: string;
  replicas: number;
  batchSize: number;
  batchWaitUs: number;
  link?: string;
  label?: string[];
  python?: string;
  readyTimeoutMs: number;
}

export async function deployModel(name: string, options: DeployOptions): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster, python: options.python });
  const spinner = progress(`Deploying ${name}:${options.version} (${options.replicas} replica${options.replicas === 1 ? "" : "s"})`, options);
  try {
    await conn.deployModel({
      name, version: options.version, inputType: options.inputType, framework: options.framework, predict: options.predict,
      modelPath: options.modelPath, replicas: options.replicas, batchSize: options.batchSize, batchWaitMicros: options.batchWaitUs, link: options.link,
      labels: options.label, python: options.python, readyTimeoutMs: options.readyTimeoutMs,
    });
  } catch (err) {
    spinner.fail(`Deploying ${name}:${options.version} failed`);
    throw err;
  }
  spinner.succeed(`${name}:${options.version} is live and current`);
  emit(options, { model_name: name, model_version: options.version, replicas: options.replicas, linked_to: options.link ?? null },
    options.link ? `Linked to '${options.link}'. Try: ${style.cmd(`clipper predict ${options.link} '<input JSON>'`)}`
      : `Next: ${style.cmd(`clipper link APP ${name}`)}`);
}

export async function setVersion(model: string, version: string, options: Common & { replicas?: number }): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const message = await conn.setModelVersion(model, version, options.replicas);
  emit(options, { message }, style.ok(message));
}

export async function replicas(model: string, count: number, options: Common & { version?: string }): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const version = options.version ?? (await conn.getCurrentModelVersion(model));
  const spinner = progress(`Scaling ${model}:${version} to ${count}`, options);
  await conn.setNumReplicas(model, count, version);
  spinner.succeed(`${model}:${version} has ${count} replica${count === 1 ? "" : "s"}`);
  if (options.json) emit(options, { model_name: model, model_version: version, replicas: count }, []);
}

export async function models(options: Common): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const all = await conn.getAllModels(true);
  const connected = await conn.getAllModelReplicas(true);
  const rows = all.map((m) => ({
    ...m,
    connected_replicas: connected.filter((r) => r.model_name === m.model_name && r.model_version === m.model_version).length,
  }));
  emit(options, rows, rows.length === 0
    ? style.dim("no models (deploy one with `clipper deploy-model`)")
    : table(["NAME", "VERSION", "CURRENT", "INPUT TYPE", "REPLICAS"],
      rows.map((m) => [m.model_name, m.model_version, m.is_current_version ? "*" : "", m.input_type, String(m.connected_replicas)])));
}
