/**
 * How the CLI and the library reach a cluster's HTTP services from outside the cluster: through the
 * API server's service proxy (`/api/v1/namespaces/NS/services/http:NAME:PORT/proxy/...`), with the
 * kubeconfig's own credentials. Works on any cluster the kubeconfig can reach (kind, minikube, a
 * managed one behind its public endpoint), needs no open NodePort or LoadBalancer and no kubectl
 * port-forward running beside us; the caller needs RBAC permission for `services/proxy`.
 *
 * Each proxy is a loopback HTTP server in this process (127.0.0.1, a port the OS picks) that
 * forwards every request, so the admin client and `predict` keep talking plain HTTP to a URL. It
 * never keeps the process alive on its own. The API server authenticates us with `Authorization`
 * and strips that header, so the management token travels as `X-Clipper-Token`.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import { request as httpsRequest, type RequestOptions } from "node:https";
import { type AddressInfo, isIP } from "node:net";
import type { KubeConfig } from "@kubernetes/client-node";

export interface ServiceProxy {
  /** http://127.0.0.1:PORT, valid while this process runs. */
  readonly url: string;
  close(): Promise<void>;
}

export interface ServiceTarget {
  namespace: string;
  service: string;
  /** The Service's port, by name or number. */
  port: string | number;
}

/** Hop-by-hop headers, and the caller's Authorization (our credentials replace it on the way out). */
const NOT_FORWARDED = new Set([
  "host", "connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "authorization",
]);

/** How long one forwarded exchange may stay silent before it is abandoned (the callers' own limits are shorter). */
const UPSTREAM_IDLE_MS = 120_000;

/**
 * The API server's hostname when the kubeconfig names it by one (not an IP address): the API server's
 * proxy forwards the Host its caller used, so the daemon and the frontends must admit that name
 * (runtime/shared/host-check.ts). As a spread-able object: `{}` when there is nothing to admit.
 */
export function apiServerHostOf(kc: KubeConfig): { apiServerHost?: string } {
  const server = kc.getCurrentCluster()?.server;
  if (!server) return {};
  let hostname: string;
  try {
    hostname = new URL(server).hostname.replace(/^\[|\]$/g, "").toLowerCase();
  } catch {
    return {};
  }
  return hostname === "" || isIP(hostname) !== 0 ? {} : { apiServerHost: hostname };
}

/** The API server path prefix that proxies to the Service's port. */
export function serviceProxyPath(target: ServiceTarget): string {
  const seg = encodeURIComponent;
  return `/api/v1/namespaces/${seg(target.namespace)}/services/${seg(`http:${target.service}:${target.port}`)}/proxy`;
}

export async function openServiceProxy(kc: KubeConfig, target: ServiceTarget): Promise<ServiceProxy> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("the kubeconfig names no cluster for its current context");
  const server = new URL(cluster.server);
  const base = `${server.pathname.replace(/\/+$/, "")}${serviceProxyPath(target)}`;
  const send = server.protocol === "https:" ? httpsRequest : httpRequest;
  const hostname = server.hostname.replace(/^\[|\]$/g, "");
  const serverPort = server.port || (server.protocol === "https:" ? 443 : 80);

  async function forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Credentials are applied per request: exec and OIDC plugins refresh their tokens here.
    const options: RequestOptions = {};
    await kc.applyToHTTPSOptions(options);
    const upstream = send({
      ...options,
      protocol: server.protocol,
      hostname,
      port: serverPort,
      method: req.method,
      path: `${base}${req.url ?? "/"}`,
      headers: { ...forwardable(req.headers), ...(options.headers as Record<string, string> | undefined) },
      ...(options.auth ? { auth: options.auth } : {}),
    });
    upstream.setTimeout(UPSTREAM_IDLE_MS, () => upstream.destroy(new Error(`no answer within ${UPSTREAM_IDLE_MS / 1000} s`)));
    upstream.on("response", (answer) => {
      res.writeHead(answer.statusCode ?? 502, { ...forwardable(answer.headers), connection: "close" });
      answer.pipe(res);
    });
    upstream.on("error", (err) => fail(res, err));
    req.pipe(upstream);
  }

  const proxy = createServer((req, res) => {
    forward(req, res).catch((err: unknown) => fail(res, err));
  });
  await new Promise<void>((resolve, reject) => {
    proxy.once("error", reject);
    proxy.listen(0, "127.0.0.1", resolve);
  });
  // A CLI command ends when its work does, whether or not the proxy is closed.
  proxy.unref();
  const { port } = proxy.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      proxy.closeAllConnections();
      proxy.close(() => resolve());
    }),
  };
}

function forwardable(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !NOT_FORWARDED.has(name.toLowerCase())) out[name] = value;
  }
  return out;
}

/** The API server could not be reached (or broke off): 502 with the reason, once. */
function fail(res: ServerResponse, err: unknown): void {
  const reason = err instanceof Error ? err.message : String(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = `cannot reach the service through the Kubernetes API server: ${reason}\n`;
  res.writeHead(502, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text), connection: "close" });
  res.end(text);
}
