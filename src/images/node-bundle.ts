/**
 * A Node predict module (JS or TS) bundled on the host with esbuild into one ES module, with the
 * sources it imports and the npm packages it uses. Packages with native addons cannot be bundled;
 * they stay external and are copied into the image's /model/node_modules with their dependencies.
 * Packages the user names as npm dependencies stay external too (npm installs them in the image).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, extname, join, relative } from "node:path";
import type { Loader, Message, Plugin } from "esbuild";
import { onBareImport } from "../../runtime/container-node/load-predict.js";
import { ImageBuildError } from "./errors.js";
import { MODEL_ROOT } from "./layout.js";
import { packageName, readPackageJson } from "./node-runtime.js";

export interface NodeBundle {
  /** The bundle's text. */
  code: Uint8Array;
  /** Files esbuild copied (native addons required by path), relative to the bundle's directory. */
  assets: { path: string; contents: Uint8Array }[];
  /** External packages with native code, to copy into /model/node_modules: root name -> where to resolve it from. */
  nativePackages: { name: string; from: string }[];
}

export interface BundleOptions {
  entry: string;
  /** File name of the bundle (its directory is the entry's), e.g. model.clipper.mjs. */
  outName: string;
  /** Packages left out of the bundle (installed in the image). */
  external?: string[];
  /** Where a host source lands under /model (relative), so its import.meta.url keeps pointing beside it. */
  placeInModel?: (hostPath: string) => string | undefined;
}

const LOADERS: Record<string, Loader> = {
  ".ts": "ts", ".mts": "ts", ".cts": "ts", ".tsx": "tsx",
  ".js": "js", ".mjs": "js", ".cjs": "js", ".jsx": "jsx",
};

export async function bundleNodeModel(options: BundleOptions): Promise<NodeBundle> {
  const esbuild = await import("esbuild");
  const native = new Map<string, { name: string; from: string }>();
  const external = options.external ?? [];
  const entryDir = dirname(options.entry);
  const outfile = join(entryDir, options.outName);
  let result;
  try {
    result = await esbuild.build({
      entryPoints: [options.entry],
      outfile,
      bundle: true,
      write: false,
      platform: "node",
      format: "esm",
      target: "node20",
      logLevel: "silent",
      absWorkingDir: entryDir,
      loader: { ".node": "copy" },
      external: [...external, ...external.map((e) => `${e}/*`)],
      // CommonJS code bundled into ESM calls require() for built-ins and addons: give it one.
      banner: {
        js: 'import { createRequire as __clipperCreateRequire } from "node:module";\nconst require = __clipperCreateRequire(import.meta.url);',
      },
      plugins: [keepNativePackagesExternal(native, new Set(external)), containerImportMeta(options.placeInModel)],
    });
  } catch (err) {
    const errors = (err as { errors?: Message[] }).errors ?? [];
    const formatted = errors.map(formatMessage);
    const first = formatted[0] ?? (err as Error).message;
    const missing = errors.map((e) => /Could not resolve "([^"]+)"/.exec(e.text)?.[1]).find((m): m is string => m !== undefined);
    const hint = missing
      ? `install '${missing}' beside the predict module (npm install ${missing}), or name it as an npm dependency so that npm installs it in the image`
      : "fix the module so that esbuild can bundle it (the errors are listed)";
    throw new ImageBuildError(`bundling the predict module ${options.entry} (esbuild) failed: ${first}`, hint, formatted.join("\n"));
  }
  const main = result.outputFiles.find((f) => f.path === outfile);
  if (!main) throw new Error(`esbuild produced no ${outfile}`);
  const assets = result.outputFiles
    .filter((f) => f !== main)
    .map((f) => ({ path: relative(entryDir, f.path).split(/[\\/]/).join("/"), contents: f.contents }));
  return { code: main.contents, assets, nativePackages: [...native.values()] };
}

function formatMessage(m: Message): string {
  const where = m.location ? `${m.location.file}:${m.location.line}:${m.location.column}: ` : "";
  return `${where}${m.text}`;
}

/** Bare imports resolving into a package with native code stay external (copied beside the bundle). */
function keepNativePackagesExternal(found: Map<string, { name: string; from: string }>, external: Set<string>): Plugin {
  return {
    name: "clipper-native-packages",
    setup(build) {
      onBareImport(build, async (args, resolve) => {
        if (external.has(packageName(args.path))) return { path: args.path, external: true };
        const resolved = await resolve();
        if (resolved.errors.length > 0) return { errors: resolved.errors };
        if (resolved.external) return resolved;
        const root = packageRootOf(resolved.path);
        if (root && isNativePackage(root)) {
          const name = readPackageJson(root).name ?? packageName(args.path);
          if (!found.has(root)) found.set(root, { name, from: args.resolveDir });
          return { path: args.path, external: true };
        }
        return resolved;
      });
    },
  };
}

/** The root of the installed package holding `file` (the directory right under node_modules). */
export function packageRootOf(file: string): string | undefined {
  let dir = dirname(file);
  for (;;) {
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    if (basename(parent) === "node_modules") return dir;
    if (basename(parent).startsWith("@") && basename(dirname(parent)) === "node_modules") return dir;
    dir = parent;
  }
}

const nativeCache = new Map<string, boolean>();

/** Whether a package ships or builds a native addon (.node): node-gyp, prebuilds, or a .node file. */
export function isNativePackage(dir: string): boolean {
  let native = nativeCache.get(dir);
  if (native === undefined) {
    let pkg: { gypfile?: boolean } = {};
    try {
      pkg = readPackageJson(dir);
    } catch {
      // no package.json: judge by the files
    }
    native = pkg.gypfile === true || existsSync(join(dir, "binding.gyp")) || existsSync(join(dir, "prebuilds")) || hasNodeFile(dir, 5);
    nativeCache.set(dir, native);
  }
  return native;
}

function hasNodeFile(dir: string, depth: number): boolean {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return false;
  }
  for (const name of names) {
    if (name.endsWith(".node")) return true;
    if (depth > 0 && name !== "node_modules" && !name.startsWith(".")) {
      const path = join(dir, name);
      try {
        if (statSync(path).isDirectory() && hasNodeFile(path, depth - 1)) return true;
      } catch {
        // unreadable: skip
      }
    }
  }
  return false;
}

/**
 * Each of the user's sources keeps its own import.meta.url (and dirname/filename), pointing where
 * it lands in the image, so `new URL("./weights.json", import.meta.url)` finds the file under /model.
 */
function containerImportMeta(place: BundleOptions["placeInModel"]): Plugin {
  return {
    name: "clipper-container-import-meta",
    setup(build) {
      if (!place) return;
      build.onLoad({ filter: /\.[cm]?[jt]sx?$/ }, async (args) => {
        if (args.path.split(/[\\/]/).includes("node_modules") || !existsSync(args.path)) return undefined;
        const rel = place(args.path);
        const loader = LOADERS[extname(args.path).toLowerCase()];
        if (rel === undefined || !loader) return undefined;
        const source = await readFile(args.path, "utf8");
        if (!source.includes("import.meta")) return undefined;
        const filename = `${MODEL_ROOT}/${rel}`;
        const meta: Record<string, string> = {
          url: `file://${filename.split("/").map(encodeURIComponent).join("/")}`,
          filename,
          dirname: filename.slice(0, filename.lastIndexOf("/")),
        };
        const contents = source.replace(/\bimport\.meta\.(url|filename|dirname)\b/g, (_, key: string) => JSON.stringify(meta[key]));
        return { contents, loader };
      });
    },
  };
}
