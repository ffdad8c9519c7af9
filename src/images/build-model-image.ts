/**
 * buildModelImage: a model directory and a predict entry become an image that serves the model over
 * RPC v3, tagged `<registry>/<cluster>-<name>:<version>` and pushed when a registry is given.
 */
import { hasOwn } from "../../runtime/shared/dict.js";
import type Docker from "dockerode";
import { basename, extname } from "node:path";
import { canonicalInputType } from "../../runtime/shared/input-types.js";
import { nameProblem } from "../../runtime/shared/names.js";
import { ClipperError } from "../errors.js";
import { PYTHON_FRAMEWORKS, type ModelFramework } from "../managers/container-manager.js";
import { readPickledFunctionHeader } from "../python/pickled-header.js";
import { DEFAULT_BASE_IMAGES } from "./base-images.js";
import { BuildContext } from "./context.js";
import { daemonPlatform, pushImage, runDockerBuild } from "./docker-build.js";
import { CLOUDPICKLE_VERSION, modelDockerfile, type PickledPredict } from "./dockerfile.js";
import { modelImageTag, modelLayout, REGISTRY_ADDRESS } from "./layout.js";
import { addNodeModel, addPythonModel, checkModelPaths } from "./model-files.js";
import { addNodeRuntime } from "./node-runtime.js";
import type { BuildProgress, BuiltImage, ModelImageRequest } from "./types.js";

/** The .pkl header reader lives with the other Python interpreter checks; images read it to pin cloudpickle. */
export { readPickledFunctionHeader, type PickledFunctionHeader } from "../python/pickled-header.js";

const NODE_EXTENSIONS = new Set([".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".tsx", ".jsx"]);
/** Python predict files: source, or a callable pickled with cloudpickle (runtime/python/clipper_runtime/closure.py). */
const PYTHON_EXTENSIONS = new Set([".py", ".pkl"]);
/** A Docker repository path component (the tag's `<cluster>-<name>` must be one). */
const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
/** A pip requirement or npm package spec: no whitespace and no option look-alikes. */
const PACKAGE_SPEC = /^[^\s-][^\s]*$/;

/** Rejects a request that cannot make a valid image, before anything is sent to the daemon. */
export function checkModelImageRequest(request: ModelImageRequest): void {
  const usage = (message: string, hint?: string): never => {
    throw new ClipperError("USAGE", message, hint);
  };
  if (!hasOwn(DEFAULT_BASE_IMAGES, request.framework)) {
    usage(`unknown framework '${request.framework}' (expected ${Object.keys(DEFAULT_BASE_IMAGES).join(", ")})`);
  }
  for (const [kind, value] of [["model name", request.name], ["model version", request.version]] as const) {
    const problem = nameProblem(kind, value);
    if (problem) usage(problem);
  }
  if (!REPOSITORY.test(`${request.cluster}-${request.name}`)) {
    usage(`cluster name '${request.cluster}' cannot be part of an image name (lower case letters, digits and separators)`);
  }
  if (request.registry !== undefined && !REGISTRY_ADDRESS.test(request.registry.trim().replace(/\/+$/, ""))) {
    usage(`registry '${request.registry}' is not a registry address (host[:port][/path])`);
  }
  if (!canonicalInputType(request.inputType)) usage(`unknown input type '${request.inputType}'`);
  const fn = request.predictFunction.trim() || "predict";
  if (!/^[A-Za-z_$][\w$]*$/.test(fn)) usage(`'${fn}' is not a valid function name`);
  const python = PYTHON_FRAMEWORKS.includes(request.framework as ModelFramework);
  const ext = extname(request.predictFile).toLowerCase();
  if (python && !PYTHON_EXTENSIONS.has(ext)) usage(`--framework ${request.framework} needs a .py predict file (or a .pkl pickled function), got ${request.predictFile}`);
  if (!python && !NODE_EXTENSIONS.has(ext)) usage(`--framework node needs a .js/.mjs/.cjs/.ts/.mts predict module, got ${request.predictFile}`);
  if (python && (request.npmDependencies?.length ?? 0) > 0) usage("npm dependencies apply to --framework node only", "use packages (--pkg) or a requirements file for Python models");
  if (!python && ((request.packages?.length ?? 0) > 0 || request.requirementsFile)) {
    usage("pip packages and requirements files apply to Python frameworks only", "name npm packages as npm dependencies for --framework node");
  }
  for (const spec of [...(request.packages ?? []), ...(request.npmDependencies ?? [])]) {
    if (!PACKAGE_SPEC.test(spec)) usage(`'${spec}' is not a package specifier`);
  }
}

/** For a `.pkl` predict file: its name and the cloudpickle version its header records (if any). */
export function pickledPredict(request: Pick<ModelImageRequest, "framework" | "predictFile">): PickledPredict | undefined {
  if (request.framework === "node" || extname(request.predictFile).toLowerCase() !== ".pkl") return undefined;
  const version = readPickledFunctionHeader(request.predictFile)?.cloudpickle;
  const usable = typeof version === "string" && CLOUDPICKLE_VERSION.test(version);
  return { file: basename(request.predictFile), ...(usable ? { cloudpickle: version } : {}) };
}

/**
 * Builds the image of one model version and returns its tag and id. Progress (steps, output lines,
 * push) goes to `onProgress`; a failure throws ImageBuildError (code BUILD_FAILED) naming the step,
 * with its last output lines in `details` and what to check in `hint`.
 */
export async function buildModelImage(docker: Docker, request: ModelImageRequest, onProgress?: BuildProgress): Promise<BuiltImage> {
  checkModelImageRequest(request);
  const layout = modelLayout(request);
  checkModelPaths(request, layout);
  const pickled = pickledPredict(request);
  if (pickled && pickled.cloudpickle === undefined) {
    onProgress?.({ type: "output", line: `${pickled.file} records no cloudpickle version (it was not saved with python3 -m clipper_runtime.save): the image gets whatever cloudpickle the base image has, or the latest, not a pinned one` });
  }
  const dockerfile = modelDockerfile(request, pickled);
  const context = new BuildContext();
  if (request.framework === "node") {
    const platform = await daemonPlatform(docker);
    await addNodeRuntime(context, { target: "clipper", platform, entries: ["container-node/main.js"] });
    await addNodeModel(context, request, layout, platform);
  } else {
    await addPythonModel(context, request, layout);
  }
  const tag = modelImageTag(request);
  const imageId = await runDockerBuild(docker, { context, dockerfile, tag, onProgress, what: "model image" });
  if (request.registry?.trim()) await pushImage(docker, tag, onProgress, request.registryAuth);
  return { tag, imageId };
}
