/** feedback and policy-state: what a learning policy is told, and what it has learned. */
import { ClipperConnection } from "../../connection.js";
import { ClipperError } from "../../errors.js";
import { emit, style, table, type OutputOptions } from "../output.js";

/** `clipper feedback APP --uid U --input JSON --label JSON`: one `/update` through the query frontend. */
export async function feedback(
  app: string,
  options: OutputOptions & { cluster?: string; uid: string; input: unknown; label: unknown; queryId?: number; apiKey?: string },
): Promise<void> {
  const label = options.label;
  if (typeof label !== "number" && typeof label !== "string") {
    throw new ClipperError("USAGE", "--label must be a JSON number or string, e.g. --label 1 or --label '\"cat\"'");
  }
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const answer = await conn.sendFeedback(app, { uid: uidValue(options.uid), input: options.input, label, queryId: options.queryId }, { apiKey: options.apiKey });
  emit(options, answer, `Feedback accepted by application '${app}'`);
}

/** A uid as the query API takes it: digits are the number Clipper's clients send, anything else a string. */
function uidValue(text: string): string | number {
  return /^(0|[1-9][0-9]{0,14})$/.test(text) ? Number(text) : text;
}

/** `clipper policy-state APP [--uid U]`: the weights a learning policy holds, per uid ("*": application-wide). */
export async function policyState(app: string, options: OutputOptions & { cluster?: string; uid?: string }): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const state = await conn.getPolicyState(app, options.uid === undefined ? undefined : uidValue(options.uid));
  const rows = Object.entries(state.weights).flatMap(([uid, weights]) =>
    Object.entries(weights).map(([model, weight]) => [uid, model, weight.toPrecision(6)]));
  emit(options, state, [
    `application ${style.bold(state.app_name)}  policy ${state.policy}`,
    ...(rows.length === 0 ? [style.dim(learnsNothingYet(state.policy))] : table(["UID", "MODEL", "WEIGHT"], rows)),
  ]);
}

function learnsNothingYet(policy: string): string {
  return policy === "exp3" || policy === "exp4"
    ? "no learned weights yet (every model starts at 1; feedback changes them)"
    : `policy ${policy} does not learn from feedback`;
}
