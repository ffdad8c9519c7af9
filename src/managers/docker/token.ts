/**
 * The management token of a cluster published beyond loopback. It is generated at start, copied
 * into the management and query frontend containers before they start (a tar through the Engine
 * API, so it works with a remote DOCKER_HOST and never appears in `docker inspect` or in the
 * environment), and read back from the management container by `connect()`. Whoever can reach the
 * Docker API can read it, which is no new exposure: Docker API access is root on that host. The
 * cluster's RPC key travels the same way, into the query frontend only (RPC_KEY_FILE).
 */
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import tar from "tar-stream";
import type Dockerode from "dockerode";
import { TOKEN_FILE } from "./labels.js";

export function newToken(): string {
  return randomBytes(32).toString("hex");
}

/** A tar holding `<dir>/` and `<dir>/<file>` with the token, to extract at `/`. */
async function tokenArchive(token: string, file = TOKEN_FILE): Promise<Buffer> {
  const pack = tar.pack();
  const relative = file.replace(/^\/+/, "");
  const dirs: string[] = [];
  for (let dir = posix.dirname(relative); dir !== "." && dir !== ""; dir = posix.dirname(dir)) dirs.unshift(dir);
  for (const dir of dirs) pack.entry({ name: `${dir}/`, type: "directory", mode: 0o755 });
  // Readable by whichever user the image runs as; only our runtime runs in these containers.
  pack.entry({ name: relative, mode: 0o444 }, `${token}\n`);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Copies the token (or the RPC key, with its file) into a created (not yet started) container. */
export async function putToken(container: Dockerode.Container, token: string, file = TOKEN_FILE): Promise<void> {
  await container.putArchive(await tokenArchive(token, file), { path: "/" });
}

/** The token stored in a container, or undefined when the file is not there. */
export async function readTokenFrom(container: Dockerode.Container, file = TOKEN_FILE): Promise<string | undefined> {
  let stream: NodeJS.ReadableStream;
  try {
    stream = await container.getArchive({ path: file });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return undefined;
    throw err;
  }
  const extract = tar.extract();
  let token: string | undefined;
  const done = new Promise<void>((resolve, reject) => {
    extract.on("entry", (header, body, next) => {
      const chunks: Buffer[] = [];
      body.on("data", (c: unknown) => void chunks.push(c as Buffer));
      body.on("end", () => {
        if (header.type === "file" && token === undefined) token = Buffer.concat(chunks).toString("utf8").trim();
        next();
      });
      body.resume();
    });
    extract.on("finish", resolve);
    extract.on("error", reject);
    stream.on("error", reject);
  });
  stream.pipe(extract);
  await done;
  return token || undefined;
}
