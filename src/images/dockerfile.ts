/**
 * Dockerfiles as small named steps (Cog's way), filled into the templates under templates/docker/.
 * Everything here is pure text: the golden tests compare whole Dockerfiles without a daemon.
 *
 * Each step knows its name, so when the daemon reports "Step 6/13" failing the error can say which
 * of ours it was ("the model's requirements") and what to check.
 */
import { readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { packageRoot } from "../../runtime/shared/package-root.js";
import type { ModelFramework } from "../managers/container-manager.js";
import { NODE_BASE_IMAGE, defaultBaseImage, frameworkPackages } from "./base-images.js";
import { CLIPPER_ROOT, MODEL_ROOT, modelLayout } from "./layout.js";
import type { ModelImageRequest } from "./types.js";

export interface DockerfileStep {
  /** Short name used in progress and errors. */
  name: string;
  /** One comment line written above the instructions. */
  comment?: string;
  instructions: string[];
  /** What to check when this step fails (shown as the error's hint; never written to the file). */
  hint?: string;
}

export interface RenderedInstruction {
  step: string;
  instruction: string;
  hint?: string;
}

export interface RenderedDockerfile {
  text: string;
  /** Every instruction in order, with the step it belongs to: the daemon's "Step N/M" is instructions[N-1]. */
  instructions: RenderedInstruction[];
}

/** pip options for every install: fail in seconds when an index cannot be reached. */
export const PIP_INSTALL = ["python3", "-m", "pip", "install", "--no-cache-dir", "--retries", "0", "--timeout", "5"];

// ---------------------------------------------------------------------------------------------
// Quoting

/** A value for ENV or LABEL: double-quoted, with `\`, `"` and `$` escaped. */
export function quote(value: string): string {
  return `"${value.replace(/[\\"$]/g, (c) => `\\${c}`).replace(/\n/g, "\\n")}"`;
}

/** An exec-form argument list: `["a", "b"]` (no shell, so no shell quoting). */
export function execForm(args: readonly string[]): string {
  return `[${args.map((a) => JSON.stringify(a)).join(", ")}]`;
}

/** A word for a shell command line: as it is when plain, else single-quoted. */
export function shellWord(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function keyValues(pairs: Record<string, string>): string {
  return Object.entries(pairs).map(([k, v]) => `${k}=${quote(v)}`).join(" ");
}

// ---------------------------------------------------------------------------------------------
// Steps shared by every image

/**
 * How a user chooses an image's base: the library option and the CLI flag, which differ between model
 * images (build-model, deploy-model) and the runtime image (start). Hints name both, so each must be real.
 */
export interface BaseImageChoice {
  option: string;
  flag: string;
}

export const MODEL_BASE_IMAGE: BaseImageChoice = { option: "baseImage", flag: "--base-image" };
export const RUNTIME_BASE_IMAGE: BaseImageChoice = { option: "runtimeBaseImage", flag: "--runtime-base-image" };

export function baseStep(image: string, choice: BaseImageChoice): DockerfileStep {
  return {
    name: `base image ${image}`,
    instructions: [`FROM ${image}`],
    hint: `check the base image name, that the Docker daemon can pull it (docker login for a private registry), or choose a local image with ${choice.option} (${choice.flag})`,
  };
}

/** The model's configuration for the runtime (read at start-up, overridable with `docker run -e`). */
export function modelEnvStep(env: Record<string, string>): DockerfileStep {
  return { name: "model environment", instructions: [`ENV ${keyValues(env)}`] };
}

export function labelsStep(labels: Record<string, string>): DockerfileStep {
  return { name: "labels", instructions: [`LABEL ${keyValues(labels)}`] };
}

export function commandStep(argv: readonly string[]): DockerfileStep {
  return { name: "command", instructions: [`CMD ${execForm(argv)}`] };
}

/** The build context's model/ directory becomes /model, the working directory. */
export function modelFilesStep(): DockerfileStep {
  return {
    name: "model files",
    comment: "The predict file, the modules beside it and the model's artifacts",
    instructions: [`COPY model ${MODEL_ROOT}`, `WORKDIR ${MODEL_ROOT}`],
  };
}

// ---------------------------------------------------------------------------------------------
// Python steps

export function pythonEnvStep(): DockerfileStep {
  return {
    name: "Python environment",
    instructions: [
      "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_BREAK_SYSTEM_PACKAGES=1",
    ],
  };
}

/** What to do about a base image without pip (a Debian image with python3 alone, for one). */
export const NO_PIP_HINT = `use a base image that has pip (${MODEL_BASE_IMAGE.flag}; the official python images have it) or install pip in yours ` +
  "(Debian and Ubuntu: apt-get install python3-pip); a base image that already holds the packages needs no pip (leave out --pkg and --requirements)";

/**
 * Fails the build at once, in words, when packages are to be installed and the base image has no pip:
 * without it the build would fail several steps later, in the middle of pip's own output.
 */
export function pipCheckStep(): DockerfileStep {
  const message = "the base image has no pip (python3 -m pip), needed to install the model packages";
  return {
    name: "pip in the base image, for the model's packages",
    comment: "The model's packages are installed with pip: stop here if the base image has none",
    hint: NO_PIP_HINT,
    instructions: [`RUN python3 -m pip --version >/dev/null 2>&1 || (echo ${shellWord(message)} >&2; exit 1)`],
  };
}

/** `RUN python3 -c "import a, b" 2>/dev/null || pip install ...`: a base that has them installs nothing. */
export function pipIfMissingStep(name: string, comment: string, imports: string[], pip: string[]): DockerfileStep {
  return {
    name,
    comment,
    hint: `the base image lacks ${imports.join(", ")} and pip could not install them: let the Docker daemon reach PyPI, or use a base image that has them (--base-image)`,
    instructions: [`RUN python3 -c "import ${imports.join(", ")}" 2>/dev/null || ${[...PIP_INSTALL, ...pip].map(shellWord).join(" ")}`],
  };
}

/** numpy: the runtime's only dependency (it speaks ZMTP itself; pyzmq is optional, CLIPPER_RPC_TRANSPORT=pyzmq). */
export function pythonRuntimeDependenciesStep(): DockerfileStep {
  return pipIfMissingStep(
    "the runtime's Python dependency (numpy)",
    "The runtime's dependency, installed only if the base image lacks it",
    ["numpy"],
    ["numpy"],
  );
}

export function frameworkDependenciesStep(framework: ModelFramework, gpu: boolean): DockerfileStep | undefined {
  const packages = frameworkPackages(framework, gpu);
  if (!packages) return undefined;
  const names = packages.pip.filter((p, i, all) => !p.startsWith("-") && !all[i - 1]?.startsWith("-"));
  return pipIfMissingStep(
    `${framework} packages (${names.join(", ")})`,
    `${framework}: ${names.join(", ")}, installed only if the base image lacks them`,
    packages.imports,
    packages.pip,
  );
}

/** What the image builder knows of a pickled predict function (a `.pkl` predict file). */
export interface PickledPredict {
  /** The predict file's name, for comments and messages. */
  file: string;
  /** The cloudpickle version recorded in the file's header (clipper_runtime.save); absent for a Clipper-era pickle. */
  cloudpickle?: string;
}

/** A version we write into a shell command: PEP 440 characters only. */
export const CLOUDPICKLE_VERSION = /^[0-9][0-9A-Za-z.+!-]*$/;

/**
 * cloudpickle for a pickled predict function: exactly the version that pickled it (installed unless
 * the base image has exactly that version), or, when the pickle records none, any version the base
 * image has (installed only when it has none).
 */
export function cloudpickleStep(pickled: PickledPredict): DockerfileStep {
  const version = pickled.cloudpickle;
  if (version === undefined || !CLOUDPICKLE_VERSION.test(version)) {
    return pipIfMissingStep(
      `cloudpickle, not pinned: ${pickled.file} records no cloudpickle version`,
      `cloudpickle for the pickled predict function; ${pickled.file} records no version (not saved with clipper_runtime.save), so none is pinned`,
      ["cloudpickle"],
      ["cloudpickle"],
    );
  }
  const check = `import cloudpickle, sys; sys.exit(cloudpickle.__version__ != "${version}")`;
  return {
    name: `cloudpickle ${version}, the version that pickled ${pickled.file}`,
    comment: `cloudpickle ${version}, the version that pickled ${pickled.file}, installed unless the base image has exactly it`,
    hint: `${pickled.file} was pickled with cloudpickle ${version}, which the base image lacks and pip could not install: let the Docker daemon reach PyPI, use a base image with cloudpickle ${version} (--base-image), or re-save the function with the cloudpickle the base image has (python3 -m clipper_runtime.save)`,
    instructions: [`RUN python3 -c ${shellWord(check)} 2>/dev/null || ${[...PIP_INSTALL, `cloudpickle==${version}`].map(shellWord).join(" ")}`],
  };
}

/** The user's requirements file, copied into the context as clipper/requirements.txt. */
export function requirementsStep(fileName: string): DockerfileStep {
  return {
    name: `the model's requirements (${fileName}, pip install -r)`,
    comment: `The model's requirements (${fileName})`,
    hint: `check the package names and versions in ${fileName}, and that the Docker daemon can reach PyPI (or the index pip is configured for); offline, use a base image that already has them (--base-image)`,
    instructions: [
      `COPY clipper/requirements.txt ${CLIPPER_ROOT}/requirements.txt`,
      `RUN ${execForm([...PIP_INSTALL, "-r", `${CLIPPER_ROOT}/requirements.txt`])}`,
    ],
  };
}

export function packagesStep(packages: readonly string[]): DockerfileStep {
  return {
    name: `the model's packages (pip install ${packages.join(" ")})`,
    comment: "The model's packages",
    hint: "check the package names and versions (--pkg), and that the Docker daemon can reach PyPI; offline, use a base image that already has them (--base-image)",
    instructions: [`RUN ${execForm([...PIP_INSTALL, ...packages])}`],
  };
}

/** The Python runtime (runtime/python/clipper_runtime), importable as `clipper_runtime`. */
export function pythonRuntimeStep(): DockerfileStep {
  return {
    name: "the Clipper Python runtime",
    comment: "The Clipper Python runtime",
    instructions: [`COPY clipper/python ${CLIPPER_ROOT}/python`, `ENV PYTHONPATH=${CLIPPER_ROOT}/python\${PYTHONPATH:+:\$PYTHONPATH}`],
  };
}

// ---------------------------------------------------------------------------------------------
// Node steps

export function nodeEnvStep(): DockerfileStep {
  return { name: "Node environment", instructions: ["ENV NODE_ENV=production"] };
}

export function nodeVersionCheckStep(choice: BaseImageChoice): DockerfileStep {
  return {
    name: "Node.js 20 or newer in the base image",
    comment: "The runtime needs Node.js 20 or newer",
    hint: `use a base image with Node.js 20 or newer (${choice.flag}), such as node:20-bookworm-slim`,
    instructions: [
      `RUN node -e "process.exit(+process.versions.node.split('.')[0] >= 20 ? 0 : 1)" || (echo "the base image needs Node.js 20 or newer, found: $(node --version 2>&1)" >&2; exit 1)`,
    ],
  };
}

/** The context's clipper/ directory (compiled runtime, package.json, production node_modules). */
export function nodeRuntimeStep(): DockerfileStep {
  return {
    name: "the Clipper Node runtime",
    comment: "The Clipper Node runtime (compiled) and its production dependencies",
    instructions: [`COPY clipper ${CLIPPER_ROOT}`],
  };
}

export function npmDependenciesStep(dependencies: readonly string[]): DockerfileStep {
  return {
    name: `the model's npm dependencies (npm install ${dependencies.join(" ")})`,
    comment: "The model's npm dependencies",
    hint: "check the package names and that the Docker daemon can reach the npm registry; the base image needs npm (the official node images have it)",
    instructions: [
      `WORKDIR ${MODEL_ROOT}`,
      `RUN ${execForm(["npm", "install", "--omit=dev", "--no-audit", "--no-fund", "--no-package-lock", ...dependencies])}`,
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Templates

type Slots = Record<string, DockerfileStep | readonly (DockerfileStep | undefined)[] | undefined>;

/** Fills a template's `{{slot}}` lines with steps (one, or several in order); an absent step drops its line. */
export function renderTemplate(template: string, slots: Slots): RenderedDockerfile {
  const lines: string[] = [];
  const instructions: RenderedDockerfile["instructions"] = [];
  const used = new Set<string>();
  for (const line of template.split("\n")) {
    const slot = /^\s*\{\{\s*([a-z_]+)\s*\}\}\s*$/.exec(line)?.[1];
    if (slot === undefined) {
      if (/\{\{/.test(line)) throw new Error(`Dockerfile template line '${line}' has a placeholder that is not alone on its line`);
      lines.push(line);
      if (line.trim() && !line.trim().startsWith("#")) instructions.push({ step: "template", instruction: line.trim() });
      continue;
    }
    if (!(slot in slots)) throw new Error(`Dockerfile template names an unknown step '{{${slot}}}'`);
    used.add(slot);
    const filled = slots[slot];
    const steps: readonly (DockerfileStep | undefined)[] = filled === undefined ? [] : "instructions" in filled ? [filled] : filled;
    for (const step of steps) {
      if (!step) continue;
      if (step.comment) lines.push(`# ${step.comment}`);
      for (const instruction of step.instructions) {
        lines.push(instruction);
        instructions.push({ step: step.name, instruction, ...(step.hint ? { hint: step.hint } : {}) });
      }
    }
  }
  const unused = Object.keys(slots).filter((s) => !used.has(s));
  if (unused.length > 0) throw new Error(`Dockerfile template has no place for ${unused.map((s) => `{{${s}}}`).join(", ")}`);
  const text = `${lines.join("\n").trimEnd()}\n`;
  return { text, instructions };
}

export function readTemplate(name: "python" | "node" | "runtime"): string {
  return readFileSync(join(packageRoot(), "templates", "docker", `${name}.Dockerfile`), "utf8");
}

// ---------------------------------------------------------------------------------------------
// Whole Dockerfiles

export const PYTHON_COMMAND = ["python3", "-m", "clipper_runtime"];
export const NODE_MODEL_COMMAND = ["node", `${CLIPPER_ROOT}/dist/runtime/container-node/main.js`];

/** The image's CLIPPER_* variables (the runtime reads them at start-up). */
export function modelEnv(request: ModelImageRequest): Record<string, string> {
  return {
    CLIPPER_MODEL_NAME: request.name,
    CLIPPER_MODEL_VERSION: request.version,
    CLIPPER_INPUT_TYPE: request.inputType,
    CLIPPER_MODEL_PATH: MODEL_ROOT,
    CLIPPER_PREDICT: modelLayout(request).predict,
    CLIPPER_FRAMEWORK: request.framework,
  };
}

/** The labels of a model image: what it holds and which cluster built it (stop --remove-images reads them). */
export const MODEL_IMAGE_LABEL = {
  name: "ai.clipper.model.name",
  version: "ai.clipper.model.version",
  framework: "ai.clipper.framework",
  cluster: "ai.clipper.cluster",
} as const;

export function modelLabels(request: ModelImageRequest): Record<string, string> {
  return {
    [MODEL_IMAGE_LABEL.name]: request.name,
    [MODEL_IMAGE_LABEL.version]: request.version,
    [MODEL_IMAGE_LABEL.framework]: request.framework,
    [MODEL_IMAGE_LABEL.cluster]: request.cluster,
  };
}

/**
 * The Dockerfile of a model image, from the template of its runtime (Python or Node). `pickled`:
 * the predict file is a pickled function (`.pkl`), and what its header records (buildModelImage
 * reads it); the image then gets that cloudpickle version after the framework's packages.
 */
export function modelDockerfile(request: ModelImageRequest, pickled?: PickledPredict): RenderedDockerfile {
  const gpu = request.gpu ?? false;
  const base = baseStep(request.baseImage?.trim() || defaultBaseImage(request.framework, gpu), MODEL_BASE_IMAGE);
  const common = {
    base,
    model: modelFilesStep(),
    model_env: modelEnvStep(modelEnv(request)),
    labels: labelsStep(modelLabels(request)),
  };
  if (request.framework === "node") {
    const deps = request.npmDependencies ?? [];
    return renderTemplate(readTemplate("node"), {
      ...common,
      node_env: nodeEnvStep(),
      node_version_check: nodeVersionCheckStep(MODEL_BASE_IMAGE),
      runtime: nodeRuntimeStep(),
      npm_dependencies: deps.length > 0 ? npmDependenciesStep(deps) : undefined,
      command: commandStep(NODE_MODEL_COMMAND),
    });
  }
  const packages = request.packages ?? [];
  return renderTemplate(readTemplate("python"), {
    ...common,
    python_env: pythonEnvStep(),
    pip_check: packages.length > 0 || request.requirementsFile ? pipCheckStep() : undefined,
    runtime_dependencies: pythonRuntimeDependenciesStep(),
    framework_dependencies: [frameworkDependenciesStep(request.framework, gpu), pickled ? cloudpickleStep(pickled) : undefined],
    requirements: request.requirementsFile ? requirementsStep(basename(request.requirementsFile)) : undefined,
    packages: packages.length > 0 ? packagesStep(packages) : undefined,
    runtime: pythonRuntimeStep(),
    command: commandStep(PYTHON_COMMAND),
  });
}

export const RUNTIME_HASH_LABEL = "ai.clipper.runtime.hash";
export const RUNTIME_VERSION_LABEL = "ai.clipper.runtime.version";

/** The runtime image's Dockerfile; `hash` (of everything else) goes into a label. */
export function runtimeDockerfile(options: { baseImage?: string; version: string; hash?: string }): RenderedDockerfile {
  const labels: Record<string, string> = { [RUNTIME_VERSION_LABEL]: options.version };
  if (options.hash) labels[RUNTIME_HASH_LABEL] = options.hash;
  return renderTemplate(readTemplate("runtime"), {
    base: baseStep(options.baseImage?.trim() || NODE_BASE_IMAGE, RUNTIME_BASE_IMAGE),
    node_env: nodeEnvStep(),
    node_version_check: nodeVersionCheckStep(RUNTIME_BASE_IMAGE),
    runtime: { ...nodeRuntimeStep(), instructions: [`COPY clipper ${CLIPPER_ROOT}`, `WORKDIR ${CLIPPER_ROOT}`] },
    labels: labelsStep(labels),
    command: commandStep(["node", `${CLIPPER_ROOT}/dist/runtime/management/main.js`]),
  });
}
