/**
 * The model's side of a build context: what goes to /model (model/ in the context), the Python
 * runtime (clipper/python) and the requirements file, or for Node the bundle and its native packages.
 */
import { existsSync, statSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { pythonRuntimeDir } from "../../runtime/shared/package-root.js";
import { ClipperError } from "../errors.js";
import type { BuildContext, PathFilter } from "./context.js";
import { placeInModel, within, type ModelLayout } from "./layout.js";
import { bundleNodeModel } from "./node-bundle.js";
import { packageClosure, packageFilter, type TargetPlatform } from "./node-runtime.js";
import type { ModelImageRequest } from "./types.js";
import { isFile } from "../../runtime/shared/path-kind.js";

/** Never copied from a model directory: version control, caches, virtual environments, editors. */
const IGNORED_DIRS = new Set([".git", ".hg", ".svn", "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache", ".ipynb_checkpoints", ".idea", ".vscode", "node_modules", ".clipper"]);
const IGNORED_FILES = /(\.py[co]|^\.DS_Store)$/;

export const modelFilter: PathFilter = (relPath, isDirectory) => {
  const name = relPath.slice(relPath.lastIndexOf("/") + 1);
  return isDirectory ? !IGNORED_DIRS.has(name) : !IGNORED_FILES.test(name);
};

/** Checks the request's paths before anything is sent; a bad one is a usage error. */
export function checkModelPaths(request: Pick<ModelImageRequest, "predictFile" | "requirementsFile">, layout: Pick<ModelLayout, "modelDir">): void {
  if (!isFile(request.predictFile)) throw new ClipperError("USAGE", `predict file ${request.predictFile} does not exist`);
  if (!existsSync(layout.modelDir) || !statSync(layout.modelDir).isDirectory()) {
    throw new ClipperError("USAGE", `model path ${layout.modelDir} is not a directory`);
  }
  if (request.requirementsFile && !isFile(request.requirementsFile)) {
    throw new ClipperError("USAGE", `requirements file ${request.requirementsFile} does not exist`);
  }
}

/** Python: the artifacts, the predict file with its sibling modules and packages, the runtime. */
export async function addPythonModel(ctx: BuildContext, request: ModelImageRequest, layout: ModelLayout): Promise<void> {
  await ctx.addDirectory("model", layout.modelDir, modelFilter);
  if (layout.predictDir !== layout.modelDir && within(layout.modelDir, layout.predictDir) === undefined) {
    // The predict file lives elsewhere: bring its modules (*.py) and packages (dirs with __init__.py).
    for (const entry of await readdir(layout.predictDir, { withFileTypes: true })) {
      const path = join(layout.predictDir, entry.name);
      if (!modelFilter(entry.name, entry.isDirectory())) continue;
      if (entry.name.endsWith(".py") && isFile(path)) ctx.addFile(`model/${entry.name}`, path, statSync(path));
      else if (existsSync(join(path, "__init__.py")) && statSync(path).isDirectory()) await ctx.addDirectory(`model/${entry.name}`, path, modelFilter);
    }
    ctx.addFile(`model/${layout.entry}`, request.predictFile, statSync(request.predictFile));
  }
  await ctx.addDirectory("clipper/python/clipper_runtime", join(pythonRuntimeDir(), "clipper_runtime"), modelFilter);
  if (request.requirementsFile) ctx.addFile("clipper/requirements.txt", request.requirementsFile, statSync(request.requirementsFile));
}

/** Node: the artifacts, the bundled predict module beside them, and any native packages it needs. */
export async function addNodeModel(ctx: BuildContext, request: ModelImageRequest, layout: ModelLayout, platform: TargetPlatform): Promise<void> {
  await ctx.addDirectory("model", layout.modelDir, modelFilter);
  const entryDir = layout.entry.includes("/") ? layout.entry.slice(0, layout.entry.lastIndexOf("/") + 1) : "";
  const bundle = await bundleNodeModel({
    entry: request.predictFile,
    outName: layout.entry.slice(entryDir.length),
    external: request.npmDependencies ?? [],
    placeInModel: (path) => placeInModel(layout, path),
  });
  ctx.addData(`model/${layout.entry}`, Buffer.from(bundle.code));
  for (const asset of bundle.assets) ctx.addData(`model/${entryDir}${asset.path}`, Buffer.from(asset.contents), 0o755);
  if (bundle.nativePackages.length > 0) {
    // Flattened into /model/node_modules, where Node looks first from the bundle (first version wins).
    const filter = packageFilter(platform);
    const placed = new Set<string>();
    for (const [dir, name] of packageClosure(bundle.nativePackages)) {
      if (placed.has(name)) continue;
      placed.add(name);
      await ctx.addDirectory(`model/node_modules/${name}`, dir, filter);
    }
  }
}
