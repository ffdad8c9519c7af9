/**
 * The ceiling's request handler (bench/servers/bare-http.ts): reads and parses the same JSON body as
 * the query frontend and answers a small JSON, doing nothing else. Its own module so that
 * bench/frontend-handler.ts can drive it in-process next to the frontend's handler.
 */
import type { IncomingMessage, ServerResponse } from "node:http";

export function bareHandler(): (req: IncomingMessage, res: ServerResponse) => void {
  let queryId = 0;
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let ok = true;
      try {
        JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        ok = false;
      }
      const body = ok ? JSON.stringify({ query_id: queryId++, output: 8, default: false }) : "{\"error\":\"Json error\"}";
      res.writeHead(ok ? 200 : 400, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
  };
}
