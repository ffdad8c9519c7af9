/** Clipper's behaviour: the one linked model's current (or pinned) version, else the default output. */
import { hasOwn, own } from "../../shared/dict.js";
import { QueryError } from "../query-errors.js";
import { NO_CONNECTED_MODELS, outcomeToAnswer } from "./answers.js";
import { liveVersionOf } from "./common.js";
import type { ModelRef } from "../model-caller.js";
import type { PolicyAnswer, PolicyQuery, SelectionPolicy } from "./policy.js";

const noModel = (): PolicyAnswer => ({ kind: "default", reason: "no_connected_models", explanation: NO_CONNECTED_MODELS });

/** The version to ask: the pinned one (Clipper's error when it does not exist), else the current one (or a rollout's new one); none when there is no such model or version. */
function targetOf(query: PolicyQuery): ModelRef | undefined {
  const modelName = query.app.linked_models[0];
  const model = modelName === undefined ? undefined : own(query.models, modelName);
  let version: string | null | undefined = model && liveVersionOf(query, model);
  if (query.pinnedVersion !== undefined) {
    if (!model || !hasOwn(model.versions, query.pinnedVersion)) {
      throw new QueryError(400, "Query processing error",
        `Requested version: ${query.pinnedVersion} does not exist for model: ${modelName ?? ""}`);
    }
    version = query.pinnedVersion;
  }
  return !model || version === null || version === undefined ? undefined : { name: model.name, version };
}

export class DefaultPolicy implements SelectionPolicy {
  readonly name = "default";

  async predict(query: PolicyQuery): Promise<PolicyAnswer> {
    const target = targetOf(query);
    if (!target) return noModel();
    return outcomeToAnswer(await query.caller.call(target, query.inputType, query.input, query.deadline), target);
  }

  answerNow(query: PolicyQuery): PolicyAnswer | undefined {
    const target = targetOf(query);
    if (!target) return noModel();
    const cached = query.caller.cachedOutcome(target, query.inputType, query.input, query.deadline);
    return cached && outcomeToAnswer(cached, target);
  }

  async feedback(): Promise<void> {}
}
