/**
 * The prediction cache: successful model outputs kept per model version and exact input, bounded in
 * bytes (least recently used out first), and identical queries in flight sharing one model call.
 *
 * - Key: model name, version, input type and the input bytes. The map key is a number, a 53-bit
 *   hash of the input's bytes (of their SHA-1 digest for large inputs) seeded by the model version
 *   and input type: a lookup builds and hashes no string (a key string holding the input's bytes
 *   cost a cache hit ~0.2 µs). The entry keeps its version, input type and own copy of the input,
 *   and a lookup compares them (`Buffer.equals`), so two queries that share a map key (a hash
 *   collision, about 2^-53 per pair) never share an answer; the later one takes the slot.
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
import type { ClusterState, ModelRecord } from "../shared/state.js";
import { own } from "../shared/dict.js";
import { modelKey } from "./dispatcher.js";
import type { CallOutcome, ModelRef } from "./model-caller.js";

/** Inputs up to this many bytes are hashed as they are; larger ones through their SHA-1 digest (native, faster). */
const DIRECT_HASH_MAX_BYTES = 1024;
/** Rough per-entry cost beyond the bytes we count (entry object, LRU slots, key). */
export const ENTRY_OVERHEAD_BYTES = 168;
/** Seeds are counted up: past this many (model version, input type) pairs, everything starts over. */
const MAX_SEEDS = 1 << 20;

/**
 * A 53-bit hash (a safe integer) of `seed` and the input's bytes: two 32-bit multiply-xorshift
 * lanes over 4-byte words, 21 bits of one and 32 of the other. Not cryptographic: who can choose
 * inputs can make them collide, which costs them cache slots, never a wrong answer.
 */
export function defaultInputHash(seed: number, input: Buffer): number {
  const bytes = input.length <= DIRECT_HASH_MAX_BYTES ? input : digest("sha1", input, "buffer");
  let a = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ bytes.length;
  let b = Math.imul(seed ^ 0x7f4a7c15, 0xc2b2ae35) ^ bytes.length;
  const words = bytes.length & ~3;
  for (let i = 0; i < words; i += 4) {
    // Indexed bytes, not readInt32LE: a third of the time (no bounds checks per call).
    const w = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    a = Math.imul(a ^ w, 0x5bd1e995);
    a ^= a >>> 15;
    b = Math.imul(b ^ w, 0x27d4eb2f);
    b ^= b >>> 13;
  }
  for (let i = words; i < bytes.length; i++) {
    a = Math.imul(a ^ bytes[i]!, 0x5bd1e995);
    b = Math.imul(b ^ bytes[i]!, 0x27d4eb2f);
  }
  a = Math.imul(a ^ (a >>> 16), 0x85ebca6b);
  a ^= a >>> 13;
  b = Math.imul(b ^ (b >>> 16), 0xc2b2ae35);
  b ^= b >>> 16;
  return (a >>> 11) * 0x1_0000_0000 + (b >>> 0);
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
  /** Map key of a (model version, input type) seed and an input (tests inject a colliding one); equality is always checked. */
  hash?: (seed: number, input: Buffer) => number;
  now?: () => number;
  observer?: CacheObserver;
  /** Hash seeds handed out before the cache starts over (default 2^20; tests make it small). */
  maxSeeds?: number;
}

interface Entry {
  readonly model: string;
  readonly inputType: InputType;
  readonly input: Buffer;
  readonly output: string;
  readonly size: number;
  /** The replica that produced the output. */
  readonly replica: string | undefined;
}

interface Pending {
  readonly model: string;
  readonly inputType: InputType;
  readonly input: Buffer;
  readonly promise: Promise<CallOutcome>;
}

/** Submits the model call for one input under the given deadline (ModelCaller's own call path). */
export type ModelCall = (deadline: number) => Promise<CallOutcome>;

export class PredictionCache {
  readonly maxBytes: number;
  private readonly lru: LRUCache<number, Entry>;
  private readonly pending = new Map<number, Pending>();
  /**
   * Per model name, per version: its label (`modelKey`, one string object, so the observers' maps
   * hash it once) and a hash seed per input type. Found by the names the query carries, which
   * hash at once: no string is built per lookup.
   */
  private readonly versions = new Map<string, Map<string, VersionSlot>>();
  private nextSeed = 0;
  private readonly maxSeeds: number;
  /** Bumped by invalidation: a call started under an older generation does not store its answer. */
  private readonly generations = new Map<string, number>();
  private readonly hash: (seed: number, input: Buffer) => number;
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
    this.maxSeeds = options.maxSeeds ?? MAX_SEEDS;
    if (!Number.isSafeInteger(this.maxSeeds) || this.maxSeeds < 1) throw new RangeError(`maxSeeds must be a positive integer, not ${this.maxSeeds}`);
    this.now = options.now ?? (() => performance.now());
    this.observer = options.observer ?? {};
    this.lru = new LRUCache<number, Entry>({
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
    const { label, key } = this.keyOf(model, inputType, input);
    const hit = this.hit(key, label, inputType, input);
    if (hit) return Promise.resolve(hit);
    const shared = this.pending.get(key);
    if (shared && sameQuery(shared, label, inputType, input)) {
      this.observer.joined?.(label);
      return this.join(shared.promise, deadline);
    }
    this.observer.miss?.(label);
    // A call whose key is taken by a different input in flight (a collision) runs unshared.
    return this.start(key, label, inputType, input, callModel(deadline), shared === undefined);
  }

  /**
   * A stored answer, counted as a hit, or undefined (nothing is counted then: `call` will count
   * the miss or the join). The synchronous half of `call`, for the query path's fast path.
   */
  lookup(model: ModelRef, inputType: InputType, input: Buffer): CallOutcome | undefined {
    const { label, key } = this.keyOf(model, inputType, input);
    return this.hit(key, label, inputType, input);
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
    // Versions no longer configured need no slot (and a deleted one's label may come back).
    for (const [name, versions] of this.versions) {
      for (const version of versions.keys()) if (!next.has(modelKey(name, version))) versions.delete(version);
      if (versions.size === 0) this.versions.delete(name);
    }
  }

  /**
   * Brings the cache in line with one change of the configuration (a watch-stream delta), comparing
   * only the versions of the models it changed, given with their records before it. A revision that
   * does not follow the one reconciled last falls back to the whole `reconcile`.
   */
  reconcileModels(state: ClusterState, changed: ReadonlyMap<string, ModelRecord | undefined>): void {
    if (this.revision === undefined || state.revision !== this.revision + 1) {
      this.reconcile(state);
      return;
    }
    for (const [name, before] of changed) {
      const after = own(state.models, name);
      const next = new Map<string, string>();
      for (const record of Object.values(after?.versions ?? {})) next.set(modelKey(record.model_name, record.model_version), JSON.stringify(record));
      for (const record of Object.values(before?.versions ?? {})) {
        const label = modelKey(record.model_name, record.model_version);
        const fingerprint = this.known.get(label);
        if (fingerprint !== undefined && next.get(label) !== fingerprint) this.invalidateLabel(label);
        if (next.has(label)) continue;
        this.known.delete(label);
        // No slot for a version no longer configured (and a deleted one's label may come back).
        const versions = this.versions.get(record.model_name);
        versions?.delete(record.model_version);
        if (versions?.size === 0) this.versions.delete(record.model_name);
      }
      for (const [label, fingerprint] of next) this.known.set(label, fingerprint);
    }
    this.revision = state.revision;
  }

  /** Drops the entries a replica produced; returns how many went. */
  evictReplica(replica: string): number {
    const doomed = new Map<number, string>();
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
    const labels = new Set([...counts.keys(), ...[...this.pending.values()].map((p) => p.model)]);
    for (const label of labels) this.generations.set(label, (this.generations.get(label) ?? 0) + 1);
    this.pending.clear();
    this.lru.clear();
    for (const [label, n] of counts) this.observer.invalidated?.(label, n);
  }

  private invalidateLabel(label: string): number {
    this.generations.set(label, (this.generations.get(label) ?? 0) + 1);
    for (const [key, pending] of [...this.pending]) if (pending.model === label) this.pending.delete(key);
    const doomed: number[] = [];
    for (const [key, entry] of this.lru.entries()) if (entry.model === label) doomed.push(key);
    for (const key of doomed) this.lru.delete(key);
    if (doomed.length > 0) this.observer.invalidated?.(label, doomed.length);
    return doomed.length;
  }

  private keyOf(model: ModelRef, inputType: InputType, input: Buffer): { label: string; key: number } {
    let versions = this.versions.get(model.name);
    if (!versions) this.versions.set(model.name, (versions = new Map()));
    let slot = versions.get(model.version);
    if (!slot) versions.set(model.version, (slot = { label: modelKey(model.name, model.version), seeds: {} }));
    let seed = slot.seeds[inputType];
    if (seed === undefined) {
      if (this.nextSeed >= this.maxSeeds) this.reseed();
      seed = slot.seeds[inputType] = this.nextSeed++;
    }
    return { label: slot.label, key: this.hash(seed, input) };
  }

  /** Seeds ran out (after a million version and input type pairs): drop everything and count again. */
  private reseed(): void {
    this.clear();
    for (const versions of this.versions.values()) for (const slot of versions.values()) slot.seeds = {};
    this.nextSeed = 0;
  }

  private hit(key: number, label: string, inputType: InputType, input: Buffer): CallOutcome | undefined {
    const entry = this.lru.get(key);
    if (!entry || !sameQuery(entry, label, inputType, input)) return undefined;
    this.observer.hit?.(label);
    return { kind: "output", output: entry.output, cached: true };
  }

  private start(key: number, label: string, inputType: InputType, input: Buffer, call: Promise<CallOutcome>, share: boolean): Promise<CallOutcome> {
    const generation = this.generations.get(label) ?? 0;
    let pending: Pending | undefined;
    const done = call
      .then((outcome) => {
        if (outcome.kind === "output" && (this.generations.get(label) ?? 0) === generation) {
          this.store(key, label, inputType, input, outcome.output, outcome.replica);
        }
        return outcome;
      })
      .finally(() => {
        if (pending && this.pending.get(key) === pending) this.pending.delete(key);
      });
    if (share) {
      pending = { model: label, inputType, input, promise: done };
      this.pending.set(key, pending);
    }
    return done;
  }

  private store(key: number, label: string, inputType: InputType, input: Buffer, output: string, replica: string | undefined): void {
    // An own copy: the caller's buffer may be a view into a larger pooled allocation.
    const copy = Buffer.allocUnsafeSlow(input.length);
    input.copy(copy);
    const size = copy.length + output.length * 2 + ENTRY_OVERHEAD_BYTES;
    // An entry larger than the whole cache is not stored (lru-cache refuses it too).
    if (size > this.maxBytes) return;
    this.lru.set(key, { model: label, inputType, input: copy, output, size, replica });
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

interface VersionSlot {
  readonly label: string;
  seeds: Partial<Record<InputType, number>>;
}

/** Whether a stored or in-flight query is for this model version, input type and input. */
function sameQuery(held: { model: string; inputType: InputType; input: Buffer }, label: string, inputType: InputType, input: Buffer): boolean {
  return held.model === label && held.inputType === inputType && held.input.equals(input);
}
