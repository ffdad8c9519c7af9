/**
 * Serves the dashboard (runtime/dashboard, bundled by scripts/build-dashboard.mjs into
 * dist/dashboard) from the package: no CDN, nothing fetched from elsewhere. A fixed list of files,
 * so no request path ever reaches the file system. The headers keep the page from being framed by
 * another site (its buttons change the cluster) and allow scripts and styles from this origin only.
 */
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { packageRoot } from "../shared/package-root.js";
import { AdminError } from "./errors.js";

/** Request path (trailing slash removed) → built file and its type. */
const ASSETS: ReadonlyMap<string, { file: string; type: string }> = new Map([
  ["/dashboard", { file: "index.html", type: "text/html; charset=utf-8" }],
  ["/dashboard/app.js", { file: "app.js", type: "text/javascript; charset=utf-8" }],
  ["/dashboard/app.css", { file: "app.css", type: "text/css; charset=utf-8" }],
]);

const SECURITY_HEADERS = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};

export function isDashboardPath(path: string): boolean {
  return path === "/dashboard" || path.startsWith("/dashboard/");
}

export class DashboardAssets {
  private readonly cache = new Map<string, Buffer>();

  constructor(private readonly dir = join(packageRoot(), "dist", "dashboard")) {}

  async serve(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const asset = ASSETS.get(path);
    if (!asset) throw new AdminError("not_found", `No dashboard file at ${path}`);
    if (req.method !== "GET" && req.method !== "HEAD") {
      throw new AdminError("method_not_allowed", `Method ${req.method} is not allowed on ${path}; use GET`, { allow: "GET, HEAD" });
    }
    let body = this.cache.get(asset.file);
    if (!body) {
      try {
        body = await readFile(join(this.dir, asset.file));
      } catch {
        throw new AdminError("not_found", `The dashboard is not built (no ${asset.file} in ${this.dir}): run 'npm run build'`);
      }
      this.cache.set(asset.file, body);
    }
    res.writeHead(200, { ...SECURITY_HEADERS, "content-type": asset.type, "content-length": body.length });
    res.end(req.method === "HEAD" ? undefined : body);
  }
}
