/** The replica-count and name rules every manager applies before it touches anything. */
import { nameProblem } from "../../../runtime/shared/names.js";
import { ManagerError } from "../errors.js";

/** The most replicas one model version may have, on every manager. */
export const MAX_REPLICAS = 64;

export function checkReplicas(replicas: number): void {
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > MAX_REPLICAS) {
    throw new ManagerError(`the number of replicas must be an integer from 0 to ${MAX_REPLICAS} (got ${replicas})`, "INVALID_ARGUMENT");
  }
}

export function checkModelNames(name: string, version: string): void {
  const problem = nameProblem("model name", name) ?? nameProblem("model version", version);
  if (problem) throw new ManagerError(problem, "INVALID_ARGUMENT");
}

/** The error every manager gives for scaling or deleting a version it has no record of. */
export function noDeployment(name: string, version: string, where: string): ManagerError {
  return new ManagerError(`no deployment of model ${name} version ${version} in ${where}; deploy it first`, "NOT_FOUND");
}

/** Whether a version is chosen by a `{model: [versions]}` selection ([] = every version). */
export function chosenVersion(models: Readonly<Record<string, readonly string[]>>, name: string, version: string): boolean {
  if (!Object.prototype.hasOwnProperty.call(models, name)) return false;
  const versions = models[name]!;
  return versions.length === 0 || versions.includes(version);
}
