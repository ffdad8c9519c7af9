/**
 * The management token of a cluster published beyond loopback. It is generated at start, copied
 * into the management and query frontend containers before they start (DockerEngine.putFile: a tar
 * through the Engine API, never in `docker inspect` or the environment), and read back from the
 * management container by `connect()`. Whoever can reach the Docker API can read it, which is no
 * new exposure: Docker API access is root on that host. The cluster's RPC key travels the same
 * way, into the query frontend only (RPC_KEY_FILE).
 */
import { randomBytes } from "node:crypto";

export function newToken(): string {
  return randomBytes(32).toString("hex");
}
