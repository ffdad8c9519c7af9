/**
 * When a second deploy of the same version is "the same deployment" (scale it) or a changed one
 * (replace its replicas). Every manager records a deployment in its own form; all compare that form
 * with this one rule: same fields, same values, key order and absent-vs-empty env aside.
 */
export function sameDeployment(a: object, b: object): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** JSON with object keys sorted and undefined or empty-object values dropped. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (!v || typeof v !== "object" || Array.isArray(v)) return v;
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined && !(x && typeof x === "object" && !Array.isArray(x) && Object.keys(x).length === 0))
      .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
    return Object.fromEntries(entries);
  });
}
