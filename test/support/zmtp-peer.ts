/**
 * A ZMTP 3.0 ROUTER-side peer written on raw TCP, for tests of the Python runtime's built-in DEALER
 * (runtime/python/clipper_runtime/zmtp.py): it can follow the protocol (NULL mechanism) or break it
 * on purpose — a bad greeting, a huge frame, bytes arriving one at a time — which a real libzmq
 * ROUTER never does; and RawDealer, a minimal DEALER for tests that need thousands of peers.
 * Frame layout: rfc.zeromq.org/spec/23.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";

const MORE = 0x01;
const LONG = 0x02;
const COMMAND = 0x04;

export function greeting(mechanism = "NULL", major = 3, signature = 0xff): Buffer {
  const g = Buffer.alloc(64);
  g[0] = signature;
  g[9] = 0x7f;
  g[10] = major;
  g.write(mechanism, 12, "ascii");
  g[32] = 1; // as-server
  return g;
}

function frameHeader(flags: number, size: number): Buffer {
  if (size < 256) return Buffer.from([flags, size]);
  const h = Buffer.alloc(9);
  h[0] = flags | LONG;
  h.writeBigUInt64BE(BigInt(size), 1);
  return h;
}

export function command(name: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const raw = Buffer.concat([Buffer.from([name.length]), Buffer.from(name, "ascii"), body]);
  return Buffer.concat([frameHeader(COMMAND, raw.length), raw]);
}

export function properties(props: Record<string, string>): Buffer {
  return Buffer.concat(Object.entries(props).map(([name, value]) => {
    const size = Buffer.alloc(4);
    size.writeUInt32BE(Buffer.byteLength(value), 0);
    return Buffer.concat([Buffer.from([name.length]), Buffer.from(name, "ascii"), size, Buffer.from(value)]);
  }));
}

export function message(frames: Buffer[]): Buffer {
  return Buffer.concat(frames.flatMap((f, i) => [frameHeader(i < frames.length - 1 ? MORE : 0, f.length), f]));
}

export type Received = { command: string; body: Buffer } | { frames: Buffer[] };

/** One accepted connection: what the DEALER sent, parsed as it arrives. */
export class PeerConnection {
  private buffer = Buffer.alloc(0);
  private greetingBytes: Buffer | undefined;
  private partial: Buffer[] = [];
  private readonly received: Received[] = [];
  private waiters: Array<() => void> = [];
  closed = false;

  constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on("data", (d: Buffer) => this.onData(d));
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
    socket.on("error", () => undefined);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private onData(data: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, data]);
    if (!this.greetingBytes) {
      if (this.buffer.length < 64) return;
      this.greetingBytes = this.buffer.subarray(0, 64);
      this.buffer = this.buffer.subarray(64);
    }
    for (;;) {
      if (this.buffer.length < 2) break;
      const flags = this.buffer[0]!;
      const long = (flags & LONG) !== 0;
      if (long && this.buffer.length < 9) break;
      const size = long ? Number(this.buffer.readBigUInt64BE(1)) : this.buffer[1]!;
      const start = long ? 9 : 2;
      if (this.buffer.length < start + size) break;
      const body = this.buffer.subarray(start, start + size);
      this.buffer = this.buffer.subarray(start + size);
      if (flags & COMMAND) {
        this.received.push({ command: body.subarray(1, 1 + body[0]!).toString("ascii"), body: body.subarray(1 + body[0]!) });
      } else {
        this.partial.push(Buffer.from(body));
        if (!(flags & MORE)) this.received.push({ frames: this.partial.splice(0) });
      }
    }
    this.wake();
  }

  /** The DEALER's greeting, once all 64 bytes arrived. */
  async greeting(timeoutMs = 5000): Promise<Buffer> {
    await this.until(() => this.greetingBytes !== undefined, timeoutMs, "the greeting");
    return this.greetingBytes!;
  }

  /** The next command or message the DEALER sent. */
  async next(timeoutMs = 5000): Promise<Received> {
    await this.until(() => this.received.length > 0, timeoutMs, "a frame");
    return this.received.shift()!;
  }

  /** The next whole message (commands are skipped, PINGs answered by nobody). */
  async nextMessage(timeoutMs = 5000): Promise<Buffer[]> {
    for (;;) {
      const r = await this.next(timeoutMs);
      if ("frames" in r) return r.frames;
    }
  }

  private async until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (this.closed) throw new Error(`the DEALER closed the connection while we waited for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Follows the NULL handshake as a ROUTER would; returns the DEALER's READY properties. */
  async handshakeNull(): Promise<Buffer> {
    await this.greeting();
    this.socket.write(greeting("NULL"));
    const ready = await this.next();
    if (!("command" in ready) || ready.command !== "READY") throw new Error(`expected READY, got ${JSON.stringify(ready)}`);
    this.socket.write(command("READY", properties({ "Socket-Type": "ROUTER" })));
    return ready.body;
  }

  /** Writes bytes in pieces of `piece` bytes, one per turn of the event loop (each its own segment). */
  async writeInPieces(data: Buffer, piece: number): Promise<void> {
    for (let i = 0; i < data.length; i += piece) {
      this.socket.write(data.subarray(i, i + piece));
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}

/** A TCP server on 127.0.0.1 handing each accepted connection to the test. */
export class ZmtpPeer {
  private readonly server: Server;
  readonly connections: PeerConnection[] = [];
  private waiters: Array<() => void> = [];

  constructor() {
    this.server = createServer((socket) => {
      this.connections.push(new PeerConnection(socket));
      for (const w of this.waiters.splice(0)) w();
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return (this.server.address() as { port: number }).port;
  }

  /** The n-th connection (0-based) once it was accepted. */
  async connection(n: number, timeoutMs = 5000): Promise<PeerConnection> {
    const deadline = Date.now() + timeoutMs;
    while (this.connections.length <= n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for connection ${n + 1} (have ${this.connections.length})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.connections[n]!;
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * The other side: a DEALER on raw TCP (NULL mechanism) that connects to a ROUTER and sends whole
 * messages, reading nothing back. Far lighter than a libzmq socket, for tests that need thousands
 * of peers at once; `send` takes a message's frames (e.g. from encodeContainerMessage).
 */
export class RawDealer {
  private constructor(readonly socket: Socket) {}

  /**
   * Resolves once the ROUTER's greeting arrived (the handshake is under way, so what is sent next
   * is read); rejects if the connection closes first, as when a busy listener's backlog dropped it.
   */
  static connect(port: number, timeoutMs = 10_000): Promise<RawDealer> {
    return new Promise((resolve, reject) => {
      let received = 0;
      const fail = (why: string) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(`raw DEALER to port ${port}: ${why}`));
      };
      const timer = setTimeout(() => fail(`no greeting within ${timeoutMs} ms`), timeoutMs);
      const socket = createConnection({ host: "127.0.0.1", port }, () => {
        const clientGreeting = greeting();
        clientGreeting[32] = 0; // as-server: no
        socket.write(Buffer.concat([clientGreeting, command("READY", properties({ "Socket-Type": "DEALER" }))]));
      });
      socket.on("error", (err) => fail(err.message));
      socket.on("close", () => fail("closed before the greeting"));
      socket.on("data", (data: Buffer) => {
        received += data.length;
        if (received < 64) return;
        clearTimeout(timer);
        socket.removeAllListeners("close").removeAllListeners("error").removeAllListeners("data");
        socket.on("error", () => undefined);
        socket.resume(); // what the ROUTER sends next (heartbeats) is not read
        resolve(new RawDealer(socket));
      });
    });
  }

  send(frames: Buffer[]): void {
    this.socket.write(message(frames));
  }

  close(): void {
    this.socket.destroy();
  }
}
