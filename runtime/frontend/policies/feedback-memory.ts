/**
 * What the learning policies answered, kept for a bounded time so that `/update` feedback can be
 * scored against the outputs the application actually saw (Exp3's reward belongs to the arm it
 * played, with the probability it was played with). Keyed by application, uid and the exact input
 * bytes (hashed for lookup, compared on hit). Bounded in entries, bytes and age; a feedback
 * consumes its entry.
 */
import { createHash } from "node:crypto";

export interface Remembered {
  policy: string;
  /** Each asked model's output value; absent for a model that did not answer. */
  values: Record<string, unknown>;
  /** Exp3: the model played and the probability and arm count it was played with. */
  chosen?: string;
  probability?: number;
  arms?: number;
}

interface Entry extends Remembered {
  input: Buffer;
  at: number;
}

export interface FeedbackMemoryOptions {
  maxEntries?: number;
  maxBytes?: number;
  ttlMs?: number;
  now?: () => number;
}

export const DEFAULT_MEMORY_TTL_MS = 10 * 60_000;

export class FeedbackMemory {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(options: FeedbackMemoryOptions = {}) {
    this.maxEntries = options.maxEntries ?? 10_000;
    this.maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    this.ttlMs = options.ttlMs ?? DEFAULT_MEMORY_TTL_MS;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  remember(app: string, uid: string | undefined, input: Buffer, what: Remembered): void {
    const key = keyOf(app, uid, input);
    this.delete(key);
    if (input.length > this.maxBytes) return;
    this.entries.set(key, { ...what, input: Buffer.from(input), at: this.now() });
    this.bytes += input.length;
    // Oldest first: Map iteration follows insertion order.
    for (const [oldest] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break;
      this.delete(oldest);
    }
  }

  /** The remembered answer for this input (removing it), if it is still fresh. */
  take(app: string, uid: string | undefined, input: Buffer): Remembered | undefined {
    const key = keyOf(app, uid, input);
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.delete(key);
    if (!entry.input.equals(input) || this.now() - entry.at > this.ttlMs) return undefined;
    const { input: _input, at: _at, ...remembered } = entry;
    return remembered;
  }

  private delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.bytes -= entry.input.length;
    this.entries.delete(key);
  }
}

function keyOf(app: string, uid: string | undefined, input: Buffer): string {
  return `${app}\u0000${uid ?? ""}\u0000${createHash("sha256").update(input).digest("base64")}`;
}
