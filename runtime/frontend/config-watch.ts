/**
 * Keeps the frontend's copy of the cluster configuration current by following the management
 * daemon's watch stream (management/watch.ts): a snapshot first, then one delta per committed change.
 * A delta is handed on only when its base is the revision held; otherwise (a line lost, a daemon
 * that restarted) the watcher reconnects, and the new connection starts with a snapshot. A line
 * that cannot be read or applied does the same. While the daemon is down the last known state stays
 * in force and the watcher reconnects with capped backoff.
 *
 * The stream is read with node:http, not fetch: every admin write brings a line to every worker,
 * and fetch's WHATWG streams cost several times the CPU per chunk.
 */
import { get as httpGet, type IncomingMessage } from "node:http";
import { get as httpsGet } from "node:https";
import type { Logger } from "pino";
import { AppliedRevisionSchema, ClusterStateSchema, WATCH_PATH, type AppliedRevision, type ClusterState } from "../shared/state.js";
import { parseStateDelta, StateDeltaError, type StateDelta } from "../shared/state-delta.js";

export type ConfigLineKind = "snapshot" | "delta";

export interface ConfigWatcherOptions {
  managementUrl: string;
  token?: string;
  log: Logger;
  /** A whole state: it replaces the frontend's copy. */
  onSnapshot(state: ClusterState): void;
  /** Changes whose base is the revision of the last snapshot or delta handed on. */
  onDelta(delta: StateDelta): void;
  /** After a snapshot or delta was applied (and after its callback): the frontend reports it to the daemon. */
  onApplied?(applied: AppliedRevision): void;
  /** The CPU time (user + system, seconds) of reading and applying one line, for the apply-cost histogram. */
  observeApply?(kind: ConfigLineKind, cpuSeconds: number, revision: number): void;
  /** No line (snapshot or keepalive) for this long means the connection is dead. */
  staleAfterMs?: number;
}

const MIN_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 5000;

export class ConfigWatcher {
  private abort?: AbortController;
  private stopped = false;
  private backoff = MIN_BACKOFF_MS;
  private revision = -1;
  connected = false;
  /** The last snapshot applied, as the daemon that sent it numbered it. */
  applied: AppliedRevision | undefined;

  constructor(private readonly options: ConfigWatcherOptions) {}

  start(): void {
    void this.loop();
  }

  close(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.follow();
      } catch (err) {
        if (this.stopped) return;
        const reason = err instanceof Error ? err.message : String(err);
        this.options.log.warn({ reason, retryInMs: this.backoff }, "management watch lost; serving on last known state");
      }
      this.connected = false;
      if (this.stopped) return;
      await new Promise((r) => setTimeout(r, this.backoff));
      this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff * 2);
    }
  }

  private async follow(): Promise<void> {
    const abort = new AbortController();
    this.abort = abort;
    const staleAfter = this.options.staleAfterMs ?? 35_000;
    let watchdog = setTimeout(() => abort.abort(new Error("watch stream went silent")), staleAfter);
    // The first snapshot of every connection is applied, whatever its revision: a daemon that
    // restored an older generation (store.ts) numbers its next states again.
    this.revision = -1;
    try {
      const headers: Record<string, string> = this.options.token ? { authorization: `Bearer ${this.options.token}` } : {};
      const res = await openStream(new URL(WATCH_PATH, this.options.managementUrl), headers, abort.signal);
      if (res.statusCode !== 200) {
        res.destroy();
        throw new Error(`watch answered ${res.statusCode}`);
      }
      this.connected = true;
      this.backoff = MIN_BACKOFF_MS;
      res.setEncoding("utf8"); // decodes characters split across chunks whole
      let pending = "";
      for await (const chunk of res as AsyncIterable<string>) {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => abort.abort(new Error("watch stream went silent")), staleAfter);
        pending += chunk;
        let newline: number;
        while ((newline = pending.indexOf("\n")) >= 0) {
          this.handleLine(pending.slice(0, newline));
          pending = pending.slice(newline + 1);
        }
      }
      throw new Error("watch stream ended");
    } catch (err) {
      // Say why it was cut off (the watchdog's reason), not only that it was.
      throw abort.signal.aborted && abort.signal.reason instanceof Error ? abort.signal.reason : err;
    } finally {
      clearTimeout(watchdog);
    }
  }

  /** Throws (and so reconnects for a snapshot) on a line it cannot read or apply. */
  private handleLine(line: string): void {
    if (line.trim() === "") return;
    const started = process.cpuUsage();
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== "object" || parsed === null) throw new StateDeltaError("watch line is not an object");
    let kind: ConfigLineKind;
    let revision: number;
    if ("state" in parsed) {
      const state = ClusterStateSchema.parse(parsed.state);
      if (state.revision === this.revision) return;
      this.options.onSnapshot(state);
      kind = "snapshot";
      revision = state.revision;
    } else if ("changes" in parsed) {
      const delta = parseStateDelta(parsed);
      if (delta.base !== this.revision) {
        throw new StateDeltaError(`a change from revision ${delta.base} arrived while revision ${this.revision} is held; reconnecting for a snapshot`);
      }
      this.options.onDelta(delta);
      kind = "delta";
      revision = delta.revision;
    } else {
      return; // keepalive
    }
    // Recorded only once applied: a line that could not be applied is not skipped later as seen.
    this.revision = revision;
    const cpu = process.cpuUsage(started);
    this.options.observeApply?.(kind, (cpu.user + cpu.system) / 1e6, revision);
    // A daemon before the instance id existed sends none: its revisions cannot be reported.
    const daemon = AppliedRevisionSchema.shape.daemon.safeParse((parsed as { daemon?: unknown }).daemon);
    if (daemon.success) {
      this.applied = { daemon: daemon.data, revision };
      this.options.onApplied?.(this.applied);
    }
  }
}

/** The watch stream's response (its body not yet read); aborting `signal` ends it. */
function openStream(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const get = url.protocol === "https:" ? httpsGet : httpGet;
    get(url, { headers, signal }, resolve).on("error", reject);
  });
}
