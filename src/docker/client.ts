/**
 * The one place that talks to the Docker daemon's connection: a dockerode client from DOCKER_HOST or
 * the default socket, and daemon errors turned into our own typed errors with hints.
 */
import Docker from "dockerode";
import { ClipperError } from "../errors.js";

/**
 * A dockerode client for DOCKER_HOST (unix:// or tcp://) or /var/run/docker.sock. For tcp the
 * connection library reads DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH itself, so a TLS
 * daemon such as minikube's (`eval $(minikube docker-env)`) works as the docker CLI would.
 */
export function dockerClient(): Docker {
  const host = process.env.DOCKER_HOST;
  if (!host) return new Docker({ socketPath: "/var/run/docker.sock" });
  if (host.startsWith("unix://")) return new Docker({ socketPath: host.slice("unix://".length) });
  return new Docker();
}

/** Whether a daemon answers (a quick ping, bounded). */
export async function dockerAvailable(docker = dockerClient(), timeoutMs = 3000): Promise<boolean> {
  try {
    await Promise.race([docker.ping(), new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), timeoutMs))]);
    return true;
  } catch {
    return false;
  }
}

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
