// Bundles the dashboard (runtime/dashboard) into dist/dashboard with esbuild: one script, one style
// sheet, one page, served by the management daemon from the package (no CDN).
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const source = `${root}runtime/dashboard`;
const out = `${root}dist/dashboard`;
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [`${source}/src/main.ts`],
  outfile: `${out}/app.js`,
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
});
for (const file of ["index.html", "app.css"]) copyFileSync(`${source}/${file}`, `${out}/${file}`);
