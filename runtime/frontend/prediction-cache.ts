/**
 * The prediction cache: successful model outputs kept per model version and exact input, bounded in
 * bytes (least recently used out first), and identical queries in flight sharing one model call.
 *
 * - Key: model name, version, input type and the input bytes. The map key carries the bytes
 *   themselves (as a latin1 string) for small inputs and a SHA-1 digest for larger ones; either way
 *   the entry keeps its own copy of the input and a lookup compares it with `Buffer.equals`, so two
 *   inputs that share a map key (a hash collision) never share an answer.
 * - Only `output` outcomes are stored: failures, timeouts, unavailable or shed answers never are.
 * - A hit answers from memory on the caller's own tick: no dispatcher, no timer; `lookup` answers
 *   it synchronously (the query path's fast path, query-processor.ts).
 * - In-flight sharing: the first caller of a key submits the model call under ITS deadline; later
 *   identical callers join that call and never submit one of their own. Each joiner races the shared
 *   call against its own deadline, so nobody waits past their deadline; a joiner whose deadline is
 *   later than the starter's gets the starter's timeout if the model could not answer by then (the
 *   price of never submitting a second call for the same input).
 * - Invalidation: `invalidate(model, version)` drops a version's entries and detaches its calls in
 *   flight (their answers are then not stored). `reconcile(state)` does that for every version that
 *   left the configuration or whose record changed (records are immutable in the daemon, so a changed
 *   record means deleted and registered again), and drops everything when snapshots were missed.
 *   `evictReplica(key)` drops the answers one replica produced (a replica banned for lying).
 */
import { hash as digest } from "node:crypto";
import { LRUCache } from "lru-cache";
import type { InputType } from "../shared/input-types.js";
import type { ClusterState } from "../shared/state.js";
import { modelKey } from "./dispatcher.js";
import type { CallOutcome, ModelRef } from "./model-caller.js";

/** Inputs up to this many bytes are their own map key; larger ones are keyed by a digest. */
const RAW_KEY_MAX_BYTES = 1024;
/** Rough per-entry cost beyond the bytes we count (entry object, LRU slots, string headers). */
export const ENTRY_OVERHEAD_BYTES = 160;

/** Map key of an input: the bytes themselves when small, else a digest of them. */
export function defaultInputHash(input: Buffer): string {
  return input.length <= RAW_KEY_MAX_BYTES ? `r${input.toString("latin1")}` : `h${digest("sha1", input, "base64")}`;
}

export interface CacheObserver {
  hit?(model: string): void;
  miss?(model: string): void;
  joined?(model: string): void;
  evicted?(model: string): void;
  invalidated?(model: string, entries: number): void;
}

export interface PredictionCacheOptions {
  /** Upper bound of the entries' estimated size in bytes; must be positive. */
  maxBytes: number;
  /** Map key of an input (tests inject a colliding one); equality is always checked on the bytes. */
  hash?: (input: Buffer) => string;
  now?: () => number;
  observer?: CacheObserver;
}

interface Entry {
  readonly model: string;
  readonly input: Buffer;
  readonly output: string;
  readonly size: number;
  /** The replica that produced the output. */
  readonly replica: string | undefined;
}

interface Pending {
  readonly input: Buffer;
  readonly promise: Promise<CallOutcome>;
}

/** Submits the model call for one input under the given deadline (ModelCaller's own call path). */
export type ModelCall = (deadline: number) => Promise<CallOutcome>;

export class PredictionCache {
  readonly maxBytes: number;
  private readonly lru: LRUCache<string, Entry>;
  private readonly pending = new Map<string, Pending>();
  /** Bumped by invalidation: a call started under an older generation does not store its answer. */
  private readonly generations = new Map<string, number>();
  private readonly hash: (input: Buffer) => string;
  private readonly now: () => number;
  private readonly observer: CacheObserver;
  /** Fingerprints of the version records in the last reconciled configuration. */
  private known = new Map<string, string>();
  private revision: number | undefined;

  constructor(options: PredictionCacheOptions) {
    if (!Number.isSafeInteger(options.maxBytes) || options.maxBytes <= 0) {
      throw new RangeError(`maxBytes must be a positive integer, not ${options.maxBytes}`);
    }
    this.maxBytes = options.maxBytes;
    this.hash = options.hash ?? defaultInputHash;
    this.now = options.now ?? (() => performance.now());
    this.observer = options.observer ?? {};
    this.lru = new LRUCache<string, Entry>({
      maxSize: options.maxBytes,
      sizeCalculation: (entry) => entry.size,
      dispose: (entry, _key, reason) => {
        if (reason === "evict") this.observer.evicted?.(entry.model);
      },
    });
  }

  /** Estimated bytes held by the entries (never above maxBytes). */
  get bytes(): number {
    return this.lru.calculatedSize;
  }

  get entries(): number {
    return this.lru.size;
  }

  /** Calls in flight that identical queries can join. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Answers from the cache, by joining an identical call in flight, or by starting `callModel`;
   * never rejects (when `callModel` does not) and settles by `deadline`.
   */
  call(model: ModelRef, inputType: InputType, input: Buffer, deadline: number, callModel: ModelCall): Promise<CallOutcome> {
    const label = modelKey(model.name, model.version);
    const key = this.keyOf(label, inputType, input);
    const hit = this.hit(key, label, input);
    if (hit) return Promise.resolve(hit);
    const shared = this.pending.get(key);
    if (shared && shared.input.equals(input)) {
      this.observer.joined?.(label);
      return this.join(shared.promise, deadline);
    }
    this.observer.miss?.(label);
    // A call whose key is taken by a different input in flight (a collision) runs unshared.
    return this.start(key, label, input, callModel(deadline), shared === undefined);
  }

  /**
   * A stored answer, counted as a hit, or undefined (nothing is counted then: `call` will count
   * the miss or the join). The synchronous half of `call`, for the query path's fast path.
   */
  lookup(model: ModelRef, inputType: InputType, input: Buffer): CallOutcome | undefined {
    const label = modelKey(model.name, model.version);
    return this.hit(this.keyOf(label, inputType, input), label, input);
  }

  /** Drops a model version's entries and detaches its calls in flight; returns how many entries went. */
  invalidate(name: string, version: string): number {
    return this.invalidateLabel(modelKey(name, version));
  }

  /**
   * Brings the cache in line with a configuration snapshot: a version that is gone, or whose record
   * changed (deleted and registered again), loses its entries. A revision gap means snapshots were
   * missed (a delete and re-register could hide in them), so then everything goes.
   */
  reconcile(state: ClusterState): void {
    const next = new Map<string, string>();
    for (const model of Object.values(state.models)) {
      for (const record of Object.values(model.versions)) {
        next.set(modelKey(record.model_name, record.model_version), JSON.stringify(record));
      }
    }
    const missed = this.revision !== undefined && state.revision !== this.revision && state.revision !== this.revision + 1;
    if (missed) {
      this.clear();
    } else {
      for (const [label, fingerprint] of this.known) {
        if (next.get(label) !== fingerprint) this.invalidateLabel(label);
      }
    }
    this.known = next;
    this.revision = state.revision;
  }

  /** Drops the entries a replica produced; returns how many went. */
  evictReplica(replica: string): number {
    const doomed = new Map<string, string>();
    for (const [key, entry] of this.lru.entries()) if (entry.replica === replica) doomed.set(key, entry.model);
    const counts = new Map<string, number>();
    for (const [key, label] of doomed) {
      this.lru.delete(key);
      counts.set(label, (counts.get(label) ?? 0) + 1);
    }
    for (const [label, n] of counts) this.observer.invalidated?.(label, n);
    return doomed.size;
  }

  /** Drops every entry and detaches every call in flight. */
  clear(): void {
    const counts = new Map<string, number>();
    for (const entry of this.lru.values()) counts.set(entry.model, (counts.get(entry.model) ?? 0) + 1);
    const labels = new Set([...counts.keys(), ...[...this.pending.keys()].map(labelOf)]);
    for (const label of labels) this.generations.set(label, (this.generations.get(label) ?? 0) + 1);
    this.pending.clear();
    this.lru.clear();
    for (const [label, n] of counts) this.observer.invalidated?.(label, n);
  }

  private invalidateLabel(label: string): number {
    this.generations.set(label, (this.generations.get(label) ?? 0) + 1);
    const prefix = `${label}\0`;
    for (const key of [...this.pending.keys()]) if (key.startsWith(prefix)) this.pending.delete(key);
    const doomed: string[] = [];
    for (const key of this.lru.keys()) if (key.startsWith(prefix)) doomed.push(key);
    for (const key of doomed) this.lru.delete(key);
    if (doomed.length > 0) this.observer.invalidated?.(label, doomed.length);
    return doomed.length;
  }

  private keyOf(label: string, inputType: InputType, input: Buffer): string {
    return `${label}\0${inputType}\0${this.hash(input)}`;
  }

  private hit(key: string, label: string, input: Buffer): CallOutcome | undefined {
    const entry = this.lru.get(key);
    if (!entry || !entry.input.equals(input)) return undefined;
    this.observer.hit?.(label);
    return { kind: "output", output: entry.output, cached: true };
  }

  private start(key: string, label: string, input: Buffer, call: Promise<CallOutcome>, share: boolean): Promise<CallOutcome> {
    const generation = this.generations.get(label) ?? 0;
    let pending: Pending | undefined;
    const done = call
      .then((outcome) => {
        if (outcome.kind === "output" && (this.generations.get(label) ?? 0) === generation) {
          this.store(key, label, input, outcome.output, outcome.replica);
        }
        return outcome;
      })
      .finally(() => {
        if (pending && this.pending.get(key) === pending) this.pending.delete(key);
      });
    if (share) {
      pending = { input, promise: done };
      this.pending.set(key, pending);
    }
    return done;
  }

  private store(key: string, label: string, input: Buffer, output: string, replica: string | undefined): void {
    // An own copy: the caller's buffer may be a view into a larger pooled allocation.
    const copy = Buffer.allocUnsafeSlow(input.length);
    input.copy(copy);
    const size = key.length * 2 + copy.length + output.length * 2 + ENTRY_OVERHEAD_BYTES;
    // An entry larger than the whole cache is not stored (lru-cache refuses it too).
    if (size > this.maxBytes) return;
    this.lru.set(key, { model: label, input: copy, output, size, replica });
  }

  /** A joiner's view of a shared call: its outcome, or a timeout at the joiner's own deadline. */
  private join(shared: Promise<CallOutcome>, deadline: number): Promise<CallOutcome> {
    return new Promise<CallOutcome>((resolve) => {
      const timer = setTimeout(() => resolve({ kind: "timeout" }), Math.max(0, deadline - this.now()));
      void shared.then((outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      });
    });
  }
}

function labelOf(key: string): string {
  return key.slice(0, key.indexOf("\0"));
}
