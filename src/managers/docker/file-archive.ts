/**
 * One file in and out of a container through the Engine API's archive endpoints (a tar), so it
 * works with a remote DOCKER_HOST and the file never appears in `docker inspect` or in the
 * environment. The Docker manager copies the management token and the RPC key this way.
 */
import { posix } from "node:path";
import tar from "tar-stream";

/** A tar holding the file's parent directories and the file, to extract at `/`. */
export async function fileArchive(path: string, content: string): Promise<Buffer> {
  const pack = tar.pack();
  const relative = path.replace(/^\/+/, "");
  const dirs: string[] = [];
  for (let dir = posix.dirname(relative); dir !== "." && dir !== ""; dir = posix.dirname(dir)) dirs.unshift(dir);
  for (const dir of dirs) pack.entry({ name: `${dir}/`, type: "directory", mode: 0o755 });
  // Readable by whichever user the image runs as; only our runtime runs in these containers.
  pack.entry({ name: relative, mode: 0o444 }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The text of the first file in a tar stream (undefined when it holds none). */
export async function firstFileOf(stream: NodeJS.ReadableStream): Promise<string | undefined> {
  const extract = tar.extract();
  let text: string | undefined;
  const done = new Promise<void>((resolve, reject) => {
    extract.on("entry", (header, body, next) => {
      const chunks: Buffer[] = [];
      body.on("data", (c: unknown) => void chunks.push(c as Buffer));
      body.on("end", () => {
        if (header.type === "file" && text === undefined) text = Buffer.concat(chunks).toString("utf8");
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
  return text;
}
