/**
 * The watch stream query frontends follow (our extension of Clipper's admin API): one NDJSON line
 * `{"revision":n,"daemon":id,"state":{...}}` with the full state when a client connects, then one
 * delta line `{"revision":n,"base":n-1,"daemon":id,"changes":[...]}` per committed change
 * (shared/state-delta.ts), and a `{}` keepalive line at a fixed interval so a client can tell a dead
 * connection from a quiet cluster. Deltas make a change cost what it changes, not the size of the
 * state (10,000 applications are megabytes); a client reconnects for a snapshot whenever a delta's
 * base is not the revision it holds.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ClusterState } from "../shared/state.js";
import type { StateDelta } from "../shared/state-delta.js";

export const WATCH_CONTENT_TYPE = "application/x-ndjson";
const KEEPALIVE_LINE = "{}\n";

export class WatchHub {
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly keepaliveMs: number,
    /** A client that lets this much output pile up unread is cut off rather than buffered without end. */
    private readonly maxBufferedBytes = 8 * 1024 * 1024,
    /**
     * This daemon instance, on every snapshot: frontends report it with the revision they applied,
     * since a restarted daemon may number its states again from an older generation.
     */
    readonly daemon: string = randomUUID(),
  ) {}

  get size(): number {
    return this.clients.size;
  }

  /** Starts a stream on `res` with the current state; it ends when the client goes away or close() runs. */
  subscribe(req: IncomingMessage, res: ServerResponse, current: ClusterState): void {
    // A watch may stay open for days: no idle timeout on its socket, and lines go out at once.
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);
    res.writeHead(200, {
      "content-type": WATCH_CONTENT_TYPE,
      "cache-control": "no-store",
    });
    this.clients.add(res);
    res.on("close", () => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stopKeepalive();
    });
    this.send(res, snapshotLine(current, this.daemon));
    this.startKeepalive();
  }

  /**
   * Sends what a commit changed to every client. A client subscribed with the state before it
   * (commits are announced in order, subscribe() reads the current state) holds `delta.base`.
   */
  publish(delta: StateDelta): void {
    if (this.clients.size === 0) return;
    const line = deltaLine(delta, this.daemon);
    for (const res of this.clients) this.send(res, line);
  }

  /** Ends every stream (the daemon is shutting down). */
  close(): void {
    this.stopKeepalive();
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  private send(res: ServerResponse, line: string): void {
    if (res.destroyed || res.writableEnded) return;
    if (res.writableLength > this.maxBufferedBytes) {
      res.destroy();
      return;
    }
    res.write(line);
  }

  private startKeepalive(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      for (const res of this.clients) this.send(res, KEEPALIVE_LINE);
    }, this.keepaliveMs);
    this.timer.unref();
  }

  private stopKeepalive(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

export function snapshotLine(state: ClusterState, daemon: string): string {
  return JSON.stringify({ revision: state.revision, daemon, state }) + "\n";
}

export function deltaLine(delta: StateDelta, daemon: string): string {
  return JSON.stringify({ revision: delta.revision, base: delta.base, daemon, changes: delta.changes }) + "\n";
}
