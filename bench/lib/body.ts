/**
 * What a load sends, described rather than computed, so both load generators can make it: our
 * Node clients call `bodyFunction`, wrk (bench/lib/wrk.ts) writes the same shape in Lua.
 */
export type LoadBody = { fixed: string } | { distinctDoubles: number };

/** A fresh random input of `width` doubles per request, so the cache cannot answer. */
export function distinctDoubles(width = 8): LoadBody {
  return { distinctDoubles: width };
}

/** One input repeated, so every query after the first is a cache hit. */
export function fixedBody(input: number[] = [1, 2, 3, 4, 5, 6, 7, 8]): LoadBody {
  return { fixed: JSON.stringify({ input }) };
}

export function bodyFunction(body: LoadBody): () => string {
  if ("fixed" in body) {
    const text = body.fixed;
    return () => text;
  }
  const width = body.distinctDoubles;
  return () => JSON.stringify({ input: Array.from({ length: width }, () => Math.random()) });
}
