/** Chooses an application's selection policy from its configuration. */
import type { AppRecord } from "../../shared/state.js";
import { DefaultPolicy } from "./default-policy.js";
import type { SelectionPolicy } from "./policy.js";

const defaultPolicy = new DefaultPolicy();

export function policyFor(_app: AppRecord): SelectionPolicy {
  return defaultPolicy;
}
