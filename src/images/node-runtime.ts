/**
 * The compiled Node runtime and the production packages it imports, added to a build context under
 * clipper/. Which compiled files are needed comes from esbuild's import graph of the entry points;
 * which packages, from their static imports and then the package.json dependency closure, resolved
 * the way Node resolves them. Nothing is hardcoded, and nothing unused is sent.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { isBuiltin } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { PACKAGE_NAME, packageRoot } from "../../runtime/shared/package-root.js";
import { ClipperError } from "../errors.js";
import type { BuildContext, PathFilter } from "./context.js";

/** A platform in Node's naming (process.platform / process.arch); absent parts match anything. */
export interface TargetPlatform {
  os?: string;
  arch?: string;
}

const OSES = "linux|darwin|win32|freebsd|openbsd|netbsd|android|sunos|aix";
const ARCHES = "x64|arm64|ia32|arm|ppc64|s390x|riscv64|loong64|mips64el";
const OS_ARCH = new RegExp(`^(${OSES})-(${ARCHES})(?:$|[-_.])`);
const OS_ONLY = new RegExp(`^(${OSES})$`);
const ARCH_ONLY = new RegExp(`^(${ARCHES})$`);
const BINARY_DIRS = new Set(["build", "prebuilds", "bin", "binaries"]);

/**
 * Whether a directory (relative path inside a package) holds native binaries for another platform:
 * `prebuilds/darwin-arm64`, `build/win32/x64`, `build/darwin` ...
 */
export function isForeignPlatformDir(relPath: string, target: TargetPlatform): boolean {
  const parts = relPath.split("/");
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const both = OS_ARCH.exec(part);
    if (both) return mismatch(both[1], target.os) || mismatch(both[2], target.arch);
    if (OS_ONLY.test(part) && i > 0 && BINARY_DIRS.has(parts[i - 1]!)) {
      if (mismatch(part, target.os)) return true;
      const next = parts[i + 1];
      if (next !== undefined && ARCH_ONLY.test(next) && mismatch(next, target.arch)) return true;
    }
  }
  return false;
}

function mismatch(value: string | undefined, wanted: string | undefined): boolean {
  return wanted !== undefined && value !== undefined && value !== wanted;
}

/** Files a package does not need at run time: types, sources, maps, docs. */
const DEV_FILE = /(\.d\.[cm]?ts|\.[cm]?tsx?|\.map|\.md|\.markdown|\.cc|\.cpp|\.hpp|\.h|\.gyp|\.gypi)$/i;
const SKIP_DIRS = new Set(["node_modules", ".git", ".github"]);
/** Top-level package directories that hold no code a package loads. */
const SKIP_TOP_DIRS = new Set(["test", "tests", "__tests__", "benchmark", "benchmarks", "bench", "example", "examples", "docs", "coverage"]);

/** The copy filter for an installed package: production files for the target platform only. */
export function packageFilter(target: TargetPlatform): PathFilter {
  return (relPath, isDirectory) => {
    const name = relPath.slice(relPath.lastIndexOf("/") + 1);
    if (isDirectory) {
      if (SKIP_DIRS.has(name) || (name === relPath && SKIP_TOP_DIRS.has(name))) return false;
      return !isForeignPlatformDir(relPath, target);
    }
    return !DEV_FILE.test(name);
  };
}

interface PackageJson {
  name?: string;
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  gypfile?: boolean;
}

export function readPackageJson(dir: string): PackageJson {
  return JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as PackageJson;
}

/** `@scope/name/sub/path` -> `@scope/name`; `name/sub` -> `name`. */
export function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

/** The directory of `name` as Node finds it from `fromDir` (node_modules up the tree), if installed. */
export function resolvePackageDir(name: string, fromDir: string): string | undefined {
  let dir = resolve(fromDir);
  for (;;) {
    if (!dir.endsWith(`${sep}node_modules`)) {
      const candidate = join(dir, "node_modules", name);
      if (existsSync(join(candidate, "package.json"))) return candidate;
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * Every installed package reachable from `roots` (package name, the directory to resolve it from)
 * through dependencies, optionalDependencies and peerDependencies. A missing required dependency is
 * an error; a missing optional or peer dependency is not.
 */
export function packageClosure(roots: { name: string; from: string }[]): Map<string, string> {
  const found = new Map<string, string>(); // package dir -> name
  const queue: { name: string; from: string; required: boolean; by: string }[] = roots.map((r) => ({ ...r, required: true, by: r.from }));
  while (queue.length > 0) {
    const { name, from, required, by } = queue.shift()!;
    const dir = resolvePackageDir(name, from);
    if (!dir) {
      if (required) {
        throw new ClipperError("BUILD_FAILED", `package '${name}' (needed by ${by}) is not installed`, `run \`npm install\` in the ${PACKAGE_NAME} package`);
      }
      continue;
    }
    if (found.has(dir)) continue;
    found.set(dir, name);
    const pkg = readPackageJson(dir);
    for (const dep of Object.keys(pkg.dependencies ?? {})) queue.push({ name: dep, from: dir, required: true, by: name });
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) queue.push({ name: dep, from: dir, required: false, by: name });
    for (const dep of Object.keys(pkg.peerDependencies ?? {})) queue.push({ name: dep, from: dir, required: false, by: name });
  }
  return found;
}

/** Copies packages (dir -> name) into the context under `target`, keeping their node_modules nesting. */
export async function addPackages(ctx: BuildContext, packages: Map<string, string>, target: string, root: string, platform: TargetPlatform): Promise<void> {
  const filter = packageFilter(platform);
  for (const [dir, name] of [...packages].sort(([a], [b]) => a.localeCompare(b))) {
    const rel = relative(root, dir);
    const inside = rel && !rel.startsWith("..") && rel.split(sep).includes("node_modules");
    const place = inside ? rel.split(sep).join("/") : `node_modules/${name}`;
    await ctx.addDirectory(`${target}/${place}`, dir, filter);
  }
}

export interface RuntimeFiles {
  /** Compiled files, relative to the package root (`dist/runtime/...`). */
  files: string[];
  /** Installed package directory -> package name. */
  packages: Map<string, string>;
}

/** Paths of the compiled entry points under dist/<under>, checked to exist. */
function compiledEntries(root: string, entries: string[], under = "runtime"): string[] {
  return entries.map((e) => {
    const path = join(root, "dist", under, e);
    if (!existsSync(path)) {
      throw new ClipperError("BUILD_FAILED", `the compiled runtime is missing: ${path} does not exist`,
        `build the package first: \`npm run build\` in ${root}`);
    }
    return path;
  });
}

/**
 * The compiled files and packages the given entry points (relative to dist/runtime; `extraEntries`
 * relative to dist) load at run time. Dynamic imports (optional features, such as esbuild for
 * TypeScript models) are left out.
 */
export async function runtimeFiles(entries: string[], root = packageRoot(), extraEntries: string[] = []): Promise<RuntimeFiles> {
  const entryPoints = [...compiledEntries(root, entries), ...compiledEntries(root, extraEntries, ".")];
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    entryPoints,
    absWorkingDir: root,
    bundle: true,
    write: false,
    metafile: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    outdir: join(root, ".clipper-image-scan"),
    logLevel: "silent",
  });
  const files: string[] = [];
  const roots: { name: string; from: string }[] = [];
  for (const [input, info] of Object.entries(result.metafile.inputs)) {
    files.push(input.split(sep).join("/"));
    for (const imp of info.imports) {
      if (!imp.external || imp.kind === "dynamic-import" || isBuiltin(imp.path) || imp.path.startsWith(".")) continue;
      roots.push({ name: packageName(imp.path), from: dirname(join(root, input)) });
    }
  }
  return { files: files.sort(), packages: packageClosure(roots) };
}

/** Every compiled .js file under dist/runtime, relative to it. */
function allCompiledRuntime(root: string): string[] {
  const base = join(root, "dist", "runtime");
  if (!existsSync(base)) compiledEntries(root, ["."]);
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const relPath = rel ? `${rel}/${name}` : name;
      if (statSync(path).isDirectory()) walk(path, relPath);
      else if (name.endsWith(".js")) out.push(relPath);
    }
  };
  walk(base, "");
  return out;
}


/**
 * Adds the runtime for `entries` (relative to dist/runtime; all of dist/runtime when omitted) and
 * `extraEntries` (relative to dist: processes outside the runtime that the image also runs) to the
 * context under `target`: the compiled files, a minimal package.json (the runtime finds its root by
 * it; `"type": "module"`) and the production packages, pruned to the target platform.
 */
export async function addNodeRuntime(
  ctx: BuildContext,
  options: { target: string; platform: TargetPlatform; entries?: string[]; extraEntries?: string[]; root?: string },
): Promise<RuntimeFiles> {
  const root = options.root ?? packageRoot();
  const entries = options.entries ?? allCompiledRuntime(root);
  const found = await runtimeFiles(entries, root, options.extraEntries);
  for (const file of found.files) {
    const path = join(root, file);
    ctx.addFile(`${options.target}/${file}`, path, statSync(path));
  }
  const pkg = readPackageJson(root);
  const manifest = { name: pkg.name, version: pkg.version, type: "module", private: true };
  ctx.addData(`${options.target}/package.json`, `${JSON.stringify(manifest, null, 2)}\n`);
  await addPackages(ctx, found.packages, options.target, root, options.platform);
  return found;
}

/** The Docker daemon's platform (`linux`/`amd64`) in Node's naming (`linux`/`x64`). */
export function nodePlatform(os: string | undefined, arch: string | undefined): TargetPlatform {
  const archMap: Record<string, string> = { amd64: "x64", x86_64: "x64", arm64: "arm64", aarch64: "arm64", "386": "ia32", arm: "arm", ppc64le: "ppc64", s390x: "s390x", riscv64: "riscv64" };
  return { os: os?.toLowerCase() || undefined, arch: arch ? archMap[arch.toLowerCase()] : undefined };
}
