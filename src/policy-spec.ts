/**
 * Selection policies written on one line, for `clipper register-app --policy` and
 * `clipper set-policy`: `name`, `name:key=value,key=value`, or a JSON object.
 *
 *   ensemble:threshold=0.6        exp3:gamma=0.2          exp4:eta=0.5,scale=10
 *   canary:1=95,2=5               (version=weight)        cascade:models=fast|slow,threshold=0.8
 *
 * Only the syntax is checked here; the management daemon validates the policy itself.
 */
import { dict, hasOwn } from "../runtime/shared/dict.js";
import type { PolicyConfig } from "../runtime/shared/state.js";

export class PolicySpecError extends Error {
  override name = "PolicySpecError";
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

function scalar(value: string): number | string {
  return NUMBER.test(value) ? Number(value) : value;
}

/** Parses a policy spec into the object the admin API takes. */
export function parsePolicySpec(spec: string): Record<string, unknown> {
  const text = spec.trim();
  if (text.startsWith("{")) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new PolicySpecError(`policy '${spec}' is not valid JSON: ${(err as Error).message}`);
    }
    if (json === null || typeof json !== "object" || Array.isArray(json)) throw new PolicySpecError(`policy '${spec}' must be a JSON object`);
    return json as Record<string, unknown>;
  }
  const colon = text.indexOf(":");
  const name = (colon < 0 ? text : text.slice(0, colon)).trim();
  if (!/^[a-z0-9]+$/.test(name)) {
    throw new PolicySpecError(`policy '${spec}' must start with a policy name (default, ensemble, exp3, exp4, canary, cascade)`);
  }
  // Null-prototype: a canary version named `constructor` is a key like any other.
  const policy = dict<unknown>([["name", name]]);
  const params = colon < 0 ? "" : text.slice(colon + 1).trim();
  if (params === "") return policy;
  const weights = dict<unknown>();
  for (const pair of params.split(",")) {
    const eq = pair.indexOf("=");
    const key = (eq < 0 ? pair : pair.slice(0, eq)).trim();
    const value = eq < 0 ? "" : pair.slice(eq + 1).trim();
    if (eq < 0 || key === "" || value === "") {
      throw new PolicySpecError(`'${pair}' in policy '${spec}' is not key=value (e.g. ensemble:threshold=0.6)`);
    }
    if (hasOwn(policy, key) || hasOwn(weights, key)) throw new PolicySpecError(`'${key}' appears twice in policy '${spec}'`);
    if (name === "canary") weights[key] = scalar(value);
    else if (key === "models") policy[key] = value.split("|").map((m) => m.trim());
    else policy[key] = scalar(value);
  }
  if (name === "canary") policy.weights = weights;
  return policy;
}

/** The one-line form of a policy (absent: "default"), as `clipper apps` shows it. */
export function formatPolicy(policy: PolicyConfig | Record<string, unknown> | undefined): string {
  if (!policy) return "default";
  const { name, ...params } = policy as Record<string, unknown>;
  const pairs: string[] = [];
  for (const [key, value] of Object.entries(params)) {
    if (name === "canary" && key === "weights" && value && typeof value === "object") {
      for (const [version, weight] of Object.entries(value)) pairs.push(`${version}=${String(weight)}`);
    } else if (Array.isArray(value)) {
      pairs.push(`${key}=${value.join("|")}`);
    } else {
      pairs.push(`${key}=${String(value)}`);
    }
  }
  return pairs.length === 0 ? String(name) : `${String(name)}:${pairs.join(",")}`;
}
