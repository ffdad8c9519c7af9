// Regenerates docs/cli.md from the built CLI's own --help, so the reference cannot drift.
// Usage: npm run build && node scripts/gen-cli-docs.mjs
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";

const cli = new URL("../dist/bin/clipper.js", import.meta.url).pathname;
const help = (...args) => execFileSync(process.execPath, [cli, ...args, "--help"], { encoding: "utf8", env: { ...process.env, COLUMNS: "100" } });
const top = help();
const commands = [...top.matchAll(/^  ([a-z-]+) /gm)].map((m) => m[1]).filter((c) => c !== "help");

// The exit codes, from the table the CLI itself uses (one line per code; shared codes joined by "or").
const { ERROR_CODES } = await import(new URL("../dist/src/errors.js", import.meta.url).href);
const byCode = new Map();
for (const { exitCode, summary } of Object.values(ERROR_CODES)) byCode.set(exitCode, [...(byCode.get(exitCode) ?? []), summary]);
const exitCodes = [...byCode].sort(([a], [b]) => a - b).map(([code, summaries]) => `- ${code}: ${summaries.join(", or ")}`).join("\n");

const intro = `# CLI reference

\`clipper <command> [options]\` — generated from the CLI's own \`--help\` by
\`node scripts/gen-cli-docs.mjs\`.

Every command (in a group such as \`api-key\`, every subcommand) takes \`--json\` (one JSON document on stdout, errors as \`{"error", "code", "hint"}\`,
the argument errors of the command line itself too: an unknown option, a missing argument, a bad value)
and \`--cluster NAME\` (default: the current cluster, the one \`clipper start\` last started; see
\`$CLIPPER_HOME/context.json\`). Colours and spinners appear only on a terminal.

Errors are one line on stderr (\`error: ...\`, sometimes followed by \`hint: ...\`) and a non-zero
exit code:

${exitCodes}
- 1: anything unexpected (set \`CLIPPER_DEBUG=1\` for a stack trace)

Environment: \`CLIPPER_HOME\` (default \`~/.clipper\`), \`CLIPPER_PYTHON\` (interpreter for Python
models, \`save-function\` and \`test-predict\` when no \`--python\` is given; unset, the first of
\`python3\` on PATH and \`/usr/bin/python3\` that imports numpy: docs/quickstart.md, "Which Python
runs a model"), \`CLIPPER_API_KEY\` (the query API key \`predict\` sends).

\`\`\`
${top.trimEnd()}
\`\`\`
`;
// A command group (api-key) lists its subcommands under "Commands:"; each gets its own section.
const subcommandsOf = (text) => {
  const block = text.split(/^Commands:$/m)[1] ?? "";
  return [...block.matchAll(/^  ([a-z-]+)[ \[]/gm)].map((m) => m[1]).filter((c) => c !== "help");
};
const section = (...path) => `## clipper ${path.join(" ")}\n\n\`\`\`\n${help(...path).trimEnd()}\n\`\`\`\n`;
const sections = commands.flatMap((c) => [section(c), ...subcommandsOf(help(c)).map((sub) => section(c, sub))]);
writeFileSync(new URL("../docs/cli.md", import.meta.url), `${intro}\n${sections.join("\n")}`);
console.log(`wrote docs/cli.md (${commands.length} commands)`);
