/**
 * Where a model's files land in its image (pure path arithmetic, no file system). As in Clipper,
 * everything the model needs is under /model (CLIPPER_MODEL_PATH): the artifacts directory's
 * contents at its root, and the predict file with the modules beside it.
 */
import { basename, dirname, extname, isAbsolute, relative, resolve, sep } from "node:path";
import type { ModelImageRequest } from "./types.js";

export const MODEL_ROOT = "/model";
export const CLIPPER_ROOT = "/clipper";
/** Repository of the image the management daemon and the query frontends run from. */
export const RUNTIME_REPOSITORY = "clipper-runtime";
/** Suffix of the bundle a Node predict module becomes: model.ts -> model.clipper.mjs. */
export const NODE_BUNDLE_SUFFIX = ".clipper.mjs";

export interface ModelLayout {
  /** Host directory whose contents become /model. */
  modelDir: string;
  /** Host directory holding the predict file (its modules go to /model as well). */
  predictDir: string;
  /** The predict file (Python) or its bundle (Node), relative to /model, with `/` separators. */
  entry: string;
  /** CLIPPER_PREDICT: `/model/<entry>:<function>`. */
  predict: string;
}

export function modelLayout(request: Pick<ModelImageRequest, "framework" | "predictFile" | "predictFunction" | "modelPath">): ModelLayout {
  const predictFile = resolve(request.predictFile);
  const predictDir = dirname(predictFile);
  const modelDir = resolve(request.modelPath ?? predictDir);
  const placed = placeInModel({ modelDir, predictDir }, predictFile) ?? basename(predictFile);
  let entry = placed;
  if (request.framework === "node") {
    const dir = placed.includes("/") ? placed.slice(0, placed.lastIndexOf("/") + 1) : "";
    entry = `${dir}${basename(predictFile, extname(predictFile))}${NODE_BUNDLE_SUFFIX}`;
  }
  const fn = request.predictFunction.trim() || "predict";
  return { modelDir, predictDir, entry, predict: `${MODEL_ROOT}/${entry}:${fn}` };
}

/**
 * Where a host file goes under /model (relative, `/` separators): inside the artifacts directory it
 * keeps its place there; otherwise inside the predict file's directory it keeps its place there;
 * elsewhere it has none.
 */
export function placeInModel(layout: Pick<ModelLayout, "modelDir" | "predictDir">, hostPath: string): string | undefined {
  return within(layout.modelDir, hostPath) ?? within(layout.predictDir, hostPath);
}

/** `child` relative to `parent` with `/` separators, when it lies strictly inside it. */
export function within(parent: string, child: string): string | undefined {
  const rel = relative(parent, resolve(child));
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return undefined;
  return rel.split(sep).join("/");
}

/** A registry address: host[:port] with an optional repository path. */
export const REGISTRY_ADDRESS = /^[A-Za-z0-9.-]+(?::\d+)?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

/** `<registry>/<cluster>-<name>:<version>`, the registry part only when given. */
export function modelImageTag(request: Pick<ModelImageRequest, "cluster" | "name" | "version" | "registry">): string {
  const registry = request.registry?.trim().replace(/\/+$/, "");
  const repo = `${request.cluster}-${request.name}`;
  return `${registry ? `${registry}/` : ""}${repo}:${request.version}`;
}

/**
 * The runtime image's name before it is built: `<registry>/clipper-runtime:<version>`. The builder
 * adds a content hash to the tag it builds (`<version>-<hash>`); a manifest printed without a build
 * names the release, to be retagged or overridden.
 */
export function runtimeImageName(version: string, registry?: string): string {
  const prefix = registry?.trim().replace(/\/+$/, "");
  return `${prefix ? `${prefix}/` : ""}${RUNTIME_REPOSITORY}:${version}`;
}
