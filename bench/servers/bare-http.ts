/**
 * The ceiling for the frontend benchmark: a bare node:http server that reads and parses the same
 * JSON body as the query frontend and answers a small JSON, doing nothing else. Prints its port.
 */
import { createServer } from "node:http";

let queryId = 0;
const server = createServer((req, res) => {
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
});
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`${typeof address === "object" && address ? address.port : 0}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
