/**
 * `--predict FILE[:FUNCTION]`: which file a model runs and which function in it, checked against
 * the framework before anything is built or started.
 */
import { existsSync, statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { ClipperError } from "./errors.js";
import type { ModelFramework } from "./managers/container-manager.js";

/** The runtime a predict file runs on when none is named: Python for .py and .pkl, else Node. */
function frameworkOf(file: string): ModelFramework {
  return /\.(py|pkl)$/i.test(file) ? "python" : "node";
}

/**
 * Splits `file[:function]`, keeping Windows-free paths simple: the last colon separates. Without a
 * framework, the file's extension picks one (frameworkOf).
 */
export function parsePredictSpec(spec: string, framework?: ModelFramework): { file: string; fn: string; framework: ModelFramework } {
  const colon = spec.lastIndexOf(":");
  const file = colon > 0 ? spec.slice(0, colon) : spec;
  framework ??= frameworkOf(file);
  const fn = colon > 0 ? spec.slice(colon + 1) : "predict";
  if (!/^[A-Za-z_$][\w$]*$/.test(fn)) throw new ClipperError("USAGE", `'${fn}' is not a valid function name in --predict ${spec}`);
  const absolute = isAbsolute(file) ? file : resolve(file);
  if (!existsSync(absolute) || !statSync(absolute).isFile()) {
    throw new ClipperError("USAGE", `predict file ${absolute} does not exist`);
  }
  const python = framework !== "node";
  // Python: a source file, or a callable pickled with cloudpickle (`python3 -m clipper_runtime.save`).
  const ok = python ? /\.(py|pkl)$/i.test(file) : /\.(m?js|cjs|m?ts|cts)$/i.test(file);
  if (!ok) {
    throw new ClipperError("USAGE", python
      ? `--framework ${framework} needs a .py predict file or a .pkl pickled function, got ${file}`
      : `--framework node needs a .js/.mjs/.cjs/.ts/.mts predict file, got ${file}`);
  }
  return { file: absolute, fn, framework };
}

/**
 * What a deploy runs: the checked `--predict` (checked even beside `--image`, as it is used for the
 * model's path), or undefined with a prebuilt image; neither is a usage error. A live deploy and a
 * Kubernetes dry run call this alike, so a dry run fails wherever the deploy would.
 */
export function deployPredictSpec(options: { image?: string; predict?: string; framework?: ModelFramework }): ReturnType<typeof parsePredictSpec> | undefined {
  if (!options.image && !options.predict) throw new ClipperError("USAGE", "give --predict FILE[:FUNCTION] (or --image IMAGE with --manager docker)");
  // A prebuilt image brings its own runtime; anything this deploy runs or builds needs one named.
  if (!options.image && !options.framework) {
    throw new ClipperError("USAGE", "give --framework (python, node, ...) for the predict file", "or deploy a prebuilt image with --image IMAGE");
  }
  return options.predict ? parsePredictSpec(options.predict, options.framework) : undefined;
}
