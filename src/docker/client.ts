/**
 * The one place that loads the Docker SDK: a dockerode client from DOCKER_HOST or the default socket.
 * Library code reaches this module only through `await import(...)` when it talks to a daemon, so
 * importing the library does not load dockerode (test/lazy-sdks.test.ts); errors.ts maps daemon errors.
 */
import Docker from "dockerode";

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
