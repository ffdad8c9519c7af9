/**
 * Which Python interpreter runs Python code on this machine: local replicas, `save-function`,
 * `test-predict`. One rule for all of them, so a closure is pickled by the interpreter that will
 * load it:
 *
 *   1. `--python` (or the library's `python` option), if given;
 *   2. else `CLIPPER_PYTHON`, if set;
 *   3. else `python3` as PATH finds it;
 *   4. else `/usr/bin/python3`;
 *
 * taking the first that exists and can `import numpy` (the one package every Python model needs).
 *
 * An interpreter named explicitly (1 or 2) that cannot import numpy is an error naming it, not
 * skipped: the user asked for that one, and quietly running another would serve the model with
 * other packages (and, for a .pkl, another Python than the one that pickled it), which fails later
 * and far from the cause. Only the implicit candidates (3, 4) fall through to the next.
 *
 * Probing starts an interpreter (~100 ms), so each interpreter's good answer is kept for the life
 * of the process; a failed probe is not kept, so numpy installed meanwhile is found next time.
 */
import { execFile } from "node:child_process";
import { accessSync, constants, realpathSync, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import { ClipperError } from "../errors.js";

/** Where the chosen interpreter came from (the rule's step). */
export type PythonSource = "--python" | "CLIPPER_PYTHON" | "PATH" | "fallback";

export interface PythonInterpreter {
  /** Absolute path, as found (a virtualenv's `bin/python3` stays the venv's, not the file it links to). */
  path: string;
  source: PythonSource;
  /** The interpreter's version ("3.11.2") and numpy's. */
  version: string;
  numpy: string;
}

export interface FindPythonOptions {
  /** The interpreter named explicitly (`--python`): a path, or a name looked up on PATH. */
  python?: string;
  /** What the user called the explicit one, for errors (default "--python"). */
  pythonFrom?: string;
  /** Where CLIPPER_PYTHON and PATH are read, and the probe's environment (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** What relative paths are relative to (default the current directory). */
  cwd?: string;
  /** The last candidate (default /usr/bin/python3); tests point it at an interpreter of theirs. */
  fallback?: string;
}

export const FALLBACK_PYTHON = "/usr/bin/python3";
const PROBE_TIMEOUT_MS = 30_000;
// One line, "<python version> <numpy version>"; numpy's import is what the probe is for.
const PROBE = 'import sys, numpy; print("%d.%d.%d %s" % (sys.version_info[:3] + (numpy.__version__,)))';
const ANSWER = /^(\d+\.\d+\.\d+) (\S+)$/;

/** No usable interpreter: a one-line message saying what was tried and how to fix it. */
export class PythonInterpreterError extends ClipperError {
  override readonly name = "PythonInterpreterError";
  constructor(message: string, hint?: string) {
    super("USAGE", message, hint);
  }
}

type Probed = { ok: true; version: string; numpy: string } | { ok: false; problem: string };

const probes = new Map<string, Promise<Probed>>();

/** Applies the rule above; throws PythonInterpreterError when it finds nothing usable. */
export async function findPython(options: FindPythonOptions = {}): Promise<PythonInterpreter> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  if (options.python === "") throw new PythonInterpreterError(`${options.pythonFrom ?? "--python"} is empty: name an interpreter, e.g. --python /usr/bin/python3`);
  const explicit = nonEmpty(options.python)
    ? { name: options.python!, from: options.pythonFrom ?? "--python", source: "--python" as const }
    : nonEmpty(env.CLIPPER_PYTHON)
      ? { name: env.CLIPPER_PYTHON!, from: "CLIPPER_PYTHON", source: "CLIPPER_PYTHON" as const }
      : undefined;
  if (explicit) {
    const path = locate(explicit.name, env, cwd);
    if (!path) {
      throw new PythonInterpreterError(
        `${explicit.from} ${explicit.name}: ${explicit.name.includes("/") ? "no such executable file" : "not found on PATH"}`,
        "name an interpreter that exists, e.g. --python /usr/bin/python3",
      );
    }
    const probed = await probe(path, env);
    if (!probed.ok) {
      throw new PythonInterpreterError(`${explicit.from} ${path} ${probed.problem}: ${installNumpy(path)}, or name another interpreter`);
    }
    return { path, source: explicit.source, version: probed.version, numpy: probed.numpy };
  }

  // The implicit candidates: the first that can import numpy wins, the others are only reported.
  const tried: string[] = [];
  const onPath = locate("python3", env, cwd);
  if (onPath) {
    const probed = await probe(onPath, env);
    if (probed.ok) return { path: onPath, source: "PATH", version: probed.version, numpy: probed.numpy };
    tried.push(`python3 on PATH (${onPath}) ${probed.problem}`);
  } else {
    tried.push("python3 on PATH (none)");
  }
  const fallback = options.fallback ?? FALLBACK_PYTHON;
  if (onPath && sameFile(onPath, fallback)) {
    // Already tried as python3 on PATH.
  } else if (!isExecutableFile(fallback)) {
    tried.push(`${fallback} (none)`);
  } else {
    const probed = await probe(fallback, env);
    if (probed.ok) return { path: fallback, source: "fallback", version: probed.version, numpy: probed.numpy };
    tried.push(`${fallback} ${probed.problem}`);
  }
  throw new PythonInterpreterError(
    `no Python interpreter with numpy: tried ${tried.join("; ")}. Install numpy (Debian/Ubuntu: sudo apt-get install python3-numpy; ` +
      "elsewhere: python3 -m pip install numpy) or name an interpreter that has it with --python or CLIPPER_PYTHON",
  );
}

/** "/usr/bin/python3 (Python 3.11.2, numpy 1.24.2; from PATH)": what a command says it chose. */
export function describePython(python: PythonInterpreter): string {
  const from = { "--python": "--python", CLIPPER_PYTHON: "$CLIPPER_PYTHON", PATH: "python3 on PATH", fallback: "the fallback" }[python.source];
  return `${python.path} (Python ${python.version}, numpy ${python.numpy}; from ${from})`;
}

/** Forgets every probe (tests that change an interpreter in place). */
export function forgetPythonProbes(): void {
  probes.clear();
}

function nonEmpty(value: string | undefined): boolean {
  return value !== undefined && value !== "";
}

/** An absolute path for `name`: a path (with a slash) as it is, a bare name as PATH finds it. */
function locate(name: string, env: NodeJS.ProcessEnv, cwd: string): string | undefined {
  if (name.includes("/")) {
    const path = resolve(cwd, name);
    return isExecutableFile(path) ? path : undefined;
  }
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const path = join(isAbsolute(dir) ? dir : resolve(cwd, dir), name);
    if (isExecutableFile(path)) return path;
  }
  return undefined;
}

function sameFile(a: string, b: string): boolean {
  try {
    return a === b || realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function installNumpy(path: string): string {
  return path === FALLBACK_PYTHON ? "install numpy (sudo apt-get install python3-numpy)" : `install numpy for it (${path} -m pip install numpy)`;
}

/** The interpreter's answer, kept when good; PYTHONPATH and PYTHONHOME change what it can import. */
function probe(path: string, env: NodeJS.ProcessEnv): Promise<Probed> {
  const key = [path, env.PYTHONPATH ?? "", env.PYTHONHOME ?? ""].join("\0");
  let probed = probes.get(key);
  if (!probed) {
    probed = run(path, env);
    probes.set(key, probed);
    void probed.then((p) => {
      if (!p.ok) probes.delete(key);
    });
  }
  return probed;
}

function run(path: string, env: NodeJS.ProcessEnv): Promise<Probed> {
  return new Promise((done) => {
    execFile(path, ["-c", PROBE], { env, timeout: PROBE_TIMEOUT_MS, killSignal: "SIGKILL", maxBuffer: 64 * 1024, encoding: "utf8" }, (err, stdout, stderr) => {
      const answer = ANSWER.exec(stdout.trim().split("\n").at(-1) ?? "");
      if (!err && answer) return done({ ok: true, version: answer[1]!, numpy: answer[2]! });
      const failure = err as (NodeJS.ErrnoException & { killed?: boolean; signal?: string | null }) | null;
      if (failure && typeof failure.code === "string") return done({ ok: false, problem: `cannot be run (${failure.code})` });
      if (failure?.killed) return done({ ok: false, problem: `did not answer within ${PROBE_TIMEOUT_MS / 1000} s` });
      if (/No module named '?numpy/.test(stderr)) return done({ ok: false, problem: "cannot import numpy" });
      const last = stderr.trim().split("\n").at(-1)?.trim();
      if (failure) return done({ ok: false, problem: `failed to import numpy${last ? ` (${last.slice(0, 200)})` : ""}` });
      return done({ ok: false, problem: "did not print its version (is it Python 3?)" });
    });
  });
}
