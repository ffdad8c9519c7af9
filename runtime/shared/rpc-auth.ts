/**
 * Who may register as a model replica on a query frontend's RPC port (docs/security.md).
 *
 * Each cluster has one RPC key (32 random bytes), known to the frontends and to whatever deploys
 * replicas (the CLI, the local supervisor). From it every model version gets its own credential,
 * bound to the model name, version and input type it was deployed with:
 *
 *   secret   = HMAC-SHA256(key, "clipper-rpc-v1\n<name>\n<version>\n<input type>")   (base64url)
 *
 * A replica proves it holds that secret twice:
 * - at the ZeroMQ handshake, with the PLAIN mechanism (username `<name>:<version>:<input type>`,
 *   password = the secret), checked by the frontend's ZAP handler; a peer without a valid
 *   credential never completes a handshake, so it can neither send nor receive a frame;
 * - in its routing id, `<name>:<version>:<input type>:<nonce>:<mac>` with mac = HMAC(secret, nonce).
 *   ZeroMQ does not tell the ROUTER which PLAIN username a connection used (zeromq.js cannot read
 *   the User-Id message property), but the ROUTER does see the routing id with every message; the
 *   mac binds the connection to one model version, so a peer holding model B's credential cannot
 *   claim to be model A. libzmq refuses a second connection with a routing id already in use.
 *
 * PLAIN sends the password in the clear: it authenticates, it does not encrypt. Replicas reach
 * their frontends over loopback (local manager), a private Docker network, or a Kubernetes network
 * restricted by a NetworkPolicy.
 */
import { createHmac, randomBytes } from "node:crypto";
import { sameSecret } from "./secrets.js";
import { INPUT_TYPES, type InputType } from "./input-types.js";

/** `plain`: the default above. `none`: any peer may register (Clipper's own containers). */
export const RPC_AUTH_MODES = ["plain", "none"] as const;
export type RpcAuthMode = (typeof RPC_AUTH_MODES)[number];
export const DEFAULT_RPC_AUTH: RpcAuthMode = "plain";

/** The environment a replica finds its credential in (never logged). */
export const RPC_SECRET_ENV = "CLIPPER_RPC_SECRET";

/** The ZAP domain the frontend's ROUTER authenticates in. */
export const ZAP_DOMAIN = "clipper-rpc";

const LABEL = "clipper-rpc-v1";
const NONCE_BYTES = 12;
const MAC_CHARS = 22; // 132 bits of an HMAC-SHA256, base64url

/** A new cluster RPC key. */
export function generateRpcKey(): string {
  return randomBytes(32).toString("base64url");
}

/** The model version a credential or routing id names. */
export interface RpcPrincipal {
  name: string;
  version: string;
  inputType: InputType;
}

/** The credential of one model version (what a replica gets as CLIPPER_RPC_SECRET). */
export function versionSecret(key: string, who: RpcPrincipal): string {
  return createHmac("sha256", key).update(`${LABEL}\n${who.name}\n${who.version}\n${who.inputType}`).digest("base64url");
}

/** The PLAIN username of a model version. */
export function plainUsername(who: RpcPrincipal): string {
  return `${who.name}:${who.version}:${who.inputType}`;
}

/** A fresh routing id for one connection of a replica holding `secret`. */
export function replicaRoutingId(who: RpcPrincipal, secret: string, nonce = randomBytes(NONCE_BYTES).toString("base64url")): string {
  return `${plainUsername(who)}:${nonce}:${mac(secret, nonce)}`;
}

/** The principal a PLAIN username and password prove, or undefined. */
export function verifyPlain(key: string, username: string, password: string): RpcPrincipal | undefined {
  const who = parsePrincipal(username.split(":"));
  return who && sameSecret(password, versionSecret(key, who)) ? who : undefined;
}

/** The principal a routing id proves, or undefined (wrong shape or wrong mac). */
export function verifyRoutingId(key: string, routingId: Buffer | string): RpcPrincipal | undefined {
  const parts = routingId.toString("utf8").split(":");
  if (parts.length !== 5) return undefined;
  const who = parsePrincipal(parts.slice(0, 3));
  const nonce = parts[3]!;
  if (!who || nonce.length === 0) return undefined;
  return sameSecret(parts[4]!, mac(versionSecret(key, who), nonce)) ? who : undefined;
}

function parsePrincipal(parts: string[]): RpcPrincipal | undefined {
  if (parts.length !== 3) return undefined;
  const [name, version, inputType] = parts as [string, string, string];
  if (!name || !version || !(INPUT_TYPES as readonly string[]).includes(inputType)) return undefined;
  return { name, version, inputType: inputType as InputType };
}

function mac(secret: string, nonce: string): string {
  return createHmac("sha256", secret).update(nonce).digest("base64url").slice(0, MAC_CHARS);
}
