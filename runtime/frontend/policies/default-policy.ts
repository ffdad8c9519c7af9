/** Clipper's behaviour: the one linked model's current (or pinned) version, else the default output. */
import { hasOwn, own } from "../../shared/dict.js";
import { QueryError } from "../query-errors.js";
import { NO_CONNECTED_MODELS, outcomeToAnswer } from "./answers.js";
import type { PolicyAnswer, PolicyQuery, SelectionPolicy } from "./policy.js";

export class DefaultPolicy implements SelectionPolicy {
  readonly name = "default";

  async predict(query: PolicyQuery): Promise<PolicyAnswer> {
    const modelName = query.app.linked_models[0];
    const model = modelName === undefined ? undefined : own(query.models, modelName);
    let version: string | null | undefined = model?.current_version;
    if (query.pinnedVersion !== undefined) {
      if (!model || !hasOwn(model.versions, query.pinnedVersion)) {
        throw new QueryError(400, "Query processing error",
          `Requested version: ${query.pinnedVersion} does not exist for model: ${modelName ?? ""}`);
      }
      version = query.pinnedVersion;
    }
    if (!model || version === null || version === undefined) {
      return { kind: "default", reason: "no_connected_models", explanation: NO_CONNECTED_MODELS };
    }
    return outcomeToAnswer(await query.caller.call({ name: model.name, version }, query.inputType, query.input, query.deadline));
  }

  async feedback(): Promise<void> {}
}
