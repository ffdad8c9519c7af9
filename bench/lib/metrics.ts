/** Reads a few numbers back from the frontend's Prometheus text. */

export async function scrape(queryUrl: string): Promise<string> {
  return (await fetch(`${queryUrl}/metrics`)).text();
}

/** The value of one series, e.g. metricValue(text, "clipper_model_batch_size_sum", { model: "m:1" }). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== "{" && rest[0] !== " ") continue;
    if (wanted.every((w) => rest.includes(w))) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return 0;
}

/** The sum of every series of a metric (all label sets). */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || (line[name.length] !== "{" && line[name.length] !== " ")) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** Mean batch size of a model version between two scrapes. */
export function meanBatch(before: string, after: string, model: string): number {
  const d = (name: string) => metricValue(after, name, { model }) - metricValue(before, name, { model });
  const count = d("clipper_model_batch_size_count");
  return count === 0 ? 0 : d("clipper_model_batch_size_sum") / count;
}

/**
 * A quantile of a histogram's observations between two scrapes, interpolated within its bucket as
 * Prometheus's histogram_quantile does. In seconds.
 */
export function histogramQuantile(before: string, after: string, name: string, labels: Record<string, string>, q: number): number {
  const buckets: Array<{ le: number; count: number }> = [];
  for (const line of after.split("\n")) {
    if (!line.startsWith(`${name}_bucket{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (le === undefined) continue;
    const bucketLabels = { ...labels, le };
    const count = metricValue(after, `${name}_bucket`, bucketLabels) - metricValue(before, `${name}_bucket`, bucketLabels);
    buckets.push({ le: le === "+Inf" ? Infinity : Number(le), count });
  }
  buckets.sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return lower;
      return lower + ((b.le - lower) * (rank - below)) / Math.max(1, b.count - below);
    }
    lower = b.le;
    below = b.count;
  }
  return lower;
}
