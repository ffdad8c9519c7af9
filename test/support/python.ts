/**
 * The Python interpreter tests use, and whether it has the modules a suite needs.
 * Debian's numpy/zmq live under /usr/bin/python3; the `python3` first on PATH may lack them.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { pythonRuntimeDir } from "../../runtime/shared/package-root.js";

export const PYTHON = process.env.CLIPPER_TEST_PYTHON ?? "/usr/bin/python3";

/** True in CI, where a missing Python dependency must fail the tests rather than skip them. */
export const IN_CI = process.env.CI === "true";

const cache = new Map<string, boolean>();

function canImport(module: string): boolean {
  let ok = cache.get(module);
  if (ok === undefined) {
    const r = spawnSync(PYTHON, ["-c", `import ${module}`], { stdio: "ignore", timeout: 30_000 });
    ok = r.status === 0;
    cache.set(module, ok);
  }
  return ok;
}

/** The modules PYTHON cannot import (an unrunnable interpreter lacks them all). */
export function missingPythonModules(modules: string[]): string[] {
  return modules.filter((m) => !canImport(m));
}

/** Whether PYTHON can import every one of `modules` (checked synchronously, cached). */
export function pythonHas(modules: string[]): boolean {
  return missingPythonModules(modules).length === 0;
}

/**
 * Why a suite needing `modules` should be skipped, or undefined when it should run. In CI it is
 * always undefined, so the suite runs and `assertPythonHas` (in beforeAll) fails it loudly instead.
 */
export function pythonSkipReason(modules: string[]): string | undefined {
  const missing = missingPythonModules(modules);
  if (missing.length === 0 || IN_CI) return undefined;
  return `skipped: ${PYTHON} cannot import ${missing.join(", ")} (set CLIPPER_TEST_PYTHON)`;
}

/** Throws a one-line error naming what is missing; for beforeAll, so CI fails rather than skips. */
export function assertPythonHas(modules: string[]): void {
  const missing = missingPythonModules(modules);
  if (missing.length > 0) {
    throw new Error(`${PYTHON} cannot import ${missing.join(", ")}; install them or set CLIPPER_TEST_PYTHON`);
  }
}

/** This process's environment without CLIPPER_* and FAKE_* variables: what a runtime under test starts from. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("CLIPPER_") && !k.startsWith("FAKE_")) env[k] = v;
  return env;
}

/** cleanEnv with only the package's Python runtime on PYTHONPATH, unbuffered, then `extra`. */
export function pythonRuntimeEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...cleanEnv(), PYTHONPATH: pythonRuntimeDir(), PYTHONUNBUFFERED: "1", ...extra };
}

let pyzmqBlocker: string | undefined;

/**
 * A directory whose `zmq` package fails to import as a missing one does: first on PYTHONPATH, it
 * makes PYTHON behave as an interpreter without pyzmq (the runtime then needs numpy only).
 */
export function pyzmqBlockerDir(): string {
  if (pyzmqBlocker === undefined) {
    const dir = mkdtempSync(join(tmpdir(), "clipper-no-pyzmq-"));
    mkdirSync(join(dir, "zmq"));
    writeFileSync(join(dir, "zmq", "__init__.py"), 'raise ModuleNotFoundError("No module named \'zmq\'", name="zmq")\n');
    pyzmqBlocker = dir;
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return pyzmqBlocker;
}

/** PYTHONPATH for the package's runtime with pyzmq unimportable. */
export function pythonPathWithoutPyzmq(): string {
  return [pyzmqBlockerDir(), pythonRuntimeDir()].join(delimiter);
}
