/**
 * Replay end to end on the local manager, through the real CLI: queries of an application recorded
 * at 100% (query-log), then replayed to an identical second version (100% agreement), to a version
 * that answers differently on 30% of the inputs (the disagreement rate and examples), from an
 * exported file with torn, invalid, foreign and recorded-default lines added (skipped and counted,
 * never disagreements), and bad input refused with a clear error before anything is sent. And
 * warm-up from the log: a new version's replicas predict the application's latest recorded inputs
 * (shown in their logs) before they connect and take traffic.
 */
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { cliCluster, predictAt } from "./support/cli.js";
import { waitFor } from "./support/cluster-in-process.js";

const MODELS = fileURLToPath(new URL("./fixtures/node-models/", import.meta.url));
// Doubles in, their sum out; with DISAGREE=1, sum + 1 when the sum's last digit is 0, 1 or 2.
const CANDIDATE = `${join(MODELS, "shadow-candidate.mjs")}:predict`;
// Doubles in, their sum out; writes each warm-up batch's inputs to its log.
const WITNESS = `${join(MODELS, "warmup-witness.mjs")}:predict`;
const INPUTS = Array.from({ length: 20 }, (_, i) => [i]);
// Inputs 0, 1, 2, 10, 11, 12: 6 of the 20.
const DISAGREEING = 6;

describe("replay and warm-up from recorded queries through the CLI", { timeout: 120_000 }, () => {
  const { home, cli, ok, urls } = cliCluster("clipper-replay-");
  const exportFile = join(home, "rp.jsonl");

  beforeAll(async () => {
    await ok("register-app", "rp", "--input-type", "doubles", "--default-output", "-1", "--slo-ms", "2000");
    const deploy = (version: string, ...flags: string[]) =>
      ok("deploy-model", "m", "--version", version, "--input-type", "doubles", "--framework", "node", "--predict", CANDIDATE, ...flags);
    await deploy("1", "--link", "rp");
    await ok("query-log", "rp", "--sample", "1");
    for (const input of INPUTS) expect(await predictAt(urls.queryUrl, "rp", input)).toMatchObject({ output: input[0], default: false });
    await waitFor(async () => (await ok("query-log", "rp")).records >= INPUTS.length, 15_000, "the 20 queries in the log");
    await ok("query-log", "rp", "--off");
    // The identical version, and one that disagrees on 30%; version 1 stays current.
    await deploy("2");
    await deploy("3", "--env", "DISAGREE=1");
    await ok("set-version", "m", "1");
    await ok("query-log", "rp", "--export", exportFile);
    await ok("register-app", "texts", "--input-type", "strings");
  }, 120_000);

  it("reports 100% agreement for an identical version, from the cluster's log", async () => {
    const report = await ok("replay", "rp", "--log", "--to", "m:2", "--rate", "200");
    expect(report).toMatchObject({
      app: "rp", model_name: "m", model_version: "2", rate: 200, sent: 20, answered: 20, errors: 0,
      compared: 20, agree: 20, disagree: 0, agreement: 1, recorded_default: 0, unsendable: 0,
      skipped: { invalid: 0, other_app: 0 }, disagreements: [], stopped: false,
    });
    expect(report.latency_ms.p50).toBeGreaterThan(0);
    expect(report.latency_ms.p99).toBeGreaterThanOrEqual(report.latency_ms.p90);
    expect(report.latency_ms.p90).toBeGreaterThanOrEqual(report.latency_ms.p50);
    // 20 queries at 200/s take about 0.1 s: open loop at the asked rate, not as fast as possible.
    expect(report.duration_s).toBeGreaterThanOrEqual(0.09);
  });

  it("reports the disagreement rate and examples for a version that answers differently", async () => {
    const report = await ok("replay", "rp", "--log", "--to", "m:3", "--rate", "500");
    expect(report).toMatchObject({ sent: 20, answered: 20, compared: 20, agree: 20 - DISAGREEING, disagree: DISAGREEING, agreement: 0.7 });
    expect(report.disagreements).toHaveLength(5);
    // Each example: the input, the recorded sum, and version 3's sum + 1.
    for (const d of report.disagreements) {
      expect(d).toEqual({ query_id: expect.any(Number), input: `[${d.recorded}]`, recorded: expect.stringMatching(/^(0|1|2|10|11|12)$/), replayed: String(Number(d.recorded) + 1) });
    }

    const human = await cli("replay", "rp", "--log", "--to", "m:3", "--rate", "500");
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/agreement {2}70% of 20 \(14 agree, 6 disagree\)/);
    expect(human.stdout).toMatch(/disagree {3}query \d+: input \[(\d+)\]: recorded \1, replayed \d+/);
    expect(human.stdout).toMatch(/latency {4}p50 [\d.]+ ms, p90 [\d.]+ ms, p99 [\d.]+ ms/);
    // Not a terminal: the progress is plain lines on stderr, no spinner.
    expect(human.stderr).toMatch(/replaying to m:3 \.\.\./);
    expect(human.stderr).not.toMatch(/\u001b\[/);
  });

  it("replays an exported file: torn, invalid and foreign lines skipped and counted, recorded defaults not compared", async () => {
    const file = join(home, "edited.jsonl");
    const lines = readFileSync(exportFile, "utf8").split("\n").filter((l) => l !== "");
    expect(lines).toHaveLength(20);
    const first = JSON.parse(lines[0]!);
    writeFileSync(file, `${lines.join("\n")}\n`);
    appendFileSync(file, [
      // The model missed the SLO when this was recorded: the default output, which the version's answer must not be judged against.
      JSON.stringify({ ...first, query_id: 900, input: [7], output: -1, default: true, default_reason: "slo_missed" }),
      JSON.stringify({ ...first, app: "other" }),
      JSON.stringify({ ...first, input: "seven" }),
      "not json at all",
      JSON.stringify({ type: "feedback", app: "rp", query_id: 1, frontend_id: "x", time: "t", input: [1], label: 1 }),
      // A file cut short mid-line.
      JSON.stringify(first).slice(0, 40),
    ].join("\n"));
    const report = await ok("replay", "rp", "--from", file, "--to", "m:2", "--rate", "500");
    expect(report).toMatchObject({
      source: file, sent: 21, answered: 21, errors: 0, compared: 20, agree: 20, disagree: 0, agreement: 1,
      recorded_default: 1, unsendable: 1, skipped: { invalid: 3, other_app: 1 },
    });

    const limited = await ok("replay", "rp", "--from", exportFile, "--to", "m:3", "--limit", "3", "--rate", "500");
    // The first three recorded: inputs 0, 1, 2, on which version 3 disagrees.
    expect(limited).toMatchObject({ sent: 3, compared: 3, disagree: 3, agreement: 0 });
  });

  it("warms a new version's replicas on the application's latest recorded inputs before they connect", async () => {
    const deployed = await ok("deploy-model", "m", "--version", "5", "--input-type", "doubles", "--framework", "node",
      "--predict", WITNESS, "--warmup-from-log", "rp", "--warmup-count", "4", "--warmup-batches", "2");
    expect(deployed).toMatchObject({ model_version: "5", warmup_from_log: { app: "rp", inputs: 4 } });
    const log = (await ok("logs", "m-5-0", "--tail", "500"))[0].lines as string[];
    const at = (pattern: RegExp) => log.findIndex((l) => pattern.test(l));
    // The last four inputs recorded ([16] to [19]), in one batch, twice; then it connected, and only then was ready.
    const batch = "inputs [[16],[17],[18],[19]]";
    expect(log.filter((l) => l.includes(batch))).toHaveLength(2);
    expect(at(/warm-up batch 1 inputs/)).toBeGreaterThan(-1);
    expect(at(/warm-up batch 2 inputs/)).toBeGreaterThan(at(/warm-up batch 1 inputs/));
    expect(at(/warmed up; connecting/)).toBeGreaterThan(at(/warm-up batch 2 inputs/));
    expect(at(/wrote the readiness file/)).toBeGreaterThan(at(/warmed up; connecting/));
    // A replica added later warms up on the same recorded inputs: they travel with the deployment.
    await ok("replicas", "m", "2", "--version", "5");
    const added = (await ok("logs", "m-5-1", "--tail", "500"))[0].lines as string[];
    expect(added.findIndex((l) => l.includes(batch))).toBeGreaterThan(-1);
    expect(added.findIndex((l) => /warmed up; connecting/.test(l))).toBeGreaterThan(added.findIndex((l) => l.includes(batch)));
    await ok("set-version", "m", "1");

    const refused = async (flags: string[], code: number, message: RegExp) => {
      const r = await cli("deploy-model", "w", "--version", "1", "--input-type", "doubles", "--framework", "node", "--predict", WITNESS, ...flags);
      expect(r.code, `${flags.join(" ")}: ${r.stdout}${r.stderr}`).toBe(code);
      expect(r.stderr).toMatch(message);
    };
    await refused(["--warmup-from-log", "nope"], 4, /nope/);
    await refused(["--warmup-from-log", "texts"], 2, /the query log of 'texts' holds no recorded input of type doubles/);
    await refused(["--warmup-count", "3"], 2, /--warmup-count goes with --warmup-from-log/);
    await refused(["--warmup-from-log", "rp", "--warmup-count", "0"], 2, /expected a number between 1 and 256/);
    await refused(["--warmup-from-log", "rp", "--warmup-input", "[1]"], 2, /cannot be used with option '--warmup-input/);
    await refused(["--warmup-from-log", "rp", "--env", "CLIPPER_WARMUP_INPUTS=[[1]]"], 2, /--env CLIPPER_WARMUP_INPUTS, not both/);
    expect((await ok("models")).some((m: any) => m.model_name === "w")).toBe(false);
    expect((await ok("status")).replicas.some((x: any) => x.name === "w")).toBe(false);
  });

  it("refuses bad input with a clear error before sending anything", async () => {
    await ok("deploy-model", "s", "--version", "1", "--input-type", "strings", "--framework", "node", "--predict", `${join(MODELS, "strings.mjs")}:predict`);
    await ok("deploy-model", "m", "--version", "4", "--input-type", "doubles", "--framework", "node", "--predict", CANDIDATE, "--replicas", "0");
    await ok("set-version", "m", "1");
    for (const [args, code, message] of [
      [["nope", "--log", "--to", "m:2"], 4, /application 'nope' does not exist/],
      [["rp", "--log", "--to", "m"], 2, /expected NAME:VERSION \(such as m:2\), got 'm'/],
      [["rp", "--log", "--to", "M:2"], 2, /model name 'M' must consist of lower case/],
      [["rp", "--log", "--to", "m:9"], 4, /model 'm' has no version '9'/],
      [["rp", "--log", "--to", "constructor:1"], 4, /model 'constructor' has no version '1'/],
      [["rp", "--log", "--to", "s:1"], 2, /s:1 takes strings, but application 'rp' takes doubles/],
      [["rp", "--log", "--to", "m:2", "--rate", "0"], 2, /expected requests per second/],
      [["rp", "--log", "--to", "m:2", "--rate", "NaN"], 2, /expected requests per second/],
      [["rp", "--log", "--to", "m:2", "--limit", "0"], 2, /expected a number between 1/],
      [["rp", "--to", "m:2"], 2, /either --from FILE or --log/],
      [["rp", "--log", "--from", exportFile, "--to", "m:2"], 2, /cannot be used with option '--log'/],
      [["rp", "--from", join(home, "missing.jsonl"), "--to", "m:2"], 2, /cannot read .*missing\.jsonl: ENOENT/],
      [["rp", "--from", home, "--to", "m:2"], 2, /is not a file/],
      [["rp", "--log", "--to", "m:4"], 4, /m:4 has no connected replica/],
    ] as const) {
      const r = await cli("replay", ...args);
      expect(r.code, `${args.join(" ")}: ${r.stdout}${r.stderr}`).toBe(code);
      expect(r.stderr).toMatch(message);
    }
    // An application whose log is empty: nothing to send, nothing compared, not an error.
    const empty = await cli("replay", "texts", "--log", "--to", "s:1");
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout).toMatch(/0 sent, 0 answered, 0 errors/);
    expect(empty.stdout).toMatch(/agreement {2}none compared/);
  });
});
