/**
 * The `Host` check both HTTP APIs apply against DNS rebinding: a web page on a name the attacker
 * controls can have that name resolve to 127.0.0.1 and then read our answers as same-origin. Such a
 * request still carries the attacker's name in `Host`, so only names we know are admitted:
 * `localhost`, `*.localhost` (which resolve to loopback by definition), the name the server is bound
 * to, and `--allowed-hosts`. IP literals are always admitted: rebinding needs a hostname.
 * `--allowed-hosts '*'` turns the check off (a frontend behind a load balancer with many names).
 */
import { isIP } from "node:net";

export interface AllowedHosts {
  /** Lower-case hostnames, without ports. */
  readonly names: ReadonlySet<string>;
  /** `*` was given: every Host is admitted. */
  readonly any: boolean;
}

/** The entries of an `--allowed-hosts` value, checked; throws on a malformed entry. */
export function allowedHostsList(value: string): string[] {
  const entries = value.split(",").map((e) => e.trim()).filter((e) => e !== "");
  parseAllowedHosts(entries);
  return entries;
}

/** Parses the `--allowed-hosts` value (a comma list; `*` admits all); throws on a malformed entry. */
export function parseAllowedHosts(list: string | readonly string[] | undefined, boundHost?: string): AllowedHosts {
  const entries = (typeof list === "string" ? list.split(",") : (list ?? [])).map((e) => e.trim()).filter((e) => e !== "");
  const names = new Set<string>();
  let any = false;
  for (const entry of entries) {
    if (entry === "*") {
      any = true;
      continue;
    }
    const name = hostnameOf(entry);
    if (name === undefined) throw new Error(`'${entry}' is not a hostname (expected a name such as clipper.example.com, or '*')`);
    names.add(name);
  }
  if (boundHost !== undefined) {
    const bound = hostnameOf(boundHost);
    if (bound !== undefined) names.add(bound);
  }
  return { names, any };
}

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*\.?$/;

/** The lower-case hostname of a `Host` value (`name`, `name:port`, `[v6]:port`), or undefined if malformed. */
export function hostnameOf(host: string): string | undefined {
  const value = host.trim().toLowerCase();
  if (value.startsWith("[")) {
    const end = value.indexOf("]");
    if (end < 0) return undefined;
    const rest = value.slice(end + 1);
    if (rest !== "" && !/^:\d{1,5}$/.test(rest)) return undefined;
    const inner = value.slice(1, end);
    return isIP(inner) === 6 ? inner : undefined;
  }
  if (isIP(value) === 6) return value;
  const colon = value.lastIndexOf(":");
  const name = colon < 0 ? value : value.slice(0, colon);
  if (colon >= 0 && !/^\d{1,5}$/.test(value.slice(colon + 1))) return undefined;
  return isIP(name) === 4 || HOSTNAME.test(name) ? name.replace(/\.$/, "") : undefined;
}

/**
 * Whether a request's `Host` header is admitted. A request without one (HTTP/1.0 tools) is: every
 * browser sends it, and browsers are what this check is about.
 */
export function isHostAllowed(host: string | undefined, allowed: AllowedHosts): boolean {
  if (allowed.any || host === undefined) return true;
  const name = hostnameOf(host);
  if (name === undefined) return false;
  if (isIP(name) !== 0) return true;
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  return allowed.names.has(name);
}

/** The refusal text both APIs answer with, naming the flag that admits the host. */
export function hostRefusal(host: string): string {
  return `Host '${host.slice(0, 200)}' is not allowed: this server answers to loopback names, IP addresses and the names ` +
    `given with --allowed-hosts (a comma list, or '*' to admit every name; \`clipper start --allowed-hosts\`)`;
}

/**
 * Whether a request comes from a web page of another site: browsers send `Origin` on cross-origin
 * requests and on same-origin POSTs; the CLI, the library, clipper_admin and curl send none. Our
 * servers speak plain HTTP, so a server's own origin is `http://` plus the Host the request was sent to.
 */
export function isForeignOrigin(origin: string | undefined, host: string | undefined): boolean {
  if (origin === undefined) return false;
  if (host === undefined) return true;
  return origin.toLowerCase() !== `http://${host.toLowerCase()}`;
}
