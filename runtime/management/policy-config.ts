/**
 * Validation of an application's selection policy (docs/policies.md), with messages that say what
 * is wrong and what was expected, and the rule of how many models each policy may link.
 */
import { nameProblem } from "../shared/names.js";
import { type AppRecord, type PolicyConfig, PolicyConfigSchema, type PolicyName, POLICY_NAMES } from "../shared/state.js";
import { badRequest } from "./errors.js";

/** The parameters each policy takes, for "unknown parameter" messages. */
const PARAMETERS: Record<PolicyName, readonly string[]> = {
  default: [],
  ensemble: ["threshold"],
  exp3: ["gamma"],
  exp4: ["eta", "scale"],
  canary: ["weights"],
  cascade: ["models", "threshold"],
};

const EXAMPLE = '{"name": "ensemble", "threshold": 0.6}';

/** Parses and checks a policy object; throws a 400 AdminError with a clear message. */
export function parsePolicyConfig(value: unknown): PolicyConfig {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw badRequest(`Invalid policy: expected a JSON object such as ${EXAMPLE}, got ${JSON.stringify(value)}`);
  }
  const name = (value as { name?: unknown }).name;
  if (typeof name !== "string" || !(POLICY_NAMES as readonly string[]).includes(name)) {
    throw badRequest(
      `Invalid policy: ${name === undefined ? "missing \"name\"" : `unknown policy name ${JSON.stringify(name)}`}; ` +
        `expected one of ${POLICY_NAMES.join(", ")}`,
    );
  }
  const policyName = name as PolicyName;
  const invalid = (problem: string) => badRequest(`Invalid policy '${policyName}': ${problem}`);
  const parsed = PolicyConfigSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === "unrecognized_keys") {
      const takes = PARAMETERS[policyName];
      throw invalid(
        `unknown parameter ${issue.keys.map((k) => `'${k}'`).join(", ")} ` +
          `(${takes.length === 0 ? `${policyName} takes no parameters` : `${policyName} takes: ${takes.join(", ")}`})`,
      );
    }
    const where = issue.path.map(String).join(".");
    const message = issue.message.startsWith("Invalid input") || issue.message.startsWith("Too ")
      ? `${where || "the policy"} is invalid (${issue.message.replace(/^Invalid input: /, "")})`
      : issue.message;
    throw invalid(message);
  }
  const policy = parsed.data;
  if (policy.name === "canary") {
    const versions = Object.keys(policy.weights);
    if (versions.length === 0) throw invalid("weights must name at least one version, such as {\"1\": 95, \"2\": 5}");
    for (const v of versions) {
      const problem = nameProblem("model version", v);
      if (problem) throw invalid(problem);
    }
    if (!Object.values(policy.weights).some((w) => w > 0)) throw invalid("at least one weight must be above 0");
  }
  if (policy.name === "cascade") {
    for (const m of policy.models) {
      const problem = nameProblem("model name", m);
      if (problem) throw invalid(problem);
    }
    const dup = policy.models.find((m, i) => policy.models.indexOf(m) !== i);
    if (dup !== undefined) throw invalid(`model '${dup}' appears twice in models`);
  }
  return policy;
}

export function policyNameOf(app: Pick<AppRecord, "policy">): PolicyName {
  return app.policy?.name ?? "default";
}

/**
 * How many models an application may link: one for the default policy (Clipper's rule) and for a
 * canary (which splits traffic between versions of one model); any number for the others.
 */
export function linkLimitFor(policy: PolicyConfig | undefined): number {
  const name = policy?.name ?? "default";
  return name === "default" || name === "canary" ? 1 : Number.POSITIVE_INFINITY;
}

/** Whether a policy learns from feedback (and so keeps weights in policy_state). */
export function policyLearns(policy: PolicyConfig | undefined): boolean {
  return policy?.name === "exp3" || policy?.name === "exp4";
}
