/**
 * Load that records what happened each second (answers by a model, default outputs, failures), for
 * benchmarks whose point is a change over time (autoscaling). Closed loop: `connections` clients that
 * ask again as soon as they are answered (a retry storm). Open loop: requests started at an even
 * `rate` whatever the answers do (independent users).
 */
import { bodyFunction, type LoadBody } from "./body.js";

export interface Second {
  model: number;
  defaults: number;
  failed: number;
}

export interface TimelineLoad {
  /** Per second since the start, what completed in it. */
  seconds: Second[];
  /** Stops sending and waits for what is in flight. */
  stop(): Promise<void>;
}

type Load = { url: string; body: LoadBody } & ({ connections: number } | { rate: number });

export function startTimelineLoad(load: Load): TimelineLoad {
  const start = Date.now();
  const seconds: Second[] = [];
  const bucket = () => {
    const i = Math.floor((Date.now() - start) / 1000);
    while (seconds.length <= i) seconds.push({ model: 0, defaults: 0, failed: 0 });
    return seconds[i]!;
  };
  const makeBody = bodyFunction(load.body);
  let running = true;
  const inFlight = new Set<Promise<void>>();
  const once = async (): Promise<void> => {
    try {
      const res = await fetch(load.url, { method: "POST", headers: { "content-type": "application/json" }, body: makeBody() });
      const text = await res.text();
      if (res.status !== 200) bucket().failed++;
      else if (text.includes("\"default\":false")) bucket().model++;
      else bucket().defaults++;
    } catch {
      bucket().failed++;
    }
  };
  const track = (p: Promise<void>) => {
    inFlight.add(p);
    void p.then(() => inFlight.delete(p));
  };
  let timer: NodeJS.Timeout | undefined;
  if ("connections" in load) {
    for (let c = 0; c < load.connections; c++) {
      track((async () => {
        while (running) await once();
      })());
    }
  } else {
    let sent = 0;
    timer = setInterval(() => {
      const due = Math.floor(((Date.now() - start) / 1000) * load.rate);
      for (; sent < due && running; sent++) track(once());
    }, 5);
  }
  return {
    seconds,
    async stop() {
      running = false;
      clearInterval(timer);
      await Promise.all([...inFlight]);
    },
  };
}
