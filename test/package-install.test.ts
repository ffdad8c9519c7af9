/**
 * The package as a user gets it: `npm pack` of the built repository, installed with production
 * dependencies only into an empty project, and used from there as the README says: `npx clipper
 * start` on the local manager, a TypeScript model deployed on the Node runtime and queried,
 * `clipper stop`; a TypeScript script importing the library by its npm name, type-checked with
 * `tsc --strict` (ES modules, NodeNext, the declaration files checked too) and run against the
 * cluster; and every import the docs show, resolved through the package's `exports`. A file the
 * package needs at run time and `files` leaves out fails here, not on a user's machine.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PACKAGE_NAME } from "../runtime/shared/package-root.js";
import { cliCluster, predictAt, runCommand, type CliResult } from "./support/cli.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const INSTALL_TIMEOUT_MS = 300_000;

/**
 * npm's environment without what an outer `npm test` put there (its package, its lifecycle, its
 * prefix), so the installs below act on the temporary project only; the cache stays, so the
 * packages `npm install` fetched for this repository serve the user's install too.
 */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) && key.toLowerCase() !== "npm_config_cache") continue;
    env[key] = value;
  }
  return env;
}

function succeeded(what: string, result: CliResult): CliResult {
  expect(result.code, `${what} failed:\n${result.stdout}\n${result.stderr}`).toBe(0);
  return result;
}

/** `import ... from "SPEC"` statements in the JS/TS code blocks of README.md and docs/*.md. */
function docImports(): { doc: string; spec: string; names: string[] }[] {
  const docs = ["README.md", ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
  const found: { doc: string; spec: string; names: string[] }[] = [];
  for (const doc of docs) {
    const text = readFileSync(join(root, doc), "utf8");
    for (const block of text.matchAll(/```(?:ts|typescript|js|javascript|mjs)\n([\s\S]*?)```/g)) {
      for (const m of block[1]!.matchAll(/^import\s+(?:type\s+)?(?:\{([^}]*)\}|[\w$]+|\*\s+as\s+[\w$]+)\s+from\s+["']([^"']+)["']/gm)) {
        const names = (m[1] ?? "").split(",").map((n) => n.trim().replace(/^type\s+/, "").split(/\s+as\s+/)[0]!).filter(Boolean);
        found.push({ doc, spec: m[2]!, names });
      }
    }
  }
  return found;
}

describe("the packed package, installed into an empty project", () => {
  const work = mkdtempSync(join(tmpdir(), "clipper-package-"));
  const project = join(work, "project");
  mkdirSync(join(project, "src"), { recursive: true });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  beforeAll(async () => {
    const packed = succeeded("npm pack", await runCommand("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], {
      cwd: root, env: npmEnv(), timeoutMs: 60_000,
    }));
    const tarball = join(work, (packed.json as { filename: string }[])[0]!.filename);
    writeFileSync(join(project, "package.json"), `${JSON.stringify({ name: "user-project", version: "1.0.0", private: true, type: "module" }, null, 2)}\n`);
    succeeded("npm install of the tarball", await runCommand("npm", ["install", "--omit=dev", "--prefer-offline", "--no-audit", "--no-fund", tarball], {
      cwd: project, env: npmEnv(), timeoutMs: INSTALL_TIMEOUT_MS,
    }));
  }, INSTALL_TIMEOUT_MS + 60_000);

  // Started after the install (hooks run in the order they are declared), with the project's own `clipper`.
  const cluster = cliCluster("clipper-package-home-", { launcher: { command: "npx", args: ["--no", "clipper"], cwd: project } });

  it("is installed under its npm name with production dependencies only", () => {
    const installed = JSON.parse(readFileSync(join(project, "node_modules", PACKAGE_NAME, "package.json"), "utf8")) as { name: string; bin: Record<string, string> };
    expect(installed.name).toBe(PACKAGE_NAME);
    expect(Object.keys(installed.bin)).toEqual(["clipper"]);
    const dependencies = (JSON.parse(readFileSync(join(project, "package.json"), "utf8")) as { dependencies: Record<string, string> }).dependencies;
    expect(Object.keys(dependencies)).toEqual([PACKAGE_NAME]);
    for (const dev of ["vitest", "typescript", "autocannon"]) expect(readdirSync(join(project, "node_modules"))).not.toContain(dev);
    // What only the repository uses stays out of the package.
    expect(existsSync(join(project, "node_modules", PACKAGE_NAME, "dist", "bench"))).toBe(false);
  });

  it("serves the dashboard's built page and script from the installed package", async () => {
    const page = await fetch(`${cluster.urls.managementUrl}/dashboard`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("app.js");
    const script = await fetch(`${cluster.urls.managementUrl}/dashboard/app.js`);
    expect(script.status).toBe(200);
    expect((await script.text()).length).toBeGreaterThan(1000);
  });

  it("serves a TypeScript model deployed with the installed `clipper`", async () => {
    const model = join(project, "sum.ts");
    writeFileSync(model, "export function predict(inputs: number[][]): number[] {\n  return inputs.map((xs) => xs.reduce((a, b) => a + b, 0));\n}\n");
    await cluster.ok("register-app", "sum", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "5000");
    await cluster.ok("deploy-model", "sum-model", "--version", "1", "--input-type", "doubles", "--framework", "node", "--predict", `${model}:predict`, "--link", "sum");
    expect(await predictAt(cluster.urls.queryUrl, "sum", [1, 2, 3])).toMatchObject({ output: 6, default: false });
  });

  it("type-checks a script that imports the library by name with tsc --strict, and runs it", async () => {
    writeFileSync(join(project, "tsconfig.json"), `${JSON.stringify({
      compilerOptions: { strict: true, module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", skipLibCheck: false, rootDir: "src", outDir: "out" },
      include: ["src"],
    }, null, 2)}\n`);
    writeFileSync(join(project, "src", "script.ts"), [
      `import { ClipperConnection, ClipperError, type PredictReply } from "${PACKAGE_NAME}";`,
      `import type { ModelImageRequest } from "${PACKAGE_NAME}/images";`,
      "",
      'const request: Pick<ModelImageRequest, "name" | "version"> = { name: "sum-model", version: "1" };',
      "const conn = await ClipperConnection.connect();",
      "try {",
      "  // The library's types are there (not `any`): a call without an input type does not compile.",
      "  // @ts-expect-error inputType is required",
      '  if (process.argv.includes("--never")) await conn.registerApplication({ name: "typo" });',
      '  const reply: PredictReply = await conn.predict("sum", { input: [4, 5, 6] });',
      "  const apps = await conn.getAllApps(false);",
      "  console.log(JSON.stringify({ status: reply.status, body: reply.body, apps, image: request.name }));",
      "} catch (err) {",
      "  if (err instanceof ClipperError) console.error(`${err.code}: ${err.message}`);",
      "  throw err;",
      "} finally {",
      "  await conn.close();",
      "}",
      "",
    ].join("\n"));
    succeeded("tsc", await runCommand(process.execPath, [tsc, "-p", project], { cwd: project, timeoutMs: 120_000 }));
    const ran = succeeded("the compiled script", await runCommand(process.execPath, [join(project, "out", "script.js")], {
      cwd: project, env: { ...process.env, CLIPPER_HOME: cluster.home }, timeoutMs: 60_000,
    }));
    expect(JSON.parse(ran.stdout.trim())).toEqual({ status: 200, body: { query_id: expect.any(Number), output: 15, default: false }, apps: ["sum"], image: "sum-model" });
  }, 180_000);

  it("exports every name the docs import, under the package's name", async () => {
    const imports = docImports();
    expect(imports.length).toBeGreaterThan(0);
    for (const { doc, spec } of imports) expect(spec, `${doc} imports from ${spec}, not from the package`).toMatch(new RegExp(`^${PACKAGE_NAME}(/|$)`));
    const check = [
      "const missing = [];",
      ...imports.map(({ doc, spec, names }) =>
        `{ const m = await import(${JSON.stringify(spec)}); for (const n of ${JSON.stringify(names)}) if (m[n] === undefined) missing.push(${JSON.stringify(`${doc}: ${spec}`)} + " has no " + n); }`),
      "console.log(JSON.stringify(missing));",
    ].join("\n");
    const ran = succeeded("importing what the docs import", await runCommand(process.execPath, ["--input-type=module", "-e", check], { cwd: project, timeoutMs: 60_000 }));
    expect(JSON.parse(ran.stdout.trim())).toEqual([]);
  });

  it("stops the cluster with the installed `clipper`", async () => {
    await cluster.ok("stop");
    await expect(fetch(`${cluster.urls.queryUrl}/metrics`)).rejects.toThrow();
  });
});
