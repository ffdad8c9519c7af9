/**
 * The ceiling for the frontend benchmark: a bare node:http server that reads and parses the same
 * JSON body as the query frontend and answers a small JSON, doing nothing else (bare-handler.ts).
 * Prints its port.
 */
import { createServer } from "node:http";
import { bareHandler } from "./bare-handler.js";

const server = createServer(bareHandler());
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`${typeof address === "object" && address ? address.port : 0}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
