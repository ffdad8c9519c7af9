/**
 * The process's ZeroMQ authentication (ZAP, RFC 27) handler. libzmq asks whoever is bound to
 * `inproc://zeromq.zap.01` in a socket's context to approve each handshake of a socket that has a
 * ZAP domain; only one socket per context can bind that address, and every frontend of a process
 * (tests start several) shares zeromq.js's default context. So one handler serves the process and
 * dispatches by domain: each RPC server registers its own domain with a verdict function, and a
 * request for a domain nobody registered is refused.
 */
import * as zmq from "zeromq";

const ZAP_ENDPOINT = "inproc://zeromq.zap.01";
const ZAP_VERSION = "1.0";

/** One handshake to judge: the peer's address, mechanism and (with PLAIN) its credential. */
export interface ZapRequest {
  domain: string;
  address: string;
  mechanism: string;
  username: string;
  password: string;
}

/** The user id to approve the peer under, or a reason to refuse it. */
export type ZapVerdict = { ok: true; userId: string } | { ok: false; reason: string };

export type ZapJudge = (request: ZapRequest) => ZapVerdict;

const judges = new Map<string, ZapJudge>();
/** The bound handler; `ready` settles once it is bound (concurrent registrations wait for it). */
let handler: { socket: zmq.Reply; ready: Promise<void> } | undefined;

/** Starts judging handshakes in `domain`; the returned function stops it (the last one closes the handler). */
export async function registerZapDomain(domain: string, judge: ZapJudge): Promise<() => void> {
  if (judges.has(domain)) throw new Error(`ZAP domain ${domain} is already registered`);
  judges.set(domain, judge);
  try {
    handler ??= open();
    await handler.ready;
  } catch (err) {
    judges.delete(domain);
    throw err;
  }
  return () => {
    if (judges.get(domain) !== judge) return;
    judges.delete(domain);
    if (judges.size === 0 && handler) {
      handler.socket.close();
      handler = undefined;
    }
  };
}

function open(): { socket: zmq.Reply; ready: Promise<void> } {
  const socket = new zmq.Reply({ linger: 0 });
  const ready = (async () => {
    // A handler closed a moment ago may still hold the address while libzmq tears it down.
    for (let attempt = 0; ; attempt++) {
      try {
        await socket.bind(ZAP_ENDPOINT);
        break;
      } catch (err) {
        if (attempt >= 50 || (err as { code?: string }).code !== "EADDRINUSE") {
          socket.close();
          if (handler?.socket === socket) handler = undefined;
          throw err;
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    void serve(socket);
  })();
  return { socket, ready };
}

async function serve(socket: zmq.Reply): Promise<void> {
  try {
    for await (const frames of socket) {
      await socket.send(answer(frames));
    }
  } catch {
    // Closed by the last unregistration, or failed.
  }
  // A handler that stopped while domains still rely on it would leave every handshake waiting:
  // open a new one (a failure to bind is retried by the next registration).
  if (handler?.socket === socket) {
    handler = judges.size > 0 ? open() : undefined;
    handler?.ready.catch(() => undefined);
  }
}

function answer(frames: Buffer[]): string[] {
  const text = (i: number): string => frames[i]?.toString("utf8") ?? "";
  const requestId = text(1);
  const refuse = (status: string, reason: string): string[] => [ZAP_VERSION, requestId, status, reason, "", ""];
  if (text(0) !== ZAP_VERSION || frames.length < 6) return refuse("500", "malformed ZAP request");
  const judge = judges.get(text(2));
  if (!judge) return refuse("400", "unknown ZAP domain");
  let verdict: ZapVerdict;
  try {
    verdict = judge({ domain: text(2), address: text(3), mechanism: text(5), username: text(6), password: text(7) });
  } catch {
    // A judge that fails refuses; the handler must keep answering the other handshakes.
    return refuse("500", "authentication failed");
  }
  return verdict.ok ? [ZAP_VERSION, requestId, "200", "OK", verdict.userId, ""] : refuse("400", verdict.reason);
}
