/**
 * Waiting until every live query frontend has applied a change written to the management daemon,
 * so that a query sent right after a command returns is served by the new configuration. The
 * daemon names the revision a write produced (response headers) and what each frontend reports
 * having applied (APPLIED_REVISIONS_PATH); revisions compare only within one daemon instance.
 */
import { ClipperError } from "./errors.js";
import type { AppliedRevisions } from "../runtime/shared/state.js";

/** The revision an admin write produced, as the daemon instance that numbered it. */
export interface WrittenRevision {
  daemon: string;
  revision: number;
}

export interface RevisionWaitOptions {
  timeoutMs: number;
  /** Injected for tests. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export const DEFAULT_APPLY_TIMEOUT_MS = 30_000;
const FIRST_POLL_MS = 10;
const MAX_POLL_MS = 250;

/** Frontends that have not yet applied `written`, with what they have applied. */
export function laggingFrontends(written: WrittenRevision, applied: AppliedRevisions): AppliedRevisions["frontends"] {
  // A restarted daemon numbers its states anew: then its current state is the one to wait for.
  const target = applied.daemon === written.daemon ? written.revision : applied.revision;
  return applied.frontends.filter((f) => f.revision === null || f.revision < target);
}

export async function waitUntilApplied(
  written: WrittenRevision,
  readApplied: () => Promise<AppliedRevisions>,
  options: RevisionWaitOptions,
): Promise<void> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const deadline = now() + options.timeoutMs;
  let pause = FIRST_POLL_MS;
  for (;;) {
    const lagging = laggingFrontends(written, await readApplied());
    if (lagging.length === 0) return;
    if (now() >= deadline) {
      const which = lagging.map((f) => `${f.frontend_id} (${f.revision === null ? "no revision of this daemon" : `at revision ${f.revision}`})`);
      throw new ClipperError("UNREACHABLE",
        `the change (revision ${written.revision}) is recorded, but ${lagging.length === 1 ? "a query frontend has" : `${lagging.length} query frontends have`} ` +
          `not applied it within ${options.timeoutMs} ms: ${which.join(", ")}`,
        "a frontend that lost its way to the management daemon serves its last known state; see `clipper logs frontend` " +
          "(a frontend that died is forgotten after the daemon's report TTL)");
    }
    await sleep(Math.min(pause, Math.max(0, deadline - now())));
    pause = Math.min(MAX_POLL_MS, pause * 2);
  }
}
