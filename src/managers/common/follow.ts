/** The loop behind every manager's `logs --follow`: one tick per interval until the caller aborts. */
import { StringDecoder } from "node:string_decoder";
import type { LogStreamOptions } from "../container-manager.js";

/** Resolves after `ms`, or at once when `signal` aborts. */
export function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Runs `tick` every `intervalMs` until `signal` aborts (never, without one: callers always pass one to follow). */
export async function everyUntilAborted(signal: AbortSignal | undefined, intervalMs: number, tick: () => Promise<void> | void): Promise<void> {
  while (!signal?.aborted) {
    await tick();
    await pause(intervalMs, signal);
  }
}

/** A log that arrives as one stream: a container's or a pod's. */
export interface StreamedLog {
  /** Stays the same across restarts of the same container or pod. */
  key: string;
  component: string;
}

/** Where one stream starts. */
export interface StreamStart {
  /** The last lines to show first (absent: every line since `since`). */
  tail?: number;
  since?: Date;
  follow: boolean;
  signal?: AbortSignal;
}

/**
 * `streamLogs` over logs that arrive one stream per container or pod. Without `follow`, each
 * stream's existing lines. With it, each stream until `signal` aborts; a stream that ends (its
 * container stopped) is opened again from where it ended once its source is listed again (it
 * restarted), and a source that appears later (a new replica) from when following began.
 */
export async function streamEach<S extends StreamedLog>(
  first: readonly S[],
  list: () => Promise<S[]>,
  options: LogStreamOptions,
  open: (source: S, start: StreamStart) => Promise<void>,
  relistMs = 1000,
): Promise<void> {
  const { tail, since, signal } = options;
  if (!options.follow) {
    await Promise.all(first.map((s) => open(s, { tail, since, follow: false })));
    return;
  }
  const began = new Date();
  const active = new Map<string, Promise<void>>();
  const endedAt = new Map<string, Date>();
  const start = (source: S, from: { tail?: number; since?: Date }) => {
    active.set(source.key, open(source, { ...from, follow: true, signal })
      // A stream that fails (its container removed meanwhile) ends like one that stopped.
      .catch(() => undefined)
      .finally(() => {
        active.delete(source.key);
        // A line in the same millisecond as the end came before the stop: a container that
        // writes again has restarted first, which takes far longer than a millisecond.
        endedAt.set(source.key, new Date(Date.now() + 1));
      }));
  };
  for (const source of first) start(source, { tail, since });
  await everyUntilAborted(signal, relistMs, async () => {
    // A failed listing (the engine or API server busy) only delays new streams.
    for (const source of await list().catch(() => [])) {
      if (!active.has(source.key) && !signal?.aborted) start(source, { since: endedAt.get(source.key) ?? began });
    }
  });
  await Promise.all(active.values());
}

/** Complete lines out of text that arrives in arbitrary chunks (a character split across two stays whole). */
export class TextLines {
  private partial = "";
  private decoder = new StringDecoder("utf8");

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer): void {
    const lines = (this.partial + this.decoder.write(chunk)).split("\n");
    this.partial = lines.pop()!;
    for (const line of lines) this.onLine(line.replace(/\r$/, ""));
  }

  /** The unterminated last line, if any. */
  end(): void {
    const rest = this.partial + this.decoder.end();
    this.partial = "";
    this.decoder = new StringDecoder("utf8");
    if (rest !== "") this.onLine(rest.replace(/\r$/, ""));
  }
}
