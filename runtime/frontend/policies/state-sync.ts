/**
 * The query frontend's copy of the learned bandit weights, kept durable through the management
 * daemon: local changes are sent (batched, after `flushDelayMs`) to /admin/update_policy_state,
 * and the daemon's snapshots (the watch stream) bring the weights back after a restart.
 *
 * The local copy is authoritative between snapshots: an entry changed here and not yet confirmed
 * by a snapshot carrying the same weights is not overwritten by an older snapshot. An entry is
 * dropped when its application disappears or changes policy (the daemon starts those afresh too).
 */
import { dict, hasOwn, own } from "../../shared/dict.js";
import type { Logger } from "pino";
import { APP_WIDE_STATE, type ClusterState, MAX_POLICY_UIDS_PER_APP, UPDATE_POLICY_STATE_PATH } from "../../shared/state.js";
import type { WeightStore } from "./policy.js";

export interface PolicyStateUpdate {
  app_name: string;
  uid?: string;
  /** The policy the weights were learned under; the daemon skips them if the policy changed. */
  policy?: string;
  weights: Record<string, number>;
}

/** "ok": stored; "rejected": refused for good (e.g. the application is gone). Throws to retry later. */
export type SendPolicyState = (updates: PolicyStateUpdate[]) => Promise<"ok" | "rejected">;

export interface PolicyStateSyncOptions {
  send: SendPolicyState;
  flushDelayMs?: number;
  maxUidsPerApp?: number;
  log?: Pick<Logger, "warn" | "debug">;
}

type Weights = Record<string, number>;

interface Entry {
  weights: Weights;
  /** Changed here and not yet sent. */
  dirty: boolean;
  /** Sent, answer pending. */
  inflight?: Weights;
  /** Stored by the daemon, not yet seen back in a snapshot. */
  acked?: Weights;
}

interface AppEntries {
  policy?: string;
  entries: Map<string, Entry>;
}

const MAX_RETRY_MS = 5_000;

export class PolicyStateSync implements WeightStore {
  private readonly apps = new Map<string, AppEntries>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private retryMs: number;
  private closed = false;

  constructor(private readonly options: PolicyStateSyncOptions) {
    this.retryMs = options.flushDelayMs ?? 250;
  }

  get(app: string, key: string): Readonly<Weights> | undefined {
    return this.apps.get(app)?.entries.get(key)?.weights;
  }

  set(app: string, key: string, weights: Weights): void {
    const appEntries = this.appEntries(app);
    const entry = appEntries.entries.get(key);
    // Re-inserted so that Map order is least recently changed first (for eviction).
    appEntries.entries.delete(key);
    appEntries.entries.set(key, { ...(entry ?? {}), weights: dict(weights), dirty: true });
    this.evict(appEntries);
    this.schedule(this.options.flushDelayMs ?? 250);
  }

  /** The application-wide weights of every application, for the weights gauge. */
  appWideWeights(): Array<{ app: string; model: string; weight: number }> {
    const out: Array<{ app: string; model: string; weight: number }> = [];
    for (const [app, { entries }] of this.apps) {
      const weights = entries.get(APP_WIDE_STATE)?.weights;
      for (const [model, weight] of Object.entries(weights ?? {})) out.push({ app, model, weight });
    }
    return out;
  }

  /** Takes in a configuration snapshot from the management daemon. */
  onSnapshot(state: ClusterState): void {
    this.onApps(state, new Set([...this.apps.keys(), ...Object.keys(state.applications)]));
  }

  /** Takes in the records and stored weights of these applications only (a watch-stream delta changed them). */
  onApps(state: ClusterState, apps: Iterable<string>): void {
    for (const app of apps) this.syncApp(state, app);
  }

  private syncApp(state: ClusterState, app: string): void {
    const record = own(state.applications, app);
    let local = this.apps.get(app);
    if (local && (!record || (local.policy !== undefined && local.policy !== (record.policy?.name ?? "default")))) {
      this.apps.delete(app);
      local = undefined;
    }
    if (!record) return;
    const stored = own(state.policy_state, app);
    if (!local && !stored) return;
    const target = local ?? this.appEntries(app);
    target.policy = record.policy?.name ?? "default";
    for (const [key, weights] of Object.entries(stored ?? {})) {
      const entry = target.entries.get(key);
      if (!entry) {
        target.entries.set(key, { weights: dict(weights), dirty: false });
      } else if (entry.dirty || entry.inflight) {
        continue;
      } else if (entry.acked) {
        if (sameWeights(entry.acked, weights)) {
          entry.acked = undefined;
          entry.weights = dict(weights);
        }
      } else {
        entry.weights = dict(weights);
      }
    }
    // Confirmed entries the daemon no longer has (evicted, or reset) are dropped here too.
    for (const [key, entry] of target.entries) {
      if (!hasOwn(stored, key) && !entry.dirty && !entry.inflight && !entry.acked) target.entries.delete(key);
    }
    this.evict(target);
  }

  /** Sends every pending change now. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    const pending: Array<{ entry: Entry; sent: Weights }> = [];
    const updates: PolicyStateUpdate[] = [];
    for (const [app, { policy, entries }] of this.apps) {
      for (const [key, entry] of entries) {
        if (!entry.dirty) continue;
        entry.dirty = false;
        entry.inflight = entry.weights;
        pending.push({ entry, sent: entry.weights });
        updates.push({
          app_name: app, ...(key === APP_WIDE_STATE ? {} : { uid: key }), ...(policy ? { policy } : {}), weights: entry.weights,
        });
      }
    }
    if (updates.length === 0) return;
    this.flushing = (async () => {
      try {
        const result = await this.options.send(updates);
        for (const { entry, sent } of pending) {
          entry.inflight = undefined;
          if (result === "ok") entry.acked = sent;
        }
        if (result === "rejected") this.options.log?.debug({ updates: updates.length }, "policy state update refused");
        this.retryMs = this.options.flushDelayMs ?? 250;
      } catch (err) {
        for (const { entry } of pending) {
          entry.inflight = undefined;
          entry.dirty = true;
        }
        this.options.log?.warn({ reason: err instanceof Error ? err.message : String(err), retryInMs: this.retryMs },
          "could not save learned policy weights; will retry");
        this.schedule(this.retryMs);
        this.retryMs = Math.min(MAX_RETRY_MS, this.retryMs * 2);
      }
    })();
    try {
      await this.flushing;
    } finally {
      this.flushing = undefined;
    }
  }

  /** Stops the timer and makes one last attempt to save pending changes. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush().catch(() => undefined);
    clearTimeout(this.timer);
  }

  private schedule(delayMs: number): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
    this.timer.unref();
  }

  private appEntries(app: string): AppEntries {
    let entries = this.apps.get(app);
    if (!entries) this.apps.set(app, (entries = { entries: new Map() }));
    return entries;
  }

  private evict(app: AppEntries): void {
    const max = this.options.maxUidsPerApp ?? MAX_POLICY_UIDS_PER_APP;
    let uids = app.entries.size - (app.entries.has(APP_WIDE_STATE) ? 1 : 0);
    for (const [key, entry] of app.entries) {
      if (uids <= max) break;
      if (key === APP_WIDE_STATE || entry.dirty || entry.inflight) continue;
      app.entries.delete(key);
      uids--;
    }
  }
}

function sameWeights(a: Readonly<Weights>, b: Readonly<Weights>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => own(b, k) === a[k]);
}

/** Sends updates to the management daemon's /admin/update_policy_state (in one batch). */
export function httpPolicyStateSender(managementUrl: string, token?: string, timeoutMs = 5_000): SendPolicyState {
  return async (updates) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(new URL(UPDATE_POLICY_STATE_PATH, managementUrl), {
      method: "POST", headers, body: JSON.stringify({ updates }), signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (res.ok) return "ok";
    if (res.status === 400) return "rejected";
    throw new Error(`the management daemon answered ${res.status}: ${text.slice(0, 200)}`);
  };
}
