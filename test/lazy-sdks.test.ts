/**
 * Importing the library loads neither Docker's SDK (dockerode) nor Kubernetes' (@kubernetes/client-node):
 * a script that only talks to a local cluster should not pay for them. A child process imports the
 * built library with a resolve hook that refuses any module inside either package, so loading one
 * fails the import and names who asked for it; the same hook then has to refuse them when a manager
 * is used, which shows that it catches them (and that they load when needed, not never).
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const SDK = String.raw`/node_modules/(dockerode|@kubernetes/client-node)/`;

const HOOK = `
export async function resolve(specifier, context, next) {
  const found = await next(specifier, context);
  if (new RegExp(${JSON.stringify(SDK)}).test(found.url)) throw new Error("SDK LOADED: " + found.url + " imported by " + context.parentURL);
  return found;
}`;

const CHILD = `
import { register, createRequire } from "node:module";
register("data:text/javascript," + encodeURIComponent(${JSON.stringify(HOOK)}));
const report = {};
const attempt = async (what, run) => {
  try { await run(); report[what] = "ok"; } catch (err) { report[what] = String(err?.message ?? err); }
};
let lib;
await attempt("import", async () => { lib = await import(${JSON.stringify(pathToFileURL(join(root, "dist/src/index.js")).href)}); });
// A CommonJS package imported from ES modules lands in the require cache too.
report.cached = Object.keys(createRequire(process.cwd() + "/").cache).filter((p) => new RegExp(${JSON.stringify(SDK)}).test(p));
if (lib) {
  await attempt("docker", () => new lib.DockerodeEngine().remoteHost());
  await attempt("kubernetes", () => lib.KubernetesContainerManager.create({ cluster: "lazy" }));
}
console.log(JSON.stringify(report));
`;

describe("the library's SDKs", () => {
  it("are not loaded by importing the library, and are loaded when a manager needs one", () => {
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", CHILD], { cwd: root, encoding: "utf8", timeout: 30_000 });
    expect(child.status, child.stderr).toBe(0);
    const report = JSON.parse(child.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(report.import).toBe("ok");
    expect(report.cached).toEqual([]);
    expect(report.docker).toMatch(/^SDK LOADED: .*\/node_modules\/dockerode\/.* imported by .*\/dist\/src\/docker\/client\.js$/);
    expect(report.kubernetes).toMatch(/^SDK LOADED: .*\/node_modules\/@kubernetes\/client-node\/.* imported by .*\/dist\/src\/managers\/kubernetes\/kube-client\.js$/);
  });
});
