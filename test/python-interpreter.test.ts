/**
 * The interpreter rule (src/python/interpreter.ts): --python, CLIPPER_PYTHON, python3 on PATH,
 * /usr/bin/python3, the first that imports numpy; explicit ones without numpy are errors. The
 * candidates are small shell scripts that answer the probe as an interpreter with or without numpy
 * would; one check runs the real /usr/bin/python3 (CLIPPER_TEST_PYTHON).
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ClipperError } from "../src/errors.js";
import { describePython, findPython, PythonInterpreterError, type FindPythonOptions } from "../src/python/interpreter.js";
import { checkPickledPython } from "../src/python/pickled-header.js";
import { fileURLToPath } from "node:url";
import { runCli } from "./support/cli.js";
import { LocalContainerManager } from "../src/managers/local/index.js";
import { clusterPaths, ensureClusterDirs } from "../src/managers/local/cluster-home.js";
import type { ModelDeployment } from "../src/managers/container-manager.js";
import { FALLBACK_PYTHON } from "../src/python/interpreter.js";
import { PYTHON, pythonSkipReason } from "./support/python.js";

const root = mkdtempSync(join(tmpdir(), "clipper-python-rule-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
/** A Python predict file. */
const sum = join(root, "sum.py");
writeFileSync(sum, "def predict(xs):\n    return [str(sum(x)) for x in xs]\n");

let dirs = 0;
/** A fresh directory (fresh paths: the probe cache keys on the path). */
function dir(): string {
  const d = join(root, String(dirs++));
  mkdirSync(d);
  return d;
}

/**
 * A fake interpreter at dir/name. It answers `-c "...import ... numpy..."` like a Python with
 * numpy ("3.11.4 1.26.0") or without it (the ImportError, exit 1), appending a line to dir/calls
 * each time it runs; `hasNumpyWhen` makes it have numpy only once that file exists.
 */
function fake(d: string, name: string, kind: "numpy" | "no-numpy" | "garbage", hasNumpyWhen?: string): string {
  const path = join(d, name);
  const withNumpy = 'echo "3.11.4 1.26.0"; exit 0';
  const without = "echo \"ModuleNotFoundError: No module named 'numpy'\" >&2; exit 1";
  const body = kind === "garbage" ? 'echo "Python 2.7 says hello"; exit 0'
    : hasNumpyWhen ? `if [ -e "${hasNumpyWhen}" ]; then ${withNumpy}; fi; ${without}`
      : kind === "numpy" ? withNumpy : without;
  writeFileSync(path, [
    "#!/bin/sh",
    `echo "$0" >> "${join(d, "calls")}"`,
    // Only the probe is expected: -c with a script that imports numpy.
    'case "$1 $2" in "-c "*import*numpy*) ;; *) echo "unexpected arguments: $*" >&2; exit 2 ;; esac',
    body,
    "",
  ].join("\n"));
  chmodSync(path, 0o755);
  return path;
}

const calls = (d: string): number => (existsSync(join(d, "calls")) ? readFileSync(join(d, "calls"), "utf8").trim().split("\n").length : 0);

/** findPython with only the given environment, and a fallback that is not there unless given. */
function find(options: FindPythonOptions & { env: NodeJS.ProcessEnv }) {
  return findPython({ fallback: join(root, "no-fallback", "python3"), ...options });
}

async function failure(promise: Promise<unknown>): Promise<PythonInterpreterError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(PythonInterpreterError);
  expect(err).toBeInstanceOf(ClipperError);
  expect((err as ClipperError).code).toBe("USAGE");
  expect((err as Error).message).not.toContain("\n");
  return err as PythonInterpreterError;
}

describe("the Python interpreter rule", () => {
  it("takes --python first, as a path (relative to cwd) or a name on PATH, over CLIPPER_PYTHON and PATH", async () => {
    const d = dir();
    const given = fake(d, "given", "numpy");
    const env = { PATH: d, CLIPPER_PYTHON: fake(dir(), "env-python", "numpy") };
    fake(d, "python3", "numpy");
    expect(await find({ python: given, env })).toEqual({ path: given, source: "--python", version: "3.11.4", numpy: "1.26.0" });
    expect((await find({ python: `./${relative(root, given)}`, cwd: root, env })).path).toBe(given);
    expect((await find({ python: "given", env })).path).toBe(given);
  });

  it("refuses an explicit --python without numpy, naming it and the install command, instead of trying the others", async () => {
    const d = dir();
    const given = fake(d, "python", "no-numpy");
    fake(d, "python3", "numpy");
    const err = await failure(find({ python: given, env: { PATH: d } }));
    expect(err.message).toBe(`--python ${given} cannot import numpy: install numpy for it (${given} -m pip install numpy), or name another interpreter`);
    expect(calls(d)).toBe(1); // python3 on PATH, which has numpy, was never asked
    const named = await failure(find({ python: given, pythonFrom: "the cluster's --python (clipper start)", env: { PATH: d } }));
    expect(named.message).toMatch(/^the cluster's --python \(clipper start\) \/.* cannot import numpy/);
  });

  it("says when an explicit interpreter does not exist or is not executable", async () => {
    const d = dir();
    expect((await failure(find({ python: join(d, "nope"), env: { PATH: d } }))).message).toBe(`--python ${join(d, "nope")}: no such executable file`);
    expect((await failure(find({ python: "python3.99", env: { PATH: d } }))).message).toBe("--python python3.99: not found on PATH");
    expect((await failure(find({ python: "", env: { PATH: d } }))).message).toBe("--python is empty: name an interpreter, e.g. --python /usr/bin/python3");
    writeFileSync(join(d, "plain"), "#!/bin/sh\n");
    expect((await failure(find({ python: join(d, "plain"), env: { PATH: d } }))).message).toContain("no such executable file");
    expect((await failure(find({ python: d, env: { PATH: d } }))).message).toContain("no such executable file");
  });

  it("takes CLIPPER_PYTHON when no --python is given, and refuses it without numpy; an empty one counts as unset", async () => {
    const d = dir();
    const envPython = fake(d, "env-python", "numpy");
    const onPath = fake(d, "python3", "numpy");
    expect(await find({ env: { PATH: d, CLIPPER_PYTHON: envPython } })).toMatchObject({ path: envPython, source: "CLIPPER_PYTHON" });
    expect(await find({ env: { PATH: d, CLIPPER_PYTHON: "" } })).toMatchObject({ path: onPath, source: "PATH" });
    const bad = fake(dir(), "env-python", "no-numpy");
    expect((await failure(find({ env: { PATH: d, CLIPPER_PYTHON: bad } }))).message).toMatch(/^CLIPPER_PYTHON \/.*env-python cannot import numpy: install numpy for it/);
  });

  it("takes python3 on PATH (the first PATH entry that has one) when it has numpy", async () => {
    const empty = dir();
    const first = dir();
    const second = dir();
    const python = fake(first, "python3", "numpy");
    fake(second, "python3", "numpy");
    const fallback = fake(dir(), "python3", "numpy");
    expect(await find({ env: { PATH: [empty, first, second].join(":") }, fallback })).toEqual({ path: python, source: "PATH", version: "3.11.4", numpy: "1.26.0" });
    expect(calls(second)).toBe(0);
  });

  it("falls back to /usr/bin/python3 when python3 on PATH lacks numpy, and says so", async () => {
    const d = dir();
    fake(d, "python3", "no-numpy");
    const fallbackDir = dir();
    const fallback = fake(fallbackDir, "python3", "numpy");
    const chosen = await find({ env: { PATH: d }, fallback });
    expect(chosen).toEqual({ path: fallback, source: "fallback", version: "3.11.4", numpy: "1.26.0" });
    expect(describePython(chosen)).toBe(`${fallback} (Python 3.11.4, numpy 1.26.0; from the fallback)`);
    expect(describePython({ ...chosen, source: "PATH" })).toContain("; from python3 on PATH)");
  });

  it("with no candidate that has numpy: one line naming each candidate tried and the install commands", async () => {
    const d = dir();
    const onPath = fake(d, "python3", "no-numpy");
    const fallback = fake(dir(), "python3", "garbage");
    const err = await failure(find({ env: { PATH: d }, fallback }));
    expect(err.message).toBe(
      `no Python interpreter with numpy: tried python3 on PATH (${onPath}) cannot import numpy; ${fallback} did not print its version (is it Python 3?). ` +
      "Install numpy (Debian/Ubuntu: sudo apt-get install python3-numpy; elsewhere: python3 -m pip install numpy) " +
      "or name an interpreter that has it with --python or CLIPPER_PYTHON");
    const none = await failure(find({ env: { PATH: dir() } }));
    expect(none.message).toMatch(/^no Python interpreter with numpy: tried python3 on PATH \(none\); \/.*\/no-fallback\/python3 \(none\)\. Install numpy/);
    const noPath = await failure(find({ env: {} }));
    expect(noPath.message).toContain("tried python3 on PATH (none);");
  });

  it("asks python3 on PATH once when it is the fallback itself (a link to it included)", async () => {
    const d = dir();
    const python = fake(d, "python3", "no-numpy");
    const linked = dir();
    symlinkSync(python, join(linked, "python3"));
    const err = await failure(find({ env: { PATH: linked }, fallback: python }));
    expect(err.message).toMatch(/^no Python interpreter with numpy: tried python3 on PATH \(.*\) cannot import numpy\. Install/);
    expect(calls(d)).toBe(1);
  });

  it("probes an interpreter once per process, but asks again after a failed probe (numpy installed meanwhile)", async () => {
    const d = dir();
    const python = fake(d, "python3", "numpy");
    await find({ python, env: {} });
    await find({ env: { PATH: d } });
    await Promise.all([find({ python, env: {} }), find({ python, env: {} })]);
    expect(calls(d)).toBe(1);
    // The probe runs in the given environment: another PYTHONPATH can change what imports.
    await find({ python, env: { PYTHONPATH: "/elsewhere" } });
    expect(calls(d)).toBe(2);

    const later = dir();
    const installed = join(later, "numpy-installed");
    const slow = fake(later, "python3", "no-numpy", installed);
    await failure(find({ python: slow, env: {} }));
    writeFileSync(installed, "");
    expect(await find({ python: slow, env: {} })).toMatchObject({ path: slow, numpy: "1.26.0" });
    expect(calls(later)).toBe(2);
  });

  const noNumpy = pythonSkipReason(["numpy"]);
  it.skipIf(noNumpy !== undefined)(`finds the real ${PYTHON} with its versions${noNumpy ? ` (${noNumpy})` : ""}`, async () => {
    const real = spawnSync(PYTHON, ["-c", "import sys, numpy; print('%d.%d.%d' % sys.version_info[:3], numpy.__version__)"], { encoding: "utf8" });
    const [version, numpy] = real.stdout.trim().split(" ");
    // As --python, and as the fallback when PATH has no python3.
    expect(await findPython({ python: PYTHON, env: { PATH: dir() } })).toEqual({ path: PYTHON, source: "--python", version, numpy });
    expect(await findPython({ env: { PATH: dir() }, fallback: PYTHON })).toEqual({ path: PYTHON, source: "fallback", version, numpy });
  });
});

describe("the CLI says which interpreter it chose", () => {
  // CLIPPER_PYTHON "" counts as unset, whatever the machine's environment says.
  const env = (path: string) => ({ PATH: `${path}:${process.env.PATH ?? ""}`, CLIPPER_PYTHON: "", CLIPPER_HOME: join(root, "home"), FORCE_COLOR: "0" });

  const usable = PYTHON === FALLBACK_PYTHON && pythonSkipReason(["numpy"]) === undefined;
  it.skipIf(!usable)(`test-predict passes over a python3 on PATH without numpy to ${FALLBACK_PYTHON}, and says so${usable ? "" : ` (skipped: needs numpy in ${FALLBACK_PYTHON})`}`, async () => {
    const d = dir();
    fake(d, "python3", "no-numpy");
    const args = ["test-predict", "--predict", sum, "--input-type", "doubles", "--input", "[1, 2.5]"];
    const human = await runCli(args, env(d));
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toBe("3.5\n");
    expect(human.stderr).toMatch(new RegExp(`^Python: ${FALLBACK_PYTHON} \\(Python 3\\.\\d+\\.\\d+, numpy \\S+; from the fallback\\)$`, "m"));
    const json = await runCli([...args, "--json"], env(d));
    expect(json.json).toMatchObject({ outputs: ["3.5"], interpreter: { path: FALLBACK_PYTHON, source: "fallback" } });
    expect(calls(d)).toBe(2); // one probe per process
  });

  it("save-function and test-predict refuse a --python without numpy: one line, exit 2, the fix named", async () => {
    const d = dir();
    const python = fake(d, "python", "no-numpy");
    const saved = await runCli(["save-function", sum, join(d, "out.pkl"), "--python", python], env(dir()));
    expect(saved.code).toBe(2);
    expect(saved.stderr.split("\n")[0]).toBe(`error: --python ${python} cannot import numpy: install numpy for it (${python} -m pip install numpy), or name another interpreter`);
    expect(existsSync(join(d, "out.pkl"))).toBe(false);
    const tried = await runCli(["test-predict", "--predict", sum, "--input-type", "doubles", "--input", "[1]", "--python", python, "--json"], env(dir()));
    expect(tried.code).toBe(2);
    expect(tried.json).toMatchObject({ code: "USAGE", error: expect.stringMatching(/^--python .* cannot import numpy: /) });
  });

  it("start checks its --python before starting anything", async () => {
    const d = dir();
    const python = fake(d, "python", "no-numpy");
    const home = dir();
    const r = await runCli(["start", "--python", python, "--query-port", "0", "--management-port", "0", "--rpc-port", "0", "--json"], { ...env(dir()), CLIPPER_HOME: home });
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ code: "USAGE", error: `--python ${python} cannot import numpy: install numpy for it (${python} -m pip install numpy), or name another interpreter` });
    expect(existsSync(join(home, "clusters", "default", "supervisor.json"))).toBe(false);
  });
});

describe("the local manager records the interpreter it chose", () => {
  const fixture = (name: string) => [process.execPath, fileURLToPath(new URL(`./fixtures/local-manager/${name}`, import.meta.url))];

  /**
   * Runs `body` with PATH starting at `dir` and no CLIPPER_PYTHON, the environment the manager
   * probes in and hands the supervisor (it spawns with process.env).
   */
  async function withPath<T>(d: string, body: () => Promise<T>): Promise<T> {
    const saved = { PATH: process.env.PATH, CLIPPER_PYTHON: process.env.CLIPPER_PYTHON };
    process.env.PATH = `${d}:${saved.PATH ?? ""}`;
    delete process.env.CLIPPER_PYTHON;
    try {
      return await body();
    } finally {
      process.env.PATH = saved.PATH;
      if (saved.CLIPPER_PYTHON !== undefined) process.env.CLIPPER_PYTHON = saved.CLIPPER_PYTHON;
    }
  }

  /** A python3 that answers the probe with numpy and otherwise stays up as a replica would. */
  function replicaPython(d: string): string {
    const path = join(d, "python3");
    writeFileSync(path, [
      "#!/bin/sh",
      `echo "$*" >> "${join(d, "calls")}"`,
      'if [ "$1" = "-c" ]; then echo "3.11.4 1.26.0"; exit 0; fi',
      "exec /bin/sleep 60",
      "",
    ].join("\n"));
    chmodSync(path, 0o755);
    return path;
  }

  const deployment: ModelDeployment = {
    name: "sum", version: "1", inputType: "doubles", framework: "python", predictFile: sum, predictFunction: "predict", modelPath: root,
  };

  async function replicaArgv(m: LocalContainerManager): Promise<string[] | undefined> {
    const paths = clusterPaths(m.home, m.cluster);
    for (let i = 0; i < 100; i++) {
      const children = existsSync(paths.childrenFile)
        ? (JSON.parse(readFileSync(paths.childrenFile, "utf8")) as { children: { component: string; argv: string[] }[] }).children : [];
      const replica = children.find((c) => c.component === "sum-1-0");
      if (replica) return replica.argv;
      await new Promise((r) => setTimeout(r, 100));
    }
    return undefined;
  }

  it("deploy-model's choice is recorded by absolute path and is what the replica runs; a restored deployment recorded without one gets the rule too", async () => {
    const d = dir();
    const python = replicaPython(d);
    const home = dir();
    const m = new LocalContainerManager({
      cluster: "py", home, stopGraceMs: 2000, componentCommands: { management: fixture("fake-management.mjs"), frontend: fixture("fake-frontend.mjs") },
    });
    const options = { cluster: "py", host: "127.0.0.1", queryPort: 0, managementPort: 0, rpcPort: 0, maxBodyBytes: 1 << 20, startupTimeoutMs: 15_000, replicaTimeoutMs: 30_000 };
    try {
      await withPath(d, async () => {
        await m.startClipper(options);
        const deployed = await m.deployModel(deployment, 1);
        expect(deployed.interpreter).toEqual({ path: python, source: "PATH", version: "3.11.4", numpy: "1.26.0" });
        expect(await replicaArgv(m)).toEqual([python, "-m", "clipper_runtime"]);
        const recorded = JSON.parse(readFileSync(clusterPaths(home, "py").deploymentsFile, "utf8")) as { deployments: { deployment: ModelDeployment }[] };
        expect(recorded.deployments[0]!.deployment.python).toBe(python);
        await m.stopAll({ keepState: true });

        // deployments.json as an older version wrote it, with no interpreter: the supervisor applies the rule.
        const paths = clusterPaths(home, "py");
        ensureClusterDirs(paths);
        writeFileSync(paths.deploymentsFile, JSON.stringify({ version: 1, deployments: [{ deployment, replicas: 1 }] }));
        await m.startClipper(options);
        expect(await replicaArgv(m)).toEqual([python, "-m", "clipper_runtime"]);
      });
    } finally {
      await m.stopAll({ keepState: false }).catch(() => undefined);
    }
  }, 60_000);
});

describe("a .pkl and the interpreter that loads it", () => {
  /** A .pkl with clipper_runtime.save's header (closure.py) recording `python`. */
  function pkl(python: string | undefined): string {
    const file = join(dir(), "func.pkl");
    const json = Buffer.from(JSON.stringify({ format: "clipper-closure", format_version: 1, cloudpickle: "2.2.0", ...(python ? { python } : {}) }));
    const length = Buffer.alloc(4);
    length.writeUInt32LE(json.length);
    writeFileSync(file, Buffer.concat([Buffer.from([0x80, 0x02, 0x58]), length, json, Buffer.from("."), Buffer.from("rest of the pickle")]));
    return file;
  }
  const interpreter = { path: "/opt/py/bin/python3", source: "PATH" as const, version: "3.11.4", numpy: "1.26.0" };

  it("refuses a .pkl saved by another Python major.minor, saying which and how to fix it", () => {
    const file = pkl("3.12.1");
    let err: unknown;
    try {
      checkPickledPython(file, interpreter);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({
      code: "USAGE",
      message: `${file} was saved by Python 3.12.1, but the interpreter chosen to load it, /opt/py/bin/python3, is Python 3.11.4`,
      hint: "pass --python naming the interpreter that ran save-function, or save it again with this one (clipper save-function --python /opt/py/bin/python3)",
    });
  });

  it("accepts the same major.minor, a pickle without a header or without a Python version, and a .py", () => {
    expect(() => checkPickledPython(pkl("3.11.9"), interpreter)).not.toThrow();
    expect(() => checkPickledPython(pkl(undefined), interpreter)).not.toThrow();
    const plain = join(dir(), "plain.pkl");
    writeFileSync(plain, Buffer.from([0x80, 0x04, 0x95, 0, 0]));
    expect(() => checkPickledPython(plain, interpreter)).not.toThrow();
    const source = join(dir(), "predict.py");
    writeFileSync(source, "def predict(xs): return xs\n");
    expect(() => checkPickledPython(source, interpreter)).not.toThrow();
  });
});
