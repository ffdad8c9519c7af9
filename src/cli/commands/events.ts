/** events: the management daemon's autoscaler and rollout events, once or as they come (--follow). */
import { ClipperConnection } from "../../connection.js";
import type { AutoscaleEvent } from "../../../runtime/shared/autoscaling.js";
import { describeChange } from "../../../runtime/shared/event-change.js";
import { emit, style, warn, type OutputOptions } from "../output.js";

export interface EventsFlags extends OutputOptions {
  cluster?: string;
  follow?: boolean;
  since?: number;
}

/** How often --follow asks the daemon for new events. */
const FOLLOW_POLL_MS = 1_000;

/** One event as one line of text: time, version, what changed, why. */
export function formatEvent(e: AutoscaleEvent): string {
  return `${style.dim(e.at)}  ${e.model_name}:${e.model_version}  ${style.bold(describeChange(e))}  ${e.reason}`;
}

export async function events(flags: EventsFlags): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: flags.cluster });
  const first = await conn.getEvents({ since: flags.since });
  if (!flags.follow) {
    emit(flags, first, first.events.length === 0 ? style.dim("no autoscaler events") : first.events.map(formatEvent));
    return;
  }
  // Following: one line (or one JSON object per line) per event, until interrupted.
  let page = first;
  for (;;) {
    if (page !== first && page.missed > 0) warn(`${page.missed} older events were dropped by the daemon's bounded log before they could be shown`);
    for (const event of page.events) process.stdout.write(`${flags.json ? JSON.stringify(event) : formatEvent(event)}\n`);
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
    page = await conn.getEvents({ since: page.next_seq });
  }
}
