// Makes the compiled CLI entry executable, so `npx clipper` and `npm link` work after a build, and
// bundles the dashboard's page and script.
import { chmodSync, existsSync } from "node:fs";
const entry = new URL("../dist/bin/clipper.js", import.meta.url);
if (existsSync(entry)) chmodSync(entry, 0o755);
await import("./build-dashboard.mjs");
