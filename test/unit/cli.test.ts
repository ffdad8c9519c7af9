/** The CLI's promises that hold without a cluster: help and --json everywhere, one-line errors, exit codes. */
import { describe, expect, it } from "vitest";
import { buildProgram } from "../../src/cli/program.js";
import { ClipperError, ERROR_CODES } from "../../src/errors.js";

describe("command definitions", () => {
  const commands = buildProgram().commands;

  it("gives every command --json and a description", () => {
    expect(commands.map((c) => c.name()).sort()).toEqual([
      "api-key", "apps", "attach", "autoscale", "build-model", "dashboard", "delete-model", "deploy-model", "events", "feedback", "link", "logs", "models", "policy-state", "predict", "query-log", "register-app", "replay", "replicas", "rollout", "save-function",
      "set-policy", "set-version", "shadow", "start", "status", "stop", "stop-all-models", "stop-models", "test-predict", "unlink", "unregister-app",
    ]);
    // A group (api-key) has no action of its own: its subcommands do.
    for (const command of commands.flatMap((c) => (c.commands.length > 0 ? c.commands : [c]))) {
      expect(command.options.map((o) => o.long), command.name()).toContain("--json");
      expect(command.description(), command.name()).not.toBe("");
    }
  });

});

describe("errors", () => {
  it("maps every error code to a documented exit code above 1", () => {
    for (const [code, { exitCode, summary }] of Object.entries(ERROR_CODES)) {
      expect(exitCode, code).toBeGreaterThan(1);
      expect(summary, code).not.toBe("");
      expect(new ClipperError(code as keyof typeof ERROR_CODES, "x").exitCode).toBe(exitCode);
    }
  });

});
