/**
 * The ROUTER stand-in of test-frontend.ts on any loopback address (127.0.0.1, 127.0.0.2, ...:
 * on Linux all of 127/8 is the loopback interface), so that several "frontends" can listen on the
 * same port, as frontend pods behind one headless Service do. Loopback addresses only.
 */
import { createServer } from "node:net";
import { encodeFrontendMessage } from "../../runtime/rpc/codec.js";
import { Frontend, type FrontendAuthOptions, type Received } from "./test-frontend.js";

export class LoopbackFrontend extends Frontend {
  constructor(readonly host: string, port: number, describeProcess: () => string, options: FrontendAuthOptions = {}) {
    if (!host.startsWith("127.")) throw new Error(`LoopbackFrontend binds loopback addresses only, not ${host}`);
    super(port, describeProcess, options);
  }

  /** "tcp://127.0.0.2:7000": the endpoint a runtime connects to, as its logs name it. */
  get endpoint(): string {
    return `tcp://${this.host}:${this.port}`;
  }

  private sending: Promise<unknown> = Promise.resolve();

  /** Sends one at a time (a zeromq socket allows one send in flight), so keepAlive can run alongside. */
  override send(identity: Buffer, frames: Buffer[]): Promise<void> {
    const sent = this.sending.then(() => super.send(identity, frames));
    this.sending = sent.catch(() => undefined);
    return sent;
  }

  /**
   * Answers like a live frontend would: a keepalive heartbeat to `identity` every `everyMs`, so
   * that the replica does not give up on a connection the test leaves idle. Returns the stop.
   */
  keepAlive(identity: Buffer, everyMs = 200): () => void {
    const timer = setInterval(() => {
      if (this.router.closed) return;
      this.send(identity, encodeFrontendMessage({ kind: "heartbeat", requestMetadata: false })).catch(() => undefined);
    }, everyMs);
    return () => clearInterval(timer);
  }

  override async bind(): Promise<void> {
    await this.bindTo(this.endpoint);
  }

  /** Every message that arrives within `ms` (none is an empty list). */
  async drain(ms: number): Promise<Received[]> {
    const received: Received[] = [];
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return received;
      try {
        received.push(await this.receive(left));
      } catch {
        return received;
      }
    }
  }
}

function listenOnce(host: string, port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(undefined));
    server.listen(port, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : undefined));
    });
  });
}

/** A port that was free a moment ago on every one of `hosts` (loopback addresses). */
export async function freePortOn(hosts: string[]): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await listenOnce(hosts[0]!, 0);
    if (port === undefined) continue;
    let free = true;
    for (const host of hosts.slice(1)) free = free && (await listenOnce(host, port)) === port;
    if (free) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(", ")}`);
}
