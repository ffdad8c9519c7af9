/** What the three managers share: one lifecycle's rules, written once (issue 11 §4). */
export * from "./replicas.js";
export * from "./wait.js";
export * from "./stop-order.js";
export * from "./stop-grace.js";
export * from "./log-components.js";
export * from "./deployment-equality.js";
export * from "./api-errors.js";
export * from "./follow.js";
