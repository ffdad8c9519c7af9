/** A pod's log as a stream of lines (`clipper logs --follow` on Kubernetes), through the client's Log API. */
import { Writable } from "node:stream";
import type { Log, V1Pod } from "@kubernetes/client-node";
import { TextLines, type StreamStart } from "../common/index.js";

/**
 * Hands the pod's log lines to `onLine` (its first container: Clipper's pods run one). Resolves
 * when the API server ends the log (without `follow`, or when the container stops) or `signal` aborts.
 */
export async function streamPodLog(log: Log, namespace: string, pod: V1Pod, start: StreamStart, onLine: (line: string) => void): Promise<void> {
  if (start.signal?.aborted) return;
  const lines = new TextLines(onLine);
  let finish: () => void = () => undefined;
  const ended = new Promise<void>((resolve) => (finish = resolve));
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk);
      callback();
    },
  });
  sink.once("finish", finish);
  sink.once("error", finish);
  const controller = await log.log(namespace, pod.metadata!.name!, pod.spec?.containers[0]?.name ?? "", sink, {
    follow: start.follow,
    ...(start.tail !== undefined && start.tail > 0 ? { tailLines: start.tail } : {}),
    ...(start.since ? { sinceTime: start.since.toISOString() } : {}),
  });
  const abort = () => {
    controller.abort();
    finish();
  };
  start.signal?.addEventListener("abort", abort, { once: true });
  try {
    await ended;
  } finally {
    start.signal?.removeEventListener("abort", abort);
    lines.end();
  }
}
