/** Flag value parsers: each rejects bad input with a one-line message commander prints. */
import { InvalidArgumentError } from "@commander-js/extra-typings";
import { canonicalInputType, type InputType } from "../../runtime/shared/input-types.js";
import { REGISTRY_ADDRESS } from "../images/layout.js";
import { allowedHostsList } from "../../runtime/shared/host-check.js";
import { stepsProblem } from "../../runtime/shared/rollout.js";
import { ENV_NAME_PATTERN } from "../managers/container-manager.js";

export function intArg(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`expected a whole number, got '${value}'`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`expected a number between ${min} and ${max}, got ${n}`);
    return n;
  };
}

/** A number above 0 and at most `max`, fractions allowed. */
export function positiveArg(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(n > 0) || n > max) {
      throw new InvalidArgumentError(`expected a number above 0 and at most ${max}, got '${value}'`);
    }
    return n;
  };
}

/** A number from 0 to 1 (a rate, a share). */
export function fractionArg(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(n >= 0 && n <= 1)) throw new InvalidArgumentError(`expected a number from 0 to 1, got '${value}'`);
  return n;
}

/** `--steps 1,10,50,100`: whole percents, increasing, the last 100 (runtime/shared/rollout.ts). */
export function stepsArg(value: string): number[] {
  const parts = value.split(",").map((p) => p.trim());
  if (parts.some((p) => !/^\d{1,3}$/.test(p))) throw new InvalidArgumentError(`expected whole percents separated by commas, such as 1,10,50,100, got '${value}'`);
  const steps = parts.map(Number);
  const problem = stepsProblem(steps);
  if (problem) throw new InvalidArgumentError(problem);
  return steps;
}

/** A TCP port; 0 lets the manager pick a free one. */
export const portArg = intArg(0, 65535);

export function inputTypeArg(value: string): InputType {
  const type = canonicalInputType(value);
  if (!type) throw new InvalidArgumentError(`unknown input type '${value}' (bytes, integers, floats, doubles, strings)`);
  return type;
}

export function batchSizeArg(value: string): number {
  const n = intArg(-1)(value);
  if (n === 0) throw new InvalidArgumentError("the batch size must be positive, or -1 to let the frontend choose");
  return n;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Parses a JSON argument with a clear message. */
export function jsonArg(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    throw new InvalidArgumentError(`not valid JSON: ${value}`);
  }
}

/** A registry address, host[:port][/path], without trailing slashes. */
export function registryArg(value: string): string {
  const registry = value.trim().replace(/\/+$/, "");
  if (!REGISTRY_ADDRESS.test(registry)) throw new InvalidArgumentError(`'${value}' is not a registry address (host[:port][/path])`);
  return registry;
}

/** `--allowed-hosts`: a comma list of hostnames, or `*`. */
export function allowedHostsArg(value: string): string[] {
  try {
    return allowedHostsList(value);
  } catch (err) {
    throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
  }
}

/** A positive rate in requests per second (`10`, `2.5`, or written as `10/s`), fractions allowed. */
export function rateArg(value: string): number {
  const number = value.trim().replace(/\/s$/, "");
  const n = Number(number);
  if (!/^\d+(\.\d+)?$/.test(number) || !(n > 0) || n > 1_000_000) {
    throw new InvalidArgumentError(`expected requests per second (such as 10 or 10/s), a number above 0 and at most 1000000, got '${value}'`);
  }
  return n;
}

/** `--env KEY=VALUE` (repeatable): one variable of a model's replicas; a name given twice is a mistake. */
export function envArg(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = value.indexOf("=");
  const name = at > 0 ? value.slice(0, at) : "";
  if (!ENV_NAME_PATTERN.test(name)) {
    throw new InvalidArgumentError(`expected KEY=VALUE with KEY made of letters, digits and _ (not starting with a digit), got '${value}'`);
  }
  if (Object.hasOwn(previous, name)) throw new InvalidArgumentError(`--env ${name} is given twice`);
  // defineProperty: a name such as __proto__ stays an ordinary variable name.
  return Object.defineProperty({ ...previous }, name, { value: value.slice(at + 1), enumerable: true, writable: true, configurable: true });
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `--since`: a duration back from now (`90s`, `10m`, `1h30m`, `2d`) or a time (ISO 8601, e.g.
 * `2026-12-03T07:00:00Z`; without a zone it is local time), as the moment it names.
 */
export function sinceArg(value: string, now: () => number = Date.now): Date {
  const text = value.trim();
  if (/^(\d+(ms|s|m|h|d))+$/.test(text)) {
    let ms = 0;
    for (const [, n, unit] of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(n) * DURATION_UNITS_MS[unit!]!;
    return new Date(now() - ms);
  }
  const time = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(text) ? Date.parse(text.replace(" ", "T")) : NaN;
  if (Number.isNaN(time)) {
    throw new InvalidArgumentError(`expected a duration (90s, 10m, 1h30m, 2d) or a time (2026-12-03T07:00:00Z), got '${value}'`);
  }
  return new Date(time);
}
