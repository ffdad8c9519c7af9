/**
 * What one committed write changed in the cluster state: entries of the name-keyed fields set or
 * removed, and whole fields (api_keys) replaced. The management daemon's watch stream sends these
 * after a client's first snapshot, so a change costs what it changes rather than the size of the
 * state; a frontend applies them to its own copy in place.
 *
 * On the wire (one NDJSON line of /admin/watch):
 *   {"revision":12,"base":11,"daemon":"…","changes":[{"field":"applications","key":"a","value":{…}},
 *                                                   {"field":"models","key":"m"}]}
 * A change without `value` removes the entry (or the whole field). `base` is the revision the
 * changes apply to: a client whose copy is at another revision must not apply them and reconnects
 * for a snapshot instead.
 */
import { z } from "zod";
import { dict, hasOwn } from "./dict.js";
import { ApiKeysSchema } from "./api-keys.js";
import { STATE_ENTRY_SCHEMAS, type ClusterState } from "./state.js";

export type KeyedField = keyof typeof STATE_ENTRY_SCHEMAS;
export const KEYED_FIELDS = Object.keys(STATE_ENTRY_SCHEMAS) as KeyedField[];
/** Fields that travel whole: small, and not keyed by names. */
export const WHOLE_FIELDS = ["api_keys"] as const;
export type WholeField = (typeof WHOLE_FIELDS)[number];

type EntryOf<F extends KeyedField> = z.output<(typeof STATE_ENTRY_SCHEMAS)[F]>;

/** One entry of a keyed field set (value present) or removed (value absent). */
export type EntryChange = { [F in KeyedField]: { field: F; key: string; value?: EntryOf<F> } }[KeyedField];
/** A whole field replaced (value present) or removed (value absent). */
export type WholeChange = { field: "api_keys"; value?: z.output<typeof ApiKeysSchema> };
export type StateChange = EntryChange | WholeChange;

export interface StateDelta {
  /** The revision the state has once the changes are applied. */
  revision: number;
  /** The revision the changes apply to. */
  base: number;
  changes: StateChange[];
}

const WireChangeSchema = z.object({
  field: z.string(),
  key: z.string().optional(),
  value: z.unknown().optional(),
});

export const StateDeltaWireSchema = z.object({
  revision: z.number().int().nonnegative(),
  base: z.number().int().nonnegative(),
  changes: z.array(WireChangeSchema),
});

/** Thrown for a delta line that is not what the daemon sends; the client reconnects for a snapshot. */
export class StateDeltaError extends Error {
  override name = "StateDeltaError";
}

function isKeyedField(field: string): field is KeyedField {
  return hasOwn(STATE_ENTRY_SCHEMAS, field);
}

/** A delta from its wire form, every value checked against its entry's schema (records come back null-prototype). */
export function parseStateDelta(json: unknown): StateDelta {
  const wire = StateDeltaWireSchema.safeParse(json);
  if (!wire.success) throw new StateDeltaError(`malformed state delta: ${wire.error.issues[0]?.message ?? "invalid"}`);
  if (wire.data.revision <= wire.data.base) {
    throw new StateDeltaError(`state delta to revision ${wire.data.revision} from later base ${wire.data.base}`);
  }
  const changes: StateChange[] = [];
  for (const [i, change] of wire.data.changes.entries()) {
    const where = `change ${i} (${change.field}${change.key === undefined ? "" : ` '${change.key}'`})`;
    if (isKeyedField(change.field)) {
      if (change.key === undefined) throw new StateDeltaError(`${where}: a keyed field's change needs a key`);
      if (change.value === undefined) {
        changes.push({ field: change.field, key: change.key } as EntryChange);
        continue;
      }
      const parsed = STATE_ENTRY_SCHEMAS[change.field].safeParse(change.value);
      if (!parsed.success) throw new StateDeltaError(`${where}: ${parsed.error.issues[0]?.message ?? "invalid"}`);
      changes.push({ field: change.field, key: change.key, value: parsed.data } as EntryChange);
    } else if (change.field === "api_keys") {
      if (change.key !== undefined) throw new StateDeltaError(`${where}: a whole field's change has no key`);
      if (change.value === undefined) {
        changes.push({ field: "api_keys" });
        continue;
      }
      const parsed = ApiKeysSchema.safeParse(change.value);
      if (!parsed.success) throw new StateDeltaError(`${where}: ${parsed.error.issues[0]?.message ?? "invalid"}`);
      changes.push({ field: "api_keys", value: parsed.data });
    } else {
      throw new StateDeltaError(`${where}: unknown field`);
    }
  }
  return { revision: wire.data.revision, base: wire.data.base, changes };
}

/** Told of every application a delta sets or removes, with the models it linked before and links after. */
export interface LinkTracker {
  relink(app: string, before: readonly string[], after: readonly string[]): void;
}

/**
 * Applies a delta to `state` in place (the caller's own, unfrozen copy), keeps `links` in step,
 * and sets the revision. Costs what the delta changes: nothing else in the state is copied or
 * visited. Answers a function that takes the delta back (the daemon's store applies a batch to
 * check it, and takes it back until it is durable).
 */
export function applyStateDelta(state: ClusterState, delta: StateDelta, links?: LinkTracker): () => void {
  if (state.revision !== delta.base) {
    throw new StateDeltaError(`state delta from revision ${delta.base} cannot apply to revision ${state.revision}`);
  }
  const fields = state as unknown as Record<string, Record<string, unknown> | undefined>;
  const undos: Array<() => void> = [];
  for (const change of delta.changes) {
    if (change.field === "api_keys") {
      const old = state.api_keys;
      if (change.value === undefined) delete state.api_keys;
      else state.api_keys = change.value;
      undos.push(() => {
        if (old === undefined) delete state.api_keys;
        else state.api_keys = old;
      });
      continue;
    }
    let entries = fields[change.field];
    const created = entries === undefined;
    if (entries === undefined) {
      if (change.value === undefined) continue;
      fields[change.field] = entries = dict();
    }
    const had = hasOwn(entries, change.key);
    const old = entries[change.key];
    const linksOf = (record: unknown) => (record as { linked_models?: string[] } | undefined)?.linked_models ?? [];
    if (change.field === "applications") links?.relink(change.key, linksOf(old), linksOf(change.value));
    if (change.value === undefined) delete entries[change.key];
    else entries[change.key] = change.value;
    const target = entries;
    undos.push(() => {
      if (change.field === "applications") links?.relink(change.key, linksOf(change.value), linksOf(old));
      if (created) delete fields[change.field];
      else if (had) target[change.key] = old;
      else delete target[change.key];
    });
  }
  const revision = state.revision;
  state.revision = delta.revision;
  return () => {
    for (const undo of undos.reverse()) undo();
    state.revision = revision;
  };
}

/**
 * The changes that turn `prev` into `next`. Entries are compared by reference first (a writer that
 * shares unchanged records costs nothing per unchanged entry), then by content, so a copied but
 * equal record is no change. A field replaced by another object is walked whole.
 */
export function diffStates(prev: ClusterState, next: ClusterState): StateChange[] {
  const changes: StateChange[] = [];
  for (const field of KEYED_FIELDS) {
    const before = prev[field] as Record<string, unknown> | undefined;
    const after = next[field] as Record<string, unknown> | undefined;
    if (before === after) continue;
    for (const key of Object.keys(after ?? {})) {
      const value = after![key];
      const old = before !== undefined && hasOwn(before, key) ? before[key] : undefined;
      if (old === value || (old !== undefined && sameData(old, value))) continue;
      changes.push({ field, key, value } as EntryChange);
    }
    for (const key of Object.keys(before ?? {})) {
      if (after === undefined || !hasOwn(after, key)) changes.push({ field, key } as EntryChange);
    }
  }
  if (prev.api_keys !== next.api_keys && !sameData(prev.api_keys, next.api_keys)) {
    changes.push(next.api_keys === undefined ? { field: "api_keys" } : { field: "api_keys", value: next.api_keys });
  }
  return changes;
}

function sameData(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

