/**
 * save-function: pickle a Python predict function with cloudpickle into a file that
 * `deploy-model --predict FILE.pkl` serves, through the runtime's own `clipper_runtime.save` (so the
 * user needs no PYTHONPATH into this package). Prints what was saved and the versions recorded.
 */
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { withPythonRuntimePath } from "../../../runtime/shared/package-root.js";
import { ClipperError, PredictFailedError } from "../../errors.js";
import { emit, type OutputOptions } from "../output.js";
import { describePython, findPython } from "../../python/interpreter.js";

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runPython(python: string, args: string[]): Promise<Ran> {
  return new Promise((done, fail) => {
    const child = spawn(python, ["-m", "clipper_runtime.save", ...args], {
      env: withPythonRuntimePath(process.env), stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (err) => fail(new ClipperError("USAGE", `cannot run ${python}: ${err.message}`, "pass --python PATH (or set CLIPPER_PYTHON)")));
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

export async function saveFunction(spec: string, out: string, options: OutputOptions & { python?: string }): Promise<void> {
  // The rule a local deployment applies too, so the file is pickled by the Python that will load it.
  const interpreter = await findPython({ python: options.python });
  const python = interpreter.path;
  const saved = await runPython(python, [spec, out]);
  if (saved.code !== 0) {
    // The helper's last line says what went wrong; a traceback above it, when there is one, is the detail.
    const lines = saved.stderr.trim().split("\n");
    const last = (lines.at(-1) ?? "").replace(/^error:\s*/, "");
    throw new PredictFailedError(`saving ${spec} failed: ${last || `${python} exited with ${saved.code}`}`,
      lines.length > 1 ? lines.slice(0, -1).join("\n") : undefined);
  }
  const inspected = await runPython(python, ["--inspect", out]);
  let header: Record<string, unknown> = {};
  try {
    header = JSON.parse(inspected.stdout) as Record<string, unknown>;
  } catch {
    // The file was written; the header is only shown.
  }
  emit(options, { file: resolve(out), ...header, interpreter }, [saved.stdout.trim(), `Python: ${describePython(interpreter)}`]);
}
