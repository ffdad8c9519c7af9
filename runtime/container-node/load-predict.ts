/**
 * Finds and loads the user's predict function. JavaScript (.mjs/.js/.cjs) is imported as it is;
 * TypeScript (.ts/.mts/.cts/.tsx) is bundled with esbuild into a temporary .mjs under os.tmpdir()
 * first. Sibling sources are bundled in; installed npm packages stay external and are imported from
 * where they were resolved (the module's own node_modules chain), so native addons keep working.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { isBuiltin } from "node:module";
import { tmpdir } from "node:os";
import { basename, dirname, extname, isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Loader, OnResolveArgs, OnResolveResult, Plugin, PluginBuild, ResolveResult } from "esbuild";
import type { PredictSpec } from "./env.js";
import { isFile } from "../shared/path-kind.js";

/** Thrown when the predict module cannot be found, built, imported or has no usable export. */
export class PredictLoadError extends Error {
  override readonly name = "PredictLoadError";
}

export type PredictFunction = (inputs: unknown[], context?: unknown) => unknown;

export interface LoadedPredict {
  predict: PredictFunction;
  /** Absolute path of the user's module. */
  file: string;
  exportName: string;
}

export const DEFAULT_PREDICT_FILES = ["predict.mjs", "predict.js", "predict.ts"] as const;
const JS_EXTENSIONS = new Set([".mjs", ".js", ".cjs"]);
const TS_EXTENSIONS = new Set([".ts", ".mts", ".cts", ".tsx"]);

/** The absolute path of the predict module a spec names, checking that it exists. */
export function resolvePredictFile(spec: PredictSpec, modelPath: string): string {
  if (spec.file === undefined) {
    const found = DEFAULT_PREDICT_FILES.map((f) => join(modelPath, f)).find((p) => isFile(p));
    if (!found) {
      throw new PredictLoadError(
        `no predict module in ${resolve(modelPath)}: expected one of ${DEFAULT_PREDICT_FILES.join(", ")}, or set CLIPPER_PREDICT=file[:exportName]`,
      );
    }
    return resolve(found);
  }
  const file = isAbsolute(spec.file) ? spec.file : resolve(modelPath, spec.file);
  if (!isFile(file)) throw new PredictLoadError(`predict module ${file} does not exist or is not a file`);
  return file;
}

/** Loads the module and returns its predict function (named export, or `default` when asked). */
export async function loadPredict(spec: PredictSpec, modelPath: string): Promise<LoadedPredict> {
  const file = resolvePredictFile(spec, modelPath);
  const namespace = await importModule(file);
  return { predict: pickExport(namespace, spec.exportName, file), file, exportName: spec.exportName };
}

async function importModule(file: string): Promise<Record<string, unknown>> {
  const ext = extname(file).toLowerCase();
  if (JS_EXTENSIONS.has(ext)) return importFile(file, file);
  if (TS_EXTENSIONS.has(ext)) {
    const dir = await mkdtemp(join(tmpdir(), "clipper-node-model-"));
    try {
      const bundle = join(dir, `${basename(file, extname(file))}.mjs`);
      await bundleTypeScript(file, bundle);
      return await importFile(bundle, file);
    } finally {
      // The module is loaded (its inline source map too): nothing needs the bundle any more.
      await rm(dir, { recursive: true, force: true });
    }
  }
  throw new PredictLoadError(
    `cannot load predict module ${file}: unsupported extension '${ext || "(none)"}' (use .mjs, .js, .cjs, .ts, .mts or .cts)`,
  );
}

async function importFile(path: string, userFile: string): Promise<Record<string, unknown>> {
  try {
    return (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (err) {
    const e = err as Error;
    throw new PredictLoadError(`cannot import predict module ${userFile}: ${e?.message ?? String(err)}`, { cause: err });
  }
}

function pickExport(namespace: Record<string, unknown>, exportName: string, file: string): PredictFunction {
  let value = namespace[exportName];
  // A CommonJS module (module.exports = { predict }) shows its properties on `default`.
  const cjs = namespace["default"];
  if (value === undefined && exportName !== "default" && cjs !== null && typeof cjs === "object") {
    value = (cjs as Record<string, unknown>)[exportName];
  }
  if (typeof value === "function") return value as PredictFunction;
  const found = Object.keys(namespace)
    .filter((k) => k !== "module.exports")
    .sort();
  const list = found.length > 0 ? found.join(", ") : "none";
  const what = value === undefined ? "has no export" : `export is a ${typeof value}, not a function:`;
  throw new PredictLoadError(`predict module ${file} ${what} '${exportName}' (exports found: ${list})`);
}

/** Bundles a TypeScript entry (and the sources it imports) into one ESM file. */
export async function bundleTypeScript(entry: string, outfile: string): Promise<void> {
  const esbuild = await import("esbuild");
  const entryUrl = pathToFileURL(entry).href;
  try {
    await esbuild.build({
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      sourcemap: "inline",
      logLevel: "silent",
      absWorkingDir: dirname(entry),
      // CommonJS code bundled into ESM calls require() for Node built-ins; give it one that resolves
      // from the user's module.
      banner: {
        js: `import { createRequire as __clipperCreateRequire } from "node:module";\nconst require = __clipperCreateRequire(${JSON.stringify(entryUrl)});`,
      },
      plugins: [externalPackages(), originalImportMeta()],
    });
  } catch (err) {
    const e = err as { errors?: { text: string; location?: { file: string; line: number; column: number } | null }[] };
    const first = e.errors?.[0];
    const where = first?.location ? ` (${first.location.file}:${first.location.line}:${first.location.column})` : "";
    const detail = first ? `${first.text}${where}` : (err as Error).message;
    throw new PredictLoadError(`cannot bundle predict module ${entry}: ${detail}`, { cause: err });
  }
  process.setSourceMapsEnabled(true);
}

/**
 * Routes a build's bare imports (packages, built-ins; not relative paths) through `decide`, which
 * chooses what becomes of each. Built-ins stay external without asking. `resolve` asks esbuild where
 * the import leads (that nested resolution skips this hook). Shared with the image builder's bundler.
 */
export function onBareImport(
  build: PluginBuild,
  decide: (args: OnResolveArgs, resolve: () => Promise<ResolveResult>) => Promise<OnResolveResult | undefined>,
): void {
  build.onResolve({ filter: /^[^./]/ }, async (args) => {
    if (args.pluginData?.clipperResolving) return undefined;
    if (isBuiltin(args.path)) return { path: args.path, external: true };
    return decide(args, () => build.resolve(args.path, {
      kind: args.kind,
      importer: args.importer,
      resolveDir: args.resolveDir,
      pluginData: { clipperResolving: true },
    }));
  });
}

/** Installed packages stay external, imported by absolute URL from where esbuild resolved them. */
function externalPackages(): Plugin {
  return {
    name: "clipper-external-packages",
    setup(build) {
      onBareImport(build, async (_args, resolve) => {
        const resolved = await resolve();
        if (resolved.errors.length > 0) return { errors: resolved.errors };
        // Path aliases (tsconfig "paths") point at the user's own sources: bundle those.
        if (!resolved.path.split(/[\\/]/).includes("node_modules") || resolved.external) return resolved;
        return { path: pathToFileURL(resolved.path).href, external: true };
      });
    },
  };
}

const LOADERS: Record<string, Loader> = {
  ".ts": "ts", ".mts": "ts", ".cts": "ts", ".tsx": "tsx",
  ".js": "js", ".mjs": "js", ".cjs": "js", ".jsx": "jsx",
};

/**
 * The bundle lives in a temporary directory, so `import.meta.url` (and dirname/filename) would point
 * there; each of the user's sources keeps its own, so `new URL("./weights.json", import.meta.url)`
 * still finds the model's files.
 */
function originalImportMeta(): Plugin {
  return {
    name: "clipper-original-import-meta",
    setup(build) {
      build.onLoad({ filter: /\.[cm]?[jt]sx?$/ }, async (args) => {
        if (args.path.split(/[\\/]/).includes("node_modules") || !existsSync(args.path)) return undefined;
        const source = await readFile(args.path, "utf8");
        const loader = LOADERS[extname(args.path).toLowerCase()];
        if (!loader || !source.includes("import.meta")) return undefined;
        const meta: Record<string, string> = {
          url: pathToFileURL(args.path).href,
          filename: args.path,
          dirname: dirname(args.path),
        };
        const contents = source.replace(
          /\bimport\.meta\.(url|filename|dirname)\b/g,
          (_, key: string) => JSON.stringify(meta[key]),
        );
        return { contents, loader };
      });
    },
  };
}
