/**
 * npm packages a deployed function or module uses: found in the node_modules directories visible
 * from the user's project (Node's own lookup: ./node_modules, then each parent's), else left to npm
 * in the image.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ClipperError } from "../errors.js";
import { packageNameOf } from "./closure-check.js";

export interface Dependency {
  /** As given: `name`, `@scope/name`, optionally with `@version`. */
  spec: string;
  name: string;
  /** The version or range after `@`, if any. */
  version?: string;
}

export interface ResolvedDependency extends Dependency {
  /** Where it is installed (the package's directory), when it is. */
  dir?: string;
  installedVersion?: string;
}

const NAME = /^(?:@[a-z0-9~-][a-z0-9._~-]*\/)?[a-z0-9~-][a-z0-9._~-]*$/;
const EXACT_VERSION = /^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$/;

/** Parses `name[@version]` (scoped names too); a bad one is a usage error. */
export function parseDependency(spec: string): Dependency {
  const text = typeof spec === "string" ? spec.trim() : "";
  const at = text.indexOf("@", 1);
  const name = at > 0 ? text.slice(0, at) : text;
  const version = at > 0 ? text.slice(at + 1) : undefined;
  if (!NAME.test(name) || (version !== undefined && !/^[^\s]+$/.test(version))) {
    throw new ClipperError("USAGE", `'${spec}' is not an npm package name (name, @scope/name, optionally @version)`);
  }
  return { spec: text, name, ...(version !== undefined ? { version } : {}) };
}

/** The directory of an installed package, looked up from `from` as Node looks up a bare import. */
export function findInstalledPackage(name: string, from: string): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function installedVersion(dir: string): string | undefined {
  try {
    const version = (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version?: unknown }).version;
    return typeof version === "string" ? version : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Resolves the named dependencies and the packages the function imports from `projectDir`. An
 * installed package is used as installed (an exact version that differs is an error; ranges are not
 * checked). One that is not installed is an error when `installable` is false (the local manager),
 * else it is returned without `dir`, for npm to install in the image.
 */
export function resolveDependencies(
  specs: readonly string[],
  imported: readonly string[],
  projectDir: string,
  installable: boolean,
): ResolvedDependency[] {
  const wanted = new Map<string, Dependency>();
  for (const spec of specs) {
    const dep = parseDependency(spec);
    wanted.set(dep.name, dep);
  }
  for (const name of imported) if (!wanted.has(packageNameOf(name))) wanted.set(name, { spec: name, name });
  const missing: string[] = [];
  const resolved: ResolvedDependency[] = [];
  for (const dep of wanted.values()) {
    const dir = findInstalledPackage(dep.name, projectDir);
    const named = specs.some((s) => parseDependency(s).name === dep.name);
    if (!dir) {
      if (installable && named) resolved.push(dep);
      else missing.push(dep.name);
      continue;
    }
    const version = installedVersion(dir);
    if (dep.version && EXACT_VERSION.test(dep.version) && version !== dep.version.replace(/^v/, "")) {
      if (installable) {
        // Not the version asked for: npm installs that one in the image.
        resolved.push(dep);
        continue;
      }
      throw new ClipperError("USAGE", `dependency ${dep.spec}: ${dep.name} ${version ?? "(no version)"} is installed in ${dirname(dir)}`,
        `install the version you name (npm install ${dep.spec}), or name the one installed`);
    }
    resolved.push({ ...dep, dir, ...(version ? { installedVersion: version } : {}) });
  }
  if (missing.length > 0) {
    const list = missing.map((m) => `\`${m}\``).join(", ");
    throw new ClipperError("USAGE",
      `${missing.length === 1 ? "package" : "packages"} ${list} ${missing.length === 1 ? "is" : "are"} not installed in ${projectDir} (or a directory above it)`,
      installable
        ? `npm install ${missing.join(" ")} there, or name ${missing.length === 1 ? "it" : "them"} in \`dependencies\` so that npm installs ${missing.length === 1 ? "it" : "them"} in the image`
        : `npm install ${missing.join(" ")} there (the local manager runs the function with the packages installed on this machine), or pass projectDir`);
  }
  return resolved;
}
