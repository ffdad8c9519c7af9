/** deploy-model, set-version, replicas, models: model versions and their replicas. */
import { ClipperConnection, type DeployedModel } from "../../connection.js";
import type { GpuRequest, ModelFramework } from "../../managers/container-manager.js";
import { emit, style, table, warn, type OutputOptions } from "../output.js";
import { progress, type Progress } from "../progress.js";
import type { BuildEvent } from "../../images/types.js";
import { describePython } from "../../python/interpreter.js";

type Common = OutputOptions & { cluster?: string };

/** Flags shared by build-model and deploy-model: what goes into an image. */
export interface BuildFlags extends Common {
  version: string;
  inputType: string;
  framework: ModelFramework;
  predict?: string;
  modelPath?: string;
  pkg?: string[];
  requirements?: string;
  npm?: string[];
  baseImage?: string;
  registry?: string;
}

/** `--gpu` alone is all GPUs, `--gpu N` a number of them, `--gpu-ids 0,1` specific devices. */
export function gpuRequest(options: { gpu?: true | number; gpuIds?: string }): GpuRequest | undefined {
  if (options.gpuIds) return { deviceIds: options.gpuIds.split(",").map((id) => id.trim()).filter(Boolean) };
  if (options.gpu === true) return { count: "all" };
  if (typeof options.gpu === "number") return { count: options.gpu };
  return undefined;
}

function buildInputs(name: string, options: Omit<BuildFlags, "framework"> & { framework?: ModelFramework }, spinner: Progress) {
  return {
    name, version: options.version, inputType: options.inputType, framework: options.framework, predict: options.predict,
    modelPath: options.modelPath, packages: options.pkg, requirementsFile: options.requirements, npmDependencies: options.npm,
    baseImage: options.baseImage, registry: options.registry,
    onBuildProgress: (event: BuildEvent) => {
      if (event.type === "step") spinner.update(`Building ${name}:${options.version}: step ${event.index}/${event.total} ${event.name ?? event.instruction}`);
      else if (event.type === "push") spinner.update(`Pushing ${name}:${options.version}: ${event.status}${event.progress ? ` ${event.progress}` : ""}`);
    },
  };
}

export async function buildModel(name: string, options: BuildFlags & { gpu?: true | number; gpuIds?: string }): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const spinner = progress(`Building ${name}:${options.version}`, options);
  let tag: string;
  try {
    tag = await conn.buildModel({ ...buildInputs(name, options, spinner), framework: options.framework, gpu: gpuRequest(options) });
  } catch (err) {
    spinner.fail(`Building ${name}:${options.version} failed`);
    throw err;
  }
  spinner.succeed(`Built ${tag}`);
  emit(options, { image: tag }, `Deploy it with: ${style.cmd(`clipper deploy-model ${name} --version ${options.version} --input-type ${options.inputType} --framework ${options.framework} --image ${tag}`)}`);
}

export interface DeployOptions extends Omit<BuildFlags, "framework"> {
  /** Not needed with --image. */
  framework?: ModelFramework;
  image?: string;
  gpu?: true | number;
  gpuIds?: string;
  replicas: number;
  batchSize: number;
  batchWaitUs: number;
  link?: string;
  label?: string[];
  env?: Record<string, string>;
  python?: string;
  readyTimeoutMs?: number;
  warmupInput?: unknown;
  warmupBatches?: number;
  warmupFromLog?: string;
  warmupCount?: number;
}

/** Rollout progress of a Kubernetes cluster behind the spinner (other managers report none). */
function rolloutProgress(spinner: Progress, prefix: string) {
  return { kubernetes: { onProgress: (message: string) => spinner.update(`${prefix}: ${message}`) } };
}

export async function deployModel(name: string, options: DeployOptions): Promise<void> {
  const what = `Deploying ${name}:${options.version} (${options.replicas} replica${options.replicas === 1 ? "" : "s"})`;
  const spinner = progress(what, options);
  const conn = await ClipperConnection.connect({ cluster: options.cluster, python: options.python, ...rolloutProgress(spinner, what) })
    .catch((err: unknown) => { spinner.fail(`${what} failed`); throw err; });
  const addresses = conn.getAddresses();
  if (conn.manager.capabilities.pullsFromRegistry && !options.image && !options.registry && !addresses.registry) {
    warn((await import("./cluster.js")).LOCAL_IMAGES_WARNING);
  }
  let deployed: DeployedModel;
  try {
    deployed = await conn.deployModel({
      ...buildInputs(name, options, spinner),
      replicas: options.replicas, batchSize: options.batchSize, batchWaitMicros: options.batchWaitUs, link: options.link,
      labels: options.label, env: options.env, python: options.python, readyTimeoutMs: options.readyTimeoutMs,
      image: options.image, gpu: gpuRequest(options),
      warmupInput: options.warmupInput, warmupBatches: options.warmupBatches,
      ...(options.warmupFromLog === undefined ? {} : { warmupFromLog: { app: options.warmupFromLog, count: options.warmupCount } }),
    });
  } catch (err) {
    spinner.fail(`Deploying ${name}:${options.version} failed`);
    throw err;
  }
  spinner.succeed(`${name}:${options.version} is live and current`);
  const { interpreter, warmupFromLog } = deployed;
  emit(options, {
    model_name: name, model_version: options.version, replicas: options.replicas, linked_to: options.link ?? null,
    ...(interpreter ? { interpreter } : {}),
    ...(warmupFromLog ? { warmup_from_log: warmupFromLog } : {}),
  }, [
    ...(interpreter ? [style.dim(`Python: ${describePython(interpreter)}`)] : []),
    ...(warmupFromLog ? [style.dim(`Warmed up on ${warmupFromLog.inputs} recorded inputs of '${warmupFromLog.app}'`)] : []),
    options.link ? `Linked to '${options.link}'. Try: ${style.cmd(`clipper predict ${options.link} '<input JSON>'`)}`
      : `Next: ${style.cmd(`clipper link APP ${name}`)}`,
  ]);
}

export async function setVersion(model: string, version: string, options: Common & { replicas?: number }): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const message = await conn.setModelVersion(model, version, options.replicas);
  emit(options, { message }, style.ok(message));
}

export async function replicas(model: string, count: number, options: Common & { version?: string }): Promise<void> {
  let spinner: Progress | undefined;
  const conn = await ClipperConnection.connect({ cluster: options.cluster, kubernetes: { onProgress: (m) => spinner?.update(`Scaling ${model}: ${m}`) } });
  const version = options.version ?? (await conn.getCurrentModelVersion(model));
  spinner = progress(`Scaling ${model}:${version} to ${count}`, options);
  try {
    await conn.setNumReplicas(model, count, version);
  } catch (err) {
    spinner.fail(`Scaling ${model}:${version} to ${count} failed`);
    throw err;
  }
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
    : table(["NAME", "VERSION", "CURRENT", "INPUT TYPE", "REPLICAS", "AUTOSCALE"],
      rows.map((m) => [m.model_name, m.model_version, m.is_current_version ? "*" : "", m.input_type, String(m.connected_replicas),
        m.autoscaling ? `${m.autoscaling.min_replicas}-${m.autoscaling.max_replicas}` : "-"])));
}

/** Stops replicas: of every version of the named models, of given versions, or of all but the current one. */
export async function stopModels(models: string[], options: Common & { version?: string[]; inactive?: boolean }): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  if (options.inactive) await conn.stopInactiveModelVersions(models);
  else if (options.version?.length) await conn.stopVersionedModels(Object.fromEntries(models.map((m) => [m, options.version!])));
  else await conn.stopModels(models);
  const what = options.inactive ? "inactive versions of" : options.version?.length ? `versions ${options.version.join(", ")} of` : "every version of";
  emit(options, { stopped: models, versions: options.version ?? null, inactive: Boolean(options.inactive) }, style.ok(`Stopped the replicas of ${what} ${models.join(", ")}`));
}

/** Deletes a model version, or every version: replicas stopped, deployment and record gone. */
export async function deleteModel(model: string, options: Common & { version?: string; force?: boolean }): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const deleted = await conn.deleteModel(model, { version: options.version, force: options.force });
  const unlinked = deleted.unlinked_from.length ? ` (unlinked from ${deleted.unlinked_from.join(", ")})` : "";
  emit(options, deleted, style.ok(`Deleted ${model} version${deleted.deleted_versions.length === 1 ? "" : "s"} ${deleted.deleted_versions.join(", ")}${unlinked}`));
}

export async function stopAllModels(options: Common): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  await conn.stopAllModelContainers();
  emit(options, { stopped: "all" }, style.ok("Stopped every model replica"));
}
