/**
 * Deploying from code: a function value (deployFunction), a Node module (deployModule), and
 * Clipper's create_endpoint (register an application, deploy, link) in one call. Each ends in
 * ClipperConnection.deployModel with framework "node"; what happens here is everything before it,
 * and the checks that refuse a function before anything is built or started.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { nameProblem } from "../../runtime/shared/names.js";
import type { ClipperConnection, DeployModelOptions, RegisterApplicationOptions } from "../connection.js";
import { ClipperError } from "../errors.js";
import { clusterPaths } from "../managers/local/cluster-home.js";
import { checkFunction } from "./closure-check.js";
import { serializeContext } from "./context-value.js";
import { canonicalInputType } from "../../runtime/shared/input-types.js";
import { deploymentEnv } from "../deployment-env.js";
import { resolveDependencies } from "./dependencies.js";
import { writeFunctionModule } from "./function-module.js";
import type { PredictFunctionValue } from "./test-predict.js";

/** What deployModel takes that still applies when the model is code rather than files. */
type CommonDeployOptions = Omit<DeployModelOptions,
  "framework" | "predict" | "modelPath" | "python" | "packages" | "requirementsFile" | "npmDependencies" | "image">;

export interface DeployFunctionOptions extends CommonDeployOptions {
  /** A batch in, an array of outputs (or a promise of one) out; it receives `context` as its second argument. */
  predict: PredictFunctionValue;
  /** Data the function needs (JSON data, typed arrays, contextFile(path)): its second argument. */
  context?: unknown;
  /** npm packages it imports (`name` or `name@version`); literal `import("...")`s are found without being named. */
  dependencies?: string[];
  /** Where its packages are installed (node_modules looked up from here). Default: the current directory. */
  projectDir?: string;
}

export interface DeployModuleOptions extends CommonDeployOptions {
  /** The module (.ts, .mts, .js, .mjs, .cjs); its imports are bundled with it. */
  entry: string;
  /** The export to call (default `predict`; `default` for a default export). */
  exportName?: string;
  /** Directory given to the model as CLIPPER_MODEL_PATH, copied into images (default: the entry's directory). */
  modelPath?: string;
  /** npm packages it imports: installed ones are bundled from node_modules; the others npm installs in the image. */
  dependencies?: string[];
}

export interface CreateEndpointOptions extends Omit<RegisterApplicationOptions, "name">, Partial<Omit<CommonDeployOptions, "inputType" | "name" | "link">> {
  /** The application's name, and the model's unless `modelName` is given. */
  name: string;
  inputType: string;
  /** A function (deployFunction) or `path/to/module[:export]` (deployModule). */
  predict: PredictFunctionValue | string;
  /** Default: the application's name. */
  modelName?: string;
  /** Default "1". */
  version?: string;
  context?: unknown;
  dependencies?: string[];
  projectDir?: string;
}

interface ConnectionInternals {
  home: string;
}

function checkName(kind: string, value: string): void {
  const problem = nameProblem(kind, value);
  if (problem) throw new ClipperError("USAGE", problem);
}

/**
 * Deploys a function value. Order: check the function, its context and its packages (a refusal
 * here leaves the cluster untouched), then write its module, then deployModel.
 */
export async function deployFunction(conn: ClipperConnection, internals: ConnectionInternals, options: DeployFunctionOptions): Promise<void> {
  const { predict, context, dependencies, projectDir, ...rest } = options;
  const checked = checkFunction(predict);
  const serialized = serializeContext(context);
  checkName("model name", options.name);
  checkName("model version", options.version);
  // deployModel checks the warm-up input too, but only after the module is written: refuse it first.
  const inputType = canonicalInputType(options.inputType);
  if (inputType) deploymentEnv(inputType, options);
  const runsImages = conn.manager.capabilities.runsImages;
  const project = resolve(projectDir ?? process.cwd());
  const resolved = resolveDependencies(dependencies ?? [], checked.imports, project, runsImages);

  const addresses = conn.getAddresses();
  if (await conn.getModelInfo(options.name, options.version)) {
    throw new ClipperError("ADMIN_REJECTED", `model with name '${options.name}' and version '${options.version}' already exists`);
  }
  // The local manager runs the module from where it is written, for as long as the cluster keeps
  // the version: inside the cluster's directory (removed by `clipper stop`, kept by --keep-state).
  // An image carries its own copy: a temporary directory will do.
  const dir = runsImages
    ? mkdtempSync(join(tmpdir(), "clipper-function-"))
    : join(clusterPaths(internals.home, addresses.cluster).dir, "functions", options.name, options.version);
  let deployed = false;
  try {
    const module = writeFunctionModule({ dir, checked, context: serialized, dependencies: resolved, origin: `model ${options.name}:${options.version}` });
    await conn.deployModel({
      ...rest,
      framework: "node",
      predict: `${module.file}:${module.exportName}`,
      modelPath: module.dir,
      ...(module.npmDependencies.length > 0 ? { npmDependencies: module.npmDependencies } : {}),
    });
    deployed = true;
  } finally {
    if (runsImages || !deployed) rmSync(dir, { recursive: true, force: true });
  }
}

/** Deploys a Node module (TypeScript works as it is): the runtime or the image builder bundles it with esbuild. */
export async function deployModule(conn: ClipperConnection, options: DeployModuleOptions): Promise<void> {
  const { entry, exportName, dependencies, ...rest } = options;
  if (typeof entry !== "string" || entry === "") throw new ClipperError("USAGE", "deployModule needs `entry`, the module's path");
  const fn = exportName ?? "predict";
  if (!/^[A-Za-z_$][\w$]*$/.test(fn)) throw new ClipperError("USAGE", `'${fn}' is not a valid export name`);
  const file = resolve(entry);
  const runsImages = conn.manager.capabilities.runsImages;
  // Installed packages need nothing: the module finds them as it always does (locally), or the
  // builder bundles them (images). The others: npm in the image, or an error here.
  const resolved = resolveDependencies(dependencies ?? [], [], dirname(file), runsImages);
  const npm = resolved.filter((d) => !d.dir).map((d) => d.spec);
  await conn.deployModel({
    ...rest,
    framework: "node",
    predict: `${file}:${fn}`,
    ...(npm.length > 0 ? { npmDependencies: npm } : {}),
  });
}

/**
 * Clipper's create_endpoint: registers the application, deploys the function (or module) as a
 * model of the same name, version 1, and links the two. When the deployment fails, the application
 * registered here is deleted again.
 */
export async function createEndpoint(conn: ClipperConnection, options: CreateEndpointOptions): Promise<void> {
  const {
    name, inputType, predict, modelName, version, context, dependencies, projectDir,
    defaultOutput, sloMicros, policy, shedWith503, ...deploy
  } = options;
  const model = modelName ?? name;
  const common = { ...deploy, name: model, version: version ?? "1", inputType, link: name };
  // Everything that can be refused without the cluster is refused before the application exists.
  if (typeof predict === "function") {
    checkFunction(predict);
    serializeContext(context);
  } else if (typeof predict !== "string") {
    throw new ClipperError("USAGE", "predict must be a function or `path/to/module[:export]`");
  } else if (context !== undefined || projectDir !== undefined) {
    throw new ClipperError("USAGE", "context and projectDir apply to function values; a module reads its own files");
  }
  await conn.registerApplication({
    name, inputType,
    ...(defaultOutput !== undefined ? { defaultOutput } : {}),
    ...(sloMicros !== undefined ? { sloMicros } : {}),
    ...(policy !== undefined ? { policy } : {}),
    ...(shedWith503 !== undefined ? { shedWith503 } : {}),
  });
  try {
    if (typeof predict === "function") {
      await conn.deployFunction({ ...common, predict, context, dependencies, projectDir });
    } else {
      const colon = predict.lastIndexOf(":");
      const maybe = colon > 0 ? predict.slice(colon + 1) : "";
      const named = /^[A-Za-z_$][\w$]*$/.test(maybe);
      await conn.deployModule({ ...common, entry: named ? predict.slice(0, colon) : predict, exportName: named ? maybe : "predict", dependencies });
    }
  } catch (err) {
    await conn.unregisterApplication(name).catch(() => undefined);
    throw err;
  }
}
