/** One line of text for a build event, for a spinner or a log (undefined: nothing worth a line). */
import type { BuildEvent } from "./types.js";

export function buildEventText(event: BuildEvent): string | undefined {
  switch (event.type) {
    case "context":
      return `sending the build context (${event.files} files, ${formatBytes(event.bytes)})`;
    case "step":
      return `step ${event.index}/${event.total}: ${event.name ?? event.instruction}`;
    case "output":
      return undefined;
    case "built":
      return `built ${event.tag}`;
    case "reused":
      return `${event.tag} is up to date`;
    case "push":
      return `pushing: ${event.layer ? `${event.layer} ` : ""}${event.status}${event.progress ? ` ${event.progress}` : ""}`;
    case "pushed":
      return `pushed ${event.tag}`;
  }
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
