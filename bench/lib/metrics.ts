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

/** Mean batch size of a model version between two scrapes. */
export function meanBatch(before: string, after: string, model: string): number {
  const d = (name: string) => metricValue(after, name, { model }) - metricValue(before, name, { model });
  const count = d("clipper_model_batch_size_count");
  return count === 0 ? 0 : d("clipper_model_batch_size_sum") / count;
}
