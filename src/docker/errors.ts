/**
 * The Docker daemon's errors turned into our own typed errors with hints. Apart from client.ts, so
 * code that only reports daemon errors does not load the SDK (importing the library must not).
 */
import { ClipperError } from "../errors.js";

/** Maps a daemon error to a ClipperError with a hint; other errors pass through. */
export function dockerError(err: unknown, doing: string): Error {
  const message = err instanceof Error ? err.message : String(err);
  if (/could not select device driver|nvidia/i.test(message) && /device/i.test(message)) {
    return new ClipperError("MANAGER", `${doing}: the Docker daemon has no GPU runtime (${message.trim()})`,
      "install the NVIDIA Container Toolkit on the Docker host, or deploy without --gpu");
  }
  if (/ECONNREFUSED|ENOENT.*docker\.sock|connect EACCES/.test(message)) {
    return new ClipperError("UNREACHABLE", `${doing}: cannot reach the Docker daemon (${message.trim()})`,
      "is dockerd running? (DOCKER_HOST selects another daemon)");
  }
  if (/No such image|pull access denied|manifest unknown/i.test(message)) {
    return new ClipperError("MANAGER", `${doing}: ${message.trim()}`, "build the image first, or check the image name and registry");
  }
  return err instanceof Error ? err : new Error(message);
}
