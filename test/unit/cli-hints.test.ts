/**
 * Every option a message or hint names must exist: on the command the text is printed for where we
 * know it (the Dockerfile steps' hints: the runtime image's under `start`, the model images' under
 * `build-model` and `deploy-model`; a `clipper CMD --flag` written out in the text), else on some
 * command. Found by reading every string in src/ and runtime/ with the TypeScript parser, so a new
 * hint is checked the day it is written (`start` once hinted `--base-image`, which only the model
 * commands have).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import type { Command } from "@commander-js/extra-typings";
import { buildProgram } from "../../src/cli/program.js";
import { MODEL_FRAMEWORKS } from "../../src/managers/container-manager.js";
import { modelDockerfile, NO_PIP_HINT, runtimeDockerfile, type RenderedDockerfile } from "../../src/images/dockerfile.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/**
 * Files whose flags are not the CLI's: the runtime processes' own command lines (the frontend, the
 * management daemon, the supervisor and test-predict's child print their usage to whoever started
 * them, which is the CLI's code, never a user), and the dashboard (a browser page; its `--x` are CSS).
 */
const NOT_CLI_TEXT = new Set([
  "runtime/frontend/main.ts",
  "runtime/frontend/workers.ts",
  "runtime/management/flags.ts",
  "runtime/management/main.ts",
  "runtime/shared/runtime-flags.ts",
  "src/managers/local/supervisor-main.ts",
  "src/functions/test-predict-child.ts",
]);
const SKIPPED_DIRS = new Set(["dashboard", "python", "node_modules"]);

/** Tools whose own flags texts quote (`kubectl port-forward --namespace`, `node --version`). */
const FOREIGN_TOOLS = new Set(["kubectl", "node", "docker", "pip", "npm", "python3", "minikube", "helm"]);

type Flags = Map<string, Set<string>>;

/** Each command's path (`start`, `api-key create`) and its long options, --help included. */
function commandFlags(program: Command): Flags {
  const flags: Flags = new Map();
  const visit = (command: Command, path: string[]): void => {
    if (path.length > 0) flags.set(path.join(" "), new Set([...command.options.map((o) => o.long).filter((l): l is string => !!l), "--help"]));
    for (const sub of command.commands as Command[]) visit(sub, [...path, sub.name()]);
  };
  visit(program, []);
  return flags;
}

const FLAGS = commandFlags(buildProgram() as unknown as Command);
const ANY_COMMAND = new Set([...FLAGS.values()].flatMap((s) => [...s]).concat(["--version"]));

/**
 * The flags `text` names that do not exist where they are printed: under `command` (a path, or
 * undefined for "some command"), or under the command a `clipper CMD ...` inside the text names.
 */
export function missingFlags(text: string, command?: string): string[] {
  const missing: string[] = [];
  // A backtick, a parenthesis, a semicolon or a line ends a quoted command line.
  for (const segment of text.split(/[`;()\n]/)) {
    let context: Set<string> | undefined | "foreign" = command === undefined ? ANY_COMMAND : FLAGS.get(command);
    let where = command ?? "any command";
    const words = segment.split(/\s+/).filter(Boolean);
    for (let i = 0; i < words.length; i++) {
      const word = words[i]!;
      if (word === "clipper") {
        const first = words[i + 1];
        const second = `${first} ${words[i + 2]}`;
        const path = FLAGS.has(second) ? second : first !== undefined && FLAGS.has(first) ? first : undefined;
        if (path) {
          context = FLAGS.get(path);
          where = path;
        }
        continue;
      }
      if (FOREIGN_TOOLS.has(word)) {
        context = "foreign";
        continue;
      }
      const flag = /^(?:[[(]?)(--[a-z][a-z0-9-]*)/.exec(word)?.[1];
      if (!flag || context === "foreign") continue;
      if (!context?.has(flag)) missing.push(`${flag} (not an option of ${where})`);
    }
  }
  return missing;
}

function* sourceFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      if (!SKIPPED_DIRS.has(entry)) yield* sourceFiles(path);
    } else if (path.endsWith(".ts") && !path.endsWith(".d.ts")) {
      yield path;
    }
  }
}

/** The first argument of `.option(...)`, `.requiredOption(...)` or `new Option(...)`: a definition, not a mention. */
function isOptionDefinition(node: ts.Node): boolean {
  const call = node.parent;
  if (!call || call.getChildren().length === 0) return false;
  if (ts.isCallExpression(call) && call.arguments[0] === node && ts.isPropertyAccessExpression(call.expression)) {
    return ["option", "requiredOption"].includes(call.expression.name.text);
  }
  return ts.isNewExpression(call) && call.arguments?.[0] === node && call.expression.getText() === "Option";
}

/** Every string the CLI's code holds that names a flag (template holes read as `X`), with its place. */
function flagTexts(): { where: string; text: string }[] {
  const found: { where: string; text: string }[] = [];
  for (const file of [...sourceFiles(join(ROOT, "src")), ...sourceFiles(join(ROOT, "runtime"))]) {
    const rel = relative(ROOT, file).split("\\").join("/");
    if (NOT_CLI_TEXT.has(rel)) continue;
    const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      let text: string | undefined;
      if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) text = node.text;
      else if (ts.isTemplateExpression(node)) text = node.head.text + node.templateSpans.map((s) => `X${s.literal.text}`).join("");
      // A lone flag is an argument vector's entry (a child process's command line), not text.
      if (text !== undefined && /--[a-z]/.test(text) && !/^--[a-z][\w-]*(=\S*)?$/.test(text) && !isOptionDefinition(node)) {
        found.push({ where: `${rel}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`, text });
      }
      if (ts.isTemplateExpression(node)) node.templateSpans.forEach((s) => visit(s.expression));
      else ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

function hints(rendered: RenderedDockerfile): string[] {
  return [...new Set(rendered.instructions.map((i) => i.hint).filter((h): h is string => h !== undefined))];
}

describe("options named in hints and messages", () => {
  it("the checker itself: --base-image is not an option of start, --runtime-base-image is; clipper CMD sets the command", () => {
    expect(missingFlags("choose one (--base-image)", "start")).toEqual(["--base-image (not an option of start)"]);
    expect(missingFlags("choose one (--runtime-base-image)", "start")).toEqual([]);
    expect(missingFlags("stop it with `clipper stop --manager docker`")).toEqual(["--manager (not an option of stop)"]);
    expect(missingFlags("see `clipper api-key create --rate 5`")).toEqual([]);
    expect(missingFlags("found: $(node --version 2>&1) or --no-such-flag")).toEqual(["--no-such-flag (not an option of any command)"]);
  });

  it("the runtime image's Dockerfile hints name options of start (which builds it)", () => {
    const all = [runtimeDockerfile({ version: "0.1.0" }), runtimeDockerfile({ version: "0.1.0", baseImage: "node:20", hash: "abc" })].flatMap(hints);
    expect(all.join("\n")).toContain("--runtime-base-image");
    expect(all.flatMap((h) => missingFlags(h, "start"))).toEqual([]);
  });

  it("every model image's Dockerfile hints name options of build-model and deploy-model", () => {
    const base = { cluster: "c", name: "m", version: "1", inputType: "doubles" as const, predictFunction: "predict" };
    const rendered = MODEL_FRAMEWORKS.flatMap((framework) => [false, true].flatMap((gpu) => {
      const predictFile = framework === "node" ? "/m/model.mjs" : "/m/predict.py";
      return [
        modelDockerfile({ ...base, framework, gpu, predictFile }),
        framework === "node"
          ? modelDockerfile({ ...base, framework, gpu, predictFile, npmDependencies: ["left-pad"] })
          : modelDockerfile({ ...base, framework, gpu, predictFile, packages: ["scipy"], requirementsFile: "/m/requirements.txt" }),
        ...(framework === "node" ? [] : [
          modelDockerfile({ ...base, framework, gpu, predictFile: "/m/f.pkl" }, { file: "f.pkl", cloudpickle: "3.0.0" }),
          modelDockerfile({ ...base, framework, gpu, predictFile: "/m/f.pkl" }, { file: "f.pkl" }),
        ]),
      ];
    }));
    const all = [...new Set([...rendered.flatMap(hints), NO_PIP_HINT])];
    expect(all.join("\n")).toContain("--base-image");
    for (const command of ["build-model", "deploy-model"]) {
      expect(all.flatMap((h) => missingFlags(h, command)), command).toEqual([]);
    }
  });

  it("every text in src/ and runtime/ names options that exist (on the command a `clipper CMD` in it names)", () => {
    const texts = flagTexts();
    // The scan does read the code: these are known messages.
    expect(texts.some((t) => t.text.includes("--warmup-input"))).toBe(true);
    const problems = texts.flatMap(({ where, text }) => missingFlags(text).map((m) => `${where}: ${m} in "${text.slice(0, 160)}"`));
    expect(problems).toEqual([]);
  });
});
