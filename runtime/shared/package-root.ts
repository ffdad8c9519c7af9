/** Locates files shipped with the package, whether running from dist/ or from sources. */
import { existsSync, readFileSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** This package's npm name (`clipper` on npm is an unrelated package); the command stays `clipper`. */
export const PACKAGE_NAME = "clipper-serve";

let cached: string | undefined;

/** The directory holding this package's package.json (found by its name, so no other package.json on the way up is taken for it). */
export function packageRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, "utf8")).name === PACKAGE_NAME) {
      cached = dir;
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the ${PACKAGE_NAME} package root`);
    dir = parent;
  }
}

/** Path of a compiled runtime entry point, e.g. runtimeEntry("frontend/main.js"). */
export function runtimeEntry(relative: string): string {
  return join(packageRoot(), "dist", "runtime", relative);
}

/** Directory to put on PYTHONPATH so `python -m clipper_runtime` finds the Python runtime. */
export function pythonRuntimeDir(): string {
  return join(packageRoot(), "runtime", "python");
}

/** `env` with the Python runtime first on PYTHONPATH (what is already there stays, after it). */
export function withPythonRuntimePath(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, PYTHONPATH: env.PYTHONPATH ? `${pythonRuntimeDir()}${delimiter}${env.PYTHONPATH}` : pythonRuntimeDir() };
}
