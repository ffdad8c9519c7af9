/**
 * CLIPPER_FRONTEND_DISCOVERY=dns: one connection per query frontend. The hosts in CLIPPER_IP (on
 * Kubernetes, the frontends' headless Service) are resolved to all their addresses every
 * CLIPPER_DISCOVERY_INTERVAL_MS; each distinct address and each port in CLIPPER_PORT (one per
 * frontend worker) make an endpoint, and each endpoint gets its own client (its own DEALER,
 * heartbeat, handshake and reconnect timer: a ContainerRpcClient). A new address is connected at
 * once; one missing from DNS for longer than `goneAfterMs` (the reconnect timeout) is closed, so a
 * DNS blip does not drop a live frontend. A failed lookup is logged and retried, and its host
 * keeps the addresses it last resolved to.
 */
import { promises as dns } from "node:dns";
import { frontendAddress } from "./env.js";
import { systemClock, type RpcClock, type RpcLogger } from "./rpc-client.js";

/** Every address a host resolves to; rejects when it cannot be resolved. */
export type Lookup = (host: string) => Promise<string[]>;

/** The system resolver (getaddrinfo, as ZeroMQ and the rest of the process use): IPv4 and IPv6. */
export const systemLookup: Lookup = async (host) => (await dns.lookup(host, { all: true })).map((a) => a.address);

/**
 * No discovery (CLIPPER_FRONTEND_DISCOVERY=none) with several ports: the host as given, one
 * frontend with several workers; ZeroMQ resolves a name itself, as with a single port.
 */
export const staticLookup: Lookup = async (host) => [host];

/** What the set needs from one frontend's connection (a ContainerRpcClient fits). */
export interface FrontendClient {
  start(): void;
  stop(): Promise<void>;
  /** Stops by draining (ContainerRpcClient.drainAndStop); resolves once stopped. */
  drainAndStop(ackTimeoutMs: number): Promise<unknown>;
}

export interface FrontendSetOptions {
  hosts: string[];
  /** Every frontend worker's RPC port on each address (CLIPPER_PORT). */
  ports: number[];
  /** Resolve the hosts again this often. */
  intervalMs: number;
  /** Close a connection whose address has been missing from DNS for longer than this. */
  goneAfterMs: number;
  /** Creates the (not yet started) client for one endpoint, e.g. "tcp://10.0.0.7:7000". */
  createClient: (endpoint: string) => FrontendClient;
  /** "name:version", on every log line. */
  model: string;
  lookup?: Lookup;
  clock?: RpcClock;
  logger?: RpcLogger;
}

interface Known {
  client: FrontendClient;
  /** When the address was last among those the hosts resolved to. */
  lastResolved: number;
}

type HostResult = { host: string; addresses: string[] } | { host: string; error: Error };

const noopLogger: RpcLogger = { info() {}, warn() {}, error() {}, debug() {} };

export class FrontendSet implements FrontendClient {
  private readonly opts: FrontendSetOptions;
  private readonly lookup: Lookup;
  private readonly clock: RpcClock;
  private readonly log: RpcLogger;
  private readonly known = new Map<string, Known>();
  /** Each host's addresses at its last successful lookup. */
  private readonly lastAddresses = new Map<string, string[]>();
  /** The last lookup error logged per host (logged again only when it changes). */
  private readonly lastErrors = new Map<string, string>();
  private timer: unknown;
  private resolving: Promise<void> | undefined;
  private started = false;
  private stopped = false;

  constructor(options: FrontendSetOptions) {
    if (options.hosts.length === 0) throw new RangeError("FrontendSet needs at least one host");
    if (options.ports.length === 0) throw new RangeError("FrontendSet needs at least one port");
    this.opts = options;
    this.lookup = options.lookup ?? systemLookup;
    this.clock = options.clock ?? systemClock;
    this.log = options.logger ?? noopLogger;
  }

  /** Resolves the hosts now and then every interval; returns at once. */
  start(): void {
    if (this.started) throw new Error("FrontendSet already started");
    this.started = true;
    this.log.info(
      { model: this.opts.model, hosts: this.opts.hosts, ports: this.opts.ports, intervalMs: this.opts.intervalMs },
      this.lookup === staticLookup ? "connecting to every worker of the query frontend" : "discovering query frontends by DNS",
    );
    void this.cycle();
  }

  /** Stops resolving and closes every connection. */
  async stop(): Promise<void> {
    await Promise.all(this.stopResolving().map((c) => c.stop()));
  }

  /** Stops resolving and drains every connection, each on its own (a frontend per connection). */
  async drainAndStop(ackTimeoutMs: number): Promise<void> {
    await Promise.all(this.stopResolving().map((c) => c.drainAndStop(ackTimeoutMs)));
  }

  /** Stops the lookups (once) and hands over the clients to close. */
  private stopResolving(): FrontendClient[] {
    if (this.stopped) return [];
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const clients = [...this.known.values()].map((k) => k.client);
    this.known.clear();
    return clients;
  }

  /** The endpoints connected to now, e.g. ["tcp://10.0.0.7:7000"]. */
  get endpoints(): string[] {
    return [...this.known.keys()];
  }

  /** Resolves once and applies the result (the timer does this every interval). */
  async refresh(): Promise<void> {
    // One lookup round at a time: a slow resolver delays the next round rather than piling them up.
    while (this.resolving) await this.resolving;
    if (this.stopped) return;
    this.resolving = this.resolveAndApply().finally(() => {
      this.resolving = undefined;
    });
    await this.resolving;
  }

  private async cycle(): Promise<void> {
    this.timer = undefined;
    try {
      await this.refresh();
    } catch (err) {
      this.log.error({ model: this.opts.model, err }, "frontend discovery failed; retrying");
    }
    if (!this.stopped) this.timer = this.clock.setTimeout(() => void this.cycle(), this.opts.intervalMs);
  }

  private async resolveAndApply(): Promise<void> {
    const results = await Promise.all(
      this.opts.hosts.map(async (host): Promise<HostResult> => {
        try {
          return { host, addresses: await this.lookup(host) };
        } catch (err) {
          return { host, error: err instanceof Error ? err : new Error(String(err)) };
        }
      }),
    );
    if (this.stopped) return;
    this.apply(results);
  }

  private apply(results: HostResult[]): void {
    const { model, ports } = this.opts;
    const now = this.clock.now();
    /** endpoint -> the hosts that resolved to it */
    const present = new Map<string, string[]>();
    for (const r of results) {
      let addresses: string[];
      if ("error" in r) {
        addresses = this.lastAddresses.get(r.host) ?? [];
        if (this.lastErrors.get(r.host) !== r.error.message) {
          this.log.warn(
            { model, host: r.host, reason: r.error.message, retryMs: this.opts.intervalMs, keeping: addresses.length },
            "cannot resolve the query frontend host; retrying, and keeping the connections to its known addresses",
          );
        }
        this.lastErrors.set(r.host, r.error.message);
      } else {
        addresses = r.addresses;
        if (this.lastErrors.delete(r.host)) this.log.info({ model, host: r.host }, "resolved the query frontend host again");
        this.lastAddresses.set(r.host, addresses);
      }
      for (const address of addresses) {
        for (const port of ports) {
          const endpoint = frontendAddress({ ip: address, port });
          const hosts = present.get(endpoint) ?? [];
          if (!hosts.includes(r.host)) hosts.push(r.host);
          present.set(endpoint, hosts);
        }
      }
    }
    for (const [endpoint, hosts] of present) {
      const known = this.known.get(endpoint);
      if (known) {
        known.lastResolved = now;
        continue;
      }
      this.log.info({ model, address: endpoint, hosts }, "query frontend address added");
      const client = this.opts.createClient(endpoint);
      this.known.set(endpoint, { client, lastResolved: now });
      client.start();
    }
    for (const [endpoint, known] of this.known) {
      const absentMs = now - known.lastResolved;
      if (present.has(endpoint) || absentMs <= this.opts.goneAfterMs) continue;
      this.known.delete(endpoint);
      this.log.info({ model, address: endpoint, absentMs }, "query frontend address removed: gone from DNS; closing its connection");
      void known.client.stop();
    }
  }
}
