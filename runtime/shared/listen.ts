/** Starts an HTTP server listening, with a clear error for a taken port and logging afterwards. */
import type { Server } from "node:http";
import type { Logger } from "pino";

export async function listen(server: Server, port: number, host: string, log: Logger): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  }).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot listen on ${host}:${port}: ${err.message}`);
  });
  server.on("error", (err) => log.error({ err }, "server error"));
}
