/**
 * The local (process) container manager, driven end to end through its public class with stand-in
 * management/frontend/replica scripts (test/fixtures/local-manager/) in place of the real runtimes.
 * Needs the compiled supervisor: run `npx tsc -p .` first.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { pythonRuntimeDir, runtimeEntry } from "../runtime/shared/package-root.js";
import { RPC_SECRET_ENV, versionSecret } from "../runtime/shared/rpc-auth.js";
import { MIN_RPC_FRAME_BYTES } from "../runtime/shared/frontend-defaults.js";
import { INHERITED_ENV } from "../src/managers/local/replica-env.js";
import { isSupervisorLine } from "../src/log-lines.js";
import { jsonLogLines } from "./support/json-lines.js";
import type { ClusterOptions, ModelDeployment } from "../src/managers/container-manager.js";
import {
  ClusterAlreadyRunningError,
  ClusterNotRunningError,
  LocalContainerManager,
  ManagerError,
  PortInUseError,
  StartupError,
  type LocalManagerOptions,
} from "../src/managers/local/index.js";

const FIXTURES = fileURLToPath(new URL("./fixtures/local-manager/", import.meta.url));
const fixture = (name: string) => [process.execPath, join(FIXTURES, name)];
const COMMANDS = {
  management: fixture("fake-management.mjs"),
  frontend: fixture("fake-frontend.mjs"),
  node: fixture("fake-replica.mjs"),
  python: fixture("fake-replica.mjs"),
};

let home: string;
let managers: LocalContainerManager[] = [];
let blockers: Server[] = [];

function manager(overrides: Partial<LocalManagerOptions> = {}): LocalContainerManager {
  const m = new LocalContainerManager({
    cluster: "test",
    home,
    stopGraceMs: 2000,
    ...overrides,
    componentCommands: { ...COMMANDS, ...overrides.componentCommands },
  });
  managers.push(m);
  return m;
}

function options(overrides: Partial<ClusterOptions> = {}): ClusterOptions {
  return {
    cluster: "test",
    host: "127.0.0.1",
    queryPort: 0,
    managementPort: 0,
    rpcPort: 0,
    maxBodyBytes: 1 << 20,
    startupTimeoutMs: 15_000,
    replicaTimeoutMs: 30_000,
    ...overrides,
  };
}

function deployment(overrides: Partial<ModelDeployment> = {}): ModelDeployment {
  return {
    name: "sum-model",
    version: "1",
    inputType: "doubles",
    framework: "node",
    predictFile: join(FIXTURES, "fake-replica.mjs"),
    predictFunction: "predict",
    modelPath: FIXTURES,
    ...overrides,
  };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
};

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface ReadyInfo {
  pid: number;
  grandchild: number;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  envNames: string[];
  envValues: string[];
}

function readyInfo(m: LocalContainerManager, name: string, version: string, replica: number): ReadyInfo | undefined {
  try {
    return JSON.parse(readFileSync(join(m.paths.readyDir, `${name}-${version}-${replica}`), "utf8")) as ReadyInfo;
  } catch {
    return undefined;
  }
}

/** Waits until exactly `count` replicas of the version run and have written their ready files. */
async function readyReplicas(m: LocalContainerManager, name: string, version: string, count: number) {
  return waitFor(`${count} ready replicas of ${name}:${version}`, async () => {
    const status = await m.status();
    const replicas = status.replicas.filter((r) => r.name === name && r.version === version);
    if (replicas.length !== count || replicas.some((r) => r.state !== "running")) return undefined;
    const infos = replicas.map((r) => readyInfo(m, name, version, r.replica));
    if (infos.some((i, k) => !i || i.pid !== replicas[k]!.pid)) return undefined;
    return infos as ReadyInfo[];
  });
}

function supervisorRecord(m: LocalContainerManager): { pid: number; controlPort: number; controlToken: string } {
  return JSON.parse(readFileSync(m.paths.supervisorFile, "utf8"));
}

async function control(m: LocalContainerManager, method: string, path: string, body?: string, auth = true) {
  const record = supervisorRecord(m);
  const res = await fetch(`http://127.0.0.1:${record.controlPort}${path}`, {
    method,
    headers: auth ? { authorization: `Bearer ${record.controlToken}` } : {},
    ...(body !== undefined ? { body } : {}),
  });
  return { status: res.status, json: (await res.json()) as { error?: string } };
}

async function argsOf(url: string): Promise<string[]> {
  return ((await (await fetch(`${url}/args`)).json()) as { args: string[] }).args;
}

const flagValue = (args: string[], flag: string) => args[args.indexOf(flag) + 1];

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "clipper-local-"));
  managers = [];
  blockers = [];
});

afterEach(async () => {
  for (const m of managers) await m.stopAll({ keepState: false }).catch(() => undefined);
  for (const b of blockers) b.close();
  rmSync(home, { recursive: true, force: true });
});

describe("LocalContainerManager", () => {
  it("starts the management daemon and the frontend with the documented flags, and connects", async () => {
    const m = manager();
    const addresses = await m.startClipper(options({ maxBodyBytes: 12345, replicaTimeoutMs: 4321 }));
    expect(addresses.manager).toBe("local");
    expect(addresses.queryUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(addresses.metricsUrl).toBe(`${addresses.queryUrl}/metrics`);
    expect(addresses.rpcAddress).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    expect(addresses.token).toBeUndefined();
    expect((await fetch(`${addresses.queryUrl}/health`)).status).toBe(200);

    const mgmt = await argsOf(addresses.managementUrl);
    expect(flagValue(mgmt, "--host")).toBe("127.0.0.1");
    expect(flagValue(mgmt, "--port")).toBe(new URL(addresses.managementUrl).port);
    expect(flagValue(mgmt, "--state-dir")).toBe(join(home, "clusters", "test", "state"));
    expect(flagValue(mgmt, "--max-body-bytes")).toBe("12345");
    expect(mgmt).not.toContain("--token-file");

    const fe = await argsOf(addresses.queryUrl);
    expect(flagValue(fe, "--port")).toBe(new URL(addresses.queryUrl).port);
    expect(flagValue(fe, "--rpc-port")).toBe(addresses.rpcAddress.split(":").pop());
    expect(flagValue(fe, "--management-url")).toBe(addresses.managementUrl);
    expect(flagValue(fe, "--replica-timeout-ms")).toBe("4321");
    expect(flagValue(fe, "--rpc-auth")).toBe("plain");
    expect(flagValue(fe, "--rpc-key-file")).toBe(m.paths.rpcKeyFile);
    expect(statSync(m.paths.rpcKeyFile).mode & 0o777).toBe(0o600);
    expect(fe).not.toContain("--max-rpc-frame-bytes");

    const again = manager();
    expect(await again.connect()).toEqual(addresses);
    const status = await again.status();
    expect(status.components.map((c) => [c.component, c.state])).toEqual([
      ["management", "running"],
      ["frontend", "running"],
    ]);
    expect((await again.logs()).map((l) => l.component).sort()).toEqual(["frontend", "management", "supervisor"]);
    expect((await again.logs("frontend"))[0]!.path).toBe(join(home, "clusters", "test", "logs", "frontend.log"));
    await expect(again.logs("nothing")).rejects.toThrow(/no logs for component nothing/);
    await expect(manager().startClipper(options())).rejects.toThrow(ClusterAlreadyRunningError);
    await expect(manager().startClipper(options())).rejects.toThrow(/a cluster named test is already running/);
  });

  it("says clearly when no cluster runs", async () => {
    const m = manager();
    await expect(m.connect()).rejects.toThrow(ClusterNotRunningError);
    await expect(m.connect()).rejects.toThrow("no running cluster named test (start one with `clipper start`)");
    await expect(m.deployModel(deployment(), 1)).rejects.toThrow(/no running cluster named test/);
    await expect(m.stopAll()).rejects.toThrow(/no running cluster named test/);
  });

  it("runs replicas with the documented environment, scales 1 → 3 → 1 stopping the highest first", async () => {
    const m = manager();
    const addresses = await m.startClipper(options());
    const d = deployment({ framework: "python", env: { EXTRA: "x", CLIPPER_PORT: "1" } });
    await m.deployModel(d, 1);
    const [first] = await readyReplicas(m, "sum-model", "1", 1);
    expect(first!.env).toMatchObject({
      CLIPPER_MODEL_NAME: "sum-model",
      CLIPPER_MODEL_VERSION: "1",
      CLIPPER_INPUT_TYPE: "doubles",
      CLIPPER_IP: "127.0.0.1",
      CLIPPER_PORT: addresses.rpcAddress.split(":").pop(),
      CLIPPER_MODEL_PATH: FIXTURES.replace(/\/$/, ""),
      CLIPPER_PREDICT: `${d.predictFile}:predict`,
      CLIPPER_READY_FILE: join(m.paths.readyDir, "sum-model-1-0"),
    });
    expect(first!.env.PYTHONPATH!.split(":")[0]).toBe(pythonRuntimeDir());
    expect(await m.getNumReplicas("sum-model", "1")).toBe(1);

    await m.setNumReplicas("sum-model", "1", 3);
    const three = await readyReplicas(m, "sum-model", "1", 3);
    expect(new Set(three.map((i) => i.pid)).size).toBe(3);
    expect(three[0]!.pid).toBe(first!.pid);
    expect(await m.getNumReplicas("sum-model", "1")).toBe(3);

    await m.setNumReplicas("sum-model", "1", 1);
    const status = await m.status();
    expect(status.replicas.map((r) => [r.replica, r.pid])).toEqual([[0, first!.pid]]);
    for (const gone of three.slice(1)) {
      expect(alive(gone.pid)).toBe(false);
      expect(alive(gone.grandchild)).toBe(false);
    }
    const saved = JSON.parse(readFileSync(m.paths.deploymentsFile, "utf8"));
    expect(saved.deployments).toHaveLength(1);
    expect(saved.deployments[0].replicas).toBe(1);
    expect(statSync(m.paths.deploymentsFile).mode & 0o777).toBe(0o600);
    expect((await m.logs("sum-model")).map((l) => l.component)).toEqual(["sum-model-1-0", "sum-model-1-1", "sum-model-1-2"]);
    expect(readFileSync(join(m.paths.logsDir, "sum-model-1-0.log"), "utf8")).toContain("replica sum-model:1 ready");
  });

  it("restarts a replica killed with SIGKILL and counts the restart", async () => {
    const m = manager();
    await m.startClipper(options());
    await m.deployModel(deployment(), 1);
    const [before] = await readyReplicas(m, "sum-model", "1", 1);
    process.kill(before!.pid, "SIGKILL");
    const after = await waitFor("a restarted replica", async () => {
      const [r] = (await m.status()).replicas;
      return r && r.state === "running" && r.pid !== before!.pid && r.restarts === 1 ? r : undefined;
    });
    expect(alive(after.pid!)).toBe(true);
    expect(alive(before!.grandchild)).toBe(false);
    await readyReplicas(m, "sum-model", "1", 1);
    // The supervisor's lines, in its own log and in the replica's: one JSON object each, no key twice
    // (the supervised component is `child`; `component` stays the writer's name).
    const replicaLog = jsonLogLines(readFileSync(join(m.paths.logsDir, "sum-model-1-0.log"), "utf8"));
    const supervisorLog = jsonLogLines(readFileSync(join(m.paths.logsDir, "supervisor.log"), "utf8"));
    for (const { line, duplicates } of [...replicaLog, ...supervisorLog]) expect(duplicates, line).toEqual([]);
    expect(supervisorLog.map((l) => l.value)).toContainEqual(expect.objectContaining({
      level: 40, component: "supervisor", child: "sum-model-1-0", signal: "SIGKILL", msg: "exited unexpectedly; restarting",
    }));
    const ours = replicaLog.filter((l) => l.value.component === "supervisor").map((l) => l.value);
    expect(ours).toEqual([
      { level: 30, time: expect.any(Number), component: "supervisor", child: "sum-model-1-0", msg: expect.stringMatching(/^starting sum-model-1-0: /) },
      { level: 40, time: expect.any(Number), component: "supervisor", child: "sum-model-1-0", msg: "sum-model-1-0 was killed by SIGKILL; restarting in 250 ms" },
      { level: 30, time: expect.any(Number), component: "supervisor", child: "sum-model-1-0", msg: expect.stringMatching(/^starting sum-model-1-0: /) },
    ]);
    expect(readFileSync(join(m.paths.logsDir, "sum-model-1-0.log"), "utf8").split("\n").filter(isSupervisorLine)).toHaveLength(3);
  });

  it("stops every process it started, keeps state unless asked not to", async () => {
    const m = manager();
    await m.startClipper(options());
    await m.deployModel(deployment(), 2);
    const replicas = await readyReplicas(m, "sum-model", "1", 2);
    const status = await m.status();
    const pids = [
      supervisorRecord(m).pid,
      ...status.components.map((c) => c.pid!),
      ...replicas.flatMap((r) => [r.pid, r.grandchild]),
    ];
    expect(pids.every(alive)).toBe(true);
    await m.stopAll();
    expect(pids.filter(alive)).toEqual([]);
    expect(existsSync(m.paths.supervisorFile)).toBe(false);
    expect(existsSync(m.paths.deploymentsFile)).toBe(true);
    await expect(m.stopAll()).rejects.toThrow(ClusterNotRunningError);
    expect((await m.logs()).map((l) => l.component)).toContain("sum-model-1-1");
    await m.stopAll({ keepState: false });
    expect(existsSync(m.paths.dir)).toBe(false);
  });

  it("shuts down the same way when the supervisor gets SIGTERM", async () => {
    const m = manager();
    await m.startClipper(options());
    await m.deployModel(deployment(), 1);
    const [replica] = await readyReplicas(m, "sum-model", "1", 1);
    const supervisor = supervisorRecord(m).pid;
    const components = (await m.status()).components.map((c) => c.pid!);
    process.kill(supervisor, "SIGTERM");
    await waitFor("the supervisor to exit", () => !alive(supervisor));
    expect([...components, replica!.pid, replica!.grandchild].filter(alive)).toEqual([]);
    expect(existsSync(m.paths.supervisorFile)).toBe(false);
  });

  it("sends SIGKILL to a replica that ignores SIGTERM after the grace period", async () => {
    const m = manager({ stopGraceMs: 300 });
    await m.startClipper(options());
    await m.deployModel(deployment({ env: { FAKE_IGNORE_SIGTERM: "1" } }), 1);
    const [replica] = await readyReplicas(m, "sum-model", "1", 1);
    const started = Date.now();
    await m.setNumReplicas("sum-model", "1", 0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(alive(replica!.pid)).toBe(false);
    expect((await m.status()).replicas).toEqual([]);
  });

  it("brings back the deployments when a killed supervisor is started again, stopping its leftovers", async () => {
    const m = manager();
    const first = await m.startClipper(options());
    await m.deployModel(deployment(), 2);
    const old = await readyReplicas(m, "sum-model", "1", 2);
    const oldComponents = (await m.status()).components.map((c) => c.pid!);
    process.kill(supervisorRecord(m).pid, "SIGKILL");
    await expect(m.connect()).rejects.toThrow("no running cluster named test");

    const port = (url: string) => Number(new URL(url).port);
    const again = await m.startClipper(
      options({
        queryPort: port(first.queryUrl),
        managementPort: port(first.managementUrl),
        rpcPort: Number(first.rpcAddress.split(":").pop()),
      }),
    );
    expect(again).toEqual(first);
    const restored = await readyReplicas(m, "sum-model", "1", 2);
    expect([...oldComponents, ...old.flatMap((r) => [r.pid, r.grandchild])].filter(alive)).toEqual([]);
    expect(restored.map((r) => r.pid)).not.toContain(old[0]!.pid);
    expect(await m.getNumReplicas("sum-model", "1")).toBe(2);
  });

  it("stops what a supervisor killed with SIGKILL left running (daemon, frontend, replicas and theirs)", async () => {
    const m = manager();
    await m.startClipper(options());
    await m.deployModel(deployment(), 2);
    const replicas = await readyReplicas(m, "sum-model", "1", 2);
    const left = [...(await m.status()).components.map((c) => c.pid!), ...replicas.flatMap((r) => [r.pid, r.grandchild])];
    process.kill(supervisorRecord(m).pid, "SIGKILL");
    await expect(m.connect()).rejects.toThrow("no running cluster named test");
    expect(left.filter(alive)).toHaveLength(left.length);

    await m.stopAll({ keepState: true });
    expect(left.filter(alive)).toEqual([]);
    expect(existsSync(m.paths.childrenFile)).toBe(false);
    expect(JSON.parse(readFileSync(m.paths.deploymentsFile, "utf8")).deployments[0].replicas).toBe(2);
    await expect(m.stopAll({ keepState: true })).rejects.toThrow(ClusterNotRunningError);
  });

  it("refuses ports that are in use, naming the flag", async () => {
    const blocker = createServer();
    blockers.push(blocker);
    await new Promise<void>((r) => blocker.listen({ host: "127.0.0.1", port: 0 }, r));
    const busy = (blocker.address() as { port: number }).port;
    const m = manager();
    await expect(m.startClipper(options({ queryPort: busy }))).rejects.toThrow(
      `port ${busy} is already in use (choose another with --query-port)`,
    );
    await expect(m.startClipper(options({ rpcPort: busy }))).rejects.toThrow(PortInUseError);
    await expect(m.startClipper(options({ managementPort: busy }))).rejects.toThrow(/--management-port/);
    expect(existsSync(m.paths.supervisorFile)).toBe(false);
  });

  it("refuses an RPC frame limit the frontend would refuse at start", async () => {
    const m = manager();
    await expect(m.startClipper(options({ maxRpcFrameBytes: MIN_RPC_FRAME_BYTES - 1 }))).rejects.toMatchObject({
      reason: "INVALID_ARGUMENT", message: expect.stringMatching(/maxRpcFrameBytes/),
    });
    expect(existsSync(m.paths.supervisorFile)).toBe(false);
  });

  it("answers 400 with a message for bad control-API bodies", async () => {
    const m = manager();
    await m.startClipper(options());
    let r = await control(m, "POST", "/deployments/replicas", JSON.stringify({ name: "Bad_Name", version: "1", replicas: -1 }));
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(/name: model name 'Bad_Name' must consist of lower case/);
    expect(r.json.error).toMatch(/replicas:/);
    r = await control(m, "POST", "/deployments", "{not json");
    expect(r).toEqual({ status: 400, json: { error: "request body is not valid JSON" } });
    r = await control(m, "POST", "/deployments", JSON.stringify({ deployment: { name: "m" }, replicas: 1 }));
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(/deployment\.version/);
    r = await control(m, "POST", "/models/stop", JSON.stringify({ models: { m: "1" } }));
    expect(r.status).toBe(400);
    r = await control(m, "POST", "/models/delete", JSON.stringify({ models: { Bad: [] } }));
    expect(r.status).toBe(400);
    // Names of Object.prototype's members are names like any other: nothing of that name, nothing deleted.
    for (const body of [`{"models": {"constructor": []}}`, `{"models": {"__proto__": ["1"]}}`]) {
      r = await control(m, "POST", "/models/delete", body);
      expect([r.status, r.json]).toEqual([200, { stopped: [] }]);
    }
    r = await control(m, "GET", "/models/delete");
    expect(r.status).toBe(405);
    r = await control(m, "POST", "/shutdown", JSON.stringify({ keepState: "yes" }));
    expect(r.status).toBe(400);
    r = await control(m, "GET", "/status", undefined, false);
    expect(r.status).toBe(401);
    r = await control(m, "POST", "/deployments/replicas", JSON.stringify({ name: "nope", version: "1", replicas: 2 }));
    expect(r.status).toBe(404);
    await expect(m.setNumReplicas("nope", "1", 2)).rejects.toThrow("no deployment of model nope version 1 in cluster test; deploy it first");
    await expect(m.setNumReplicas("nope", "1", -1)).rejects.toThrow(ManagerError);
    await expect(m.deployModel(deployment({ predictFile: "/does/not/exist.py" }), 1)).rejects.toThrow(
      "predict file /does/not/exist.py does not exist",
    );
    await expect(m.deployModel(deployment({ name: "Bad" }), 1)).rejects.toThrow(/model name 'Bad'/);
  });

  it("refuses a deployment whose files would collide with another's", async () => {
    const m = manager();
    await m.startClipper(options());
    await m.deployModel(deployment({ name: "a-b", version: "1" }), 0);
    await expect(m.deployModel(deployment({ name: "a", version: "b-1" }), 1)).rejects.toThrow(
      /would share log and readiness files with model a-b version 1/,
    );
  });

  it("stops the named model versions, then all of them, keeping their deployments; delete forgets them", async () => {
    const m = manager();
    await m.startClipper(options());
    await m.deployModel(deployment({ name: "m1", version: "1" }), 1);
    await m.deployModel(deployment({ name: "m1", version: "2" }), 1);
    await m.deployModel(deployment({ name: "m2", version: "1" }), 1);
    const [m1v1] = await readyReplicas(m, "m1", "1", 1);
    const versions = async () => (await m.status()).replicas.map((r) => `${r.name}:${r.version}`).sort();
    await m.stopModels({ m1: ["1"] });
    expect(await versions()).toEqual(["m1:2", "m2:1"]);
    expect(alive(m1v1!.pid)).toBe(false);
    await m.stopModels({ m2: [] });
    expect(await versions()).toEqual(["m1:2"]);
    expect(await m.getNumReplicas("m2", "1")).toBe(0);
    await m.stopAllModelContainers();
    expect(await versions()).toEqual([]);
    const recorded = () =>
      JSON.parse(readFileSync(m.paths.deploymentsFile, "utf8")).deployments.map(
        (d: { deployment: ModelDeployment; replicas: number }) => `${d.deployment.name}:${d.deployment.version}=${d.replicas}`,
      );
    expect(recorded()).toEqual(["m1:1=0", "m1:2=0", "m2:1=0"]);
    await m.setNumReplicas("m1", "1", 1);
    expect(await versions()).toEqual(["m1:1"]);
    await m.deleteModels({ m1: [] });
    expect(await versions()).toEqual([]);
    expect(recorded()).toEqual(["m2:1=0"]);
    await expect(m.setNumReplicas("m1", "1", 1)).rejects.toThrow(/no deployment of model m1 version 1/);
  });

  it("replaces the replicas when a deployment changes", async () => {
    const m = manager();
    await m.startClipper(options());
    await m.deployModel(deployment(), 1);
    const [before] = await readyReplicas(m, "sum-model", "1", 1);
    await m.deployModel(deployment({ env: { FAKE_GENERATION: "2" } }), 1);
    const [after] = await readyReplicas(m, "sum-model", "1", 1);
    expect(after!.pid).not.toBe(before!.pid);
    expect(after!.env.FAKE_GENERATION).toBe("2");
    expect(alive(before!.pid)).toBe(false);
  });

  it("hands each replica its version's RPC secret and only the allow-listed part of the CLI's environment", async () => {
    const planted = {
      CLIPPER_TEST_PLANTED_SECRET: "planted-value-4f1c", AWS_SECRET_ACCESS_KEY: "aws-value-9e2d", GITHUB_TOKEN: "gh-value-7a3b", LC_TIME: "C",
      HTTPS_PROXY: "http://proxy.example:3128", no_proxy: "localhost", HF_HOME: "/tmp/hf-cache", PYTHONPATH: "/user/modules",
    };
    Object.assign(process.env, planted);
    let m: LocalContainerManager;
    try {
      m = manager();
      await m.startClipper(options());
    } finally {
      for (const name of Object.keys(planted)) delete process.env[name];
    }
    await m.deployModel(deployment({ env: { MODEL_SETTING: "from --env" } }), 1);
    await m.deployModel(deployment({ name: "other", inputType: "strings", framework: "python" }), 1);
    const [replica] = await readyReplicas(m, "sum-model", "1", 1);
    const [other] = await readyReplicas(m, "other", "1", 1);
    const key = readFileSync(m.paths.rpcKeyFile, "utf8").trim();
    const controlToken = supervisorRecord(m).controlToken;

    expect(replica!.env[RPC_SECRET_ENV]).toBe(versionSecret(key, { name: "sum-model", version: "1", inputType: "doubles" }));
    expect(other!.env[RPC_SECRET_ENV]).toBe(versionSecret(key, { name: "other", version: "1", inputType: "strings" }));
    expect(replica!.envNames).toContain("MODEL_SETTING");
    expect(replica!.envValues).toContain("from --env");
    expect(replica!.envNames).toContain("PATH");
    expect(replica!.envNames).toContain("LC_TIME");
    // What models downloading weights behind a proxy need comes through; the user's modules come after the runtime.
    for (const name of ["HTTPS_PROXY", "no_proxy", "HF_HOME"]) expect(replica!.envNames).toContain(name);
    expect(replica!.envValues).toContain(planted.HTTPS_PROXY);
    expect(replica!.env.PYTHONPATH).toBe("/user/modules");
    expect(other!.env.PYTHONPATH).toBe(`${pythonRuntimeDir()}${delimiter}/user/modules`);
    for (const name of ["CLIPPER_TEST_PLANTED_SECRET", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "CLIPPER_HOME"]) expect(replica!.envNames).not.toContain(name);
    for (const value of [key, controlToken, planted.CLIPPER_TEST_PLANTED_SECRET, planted.AWS_SECRET_ACCESS_KEY, planted.GITHUB_TOKEN]) {
      expect(replica!.envValues.some((v) => v.includes(value))).toBe(false);
    }
    const unexpected = replica!.envNames.filter(
      (n) => !n.startsWith("CLIPPER_") && !n.startsWith("LC_") && !Object.hasOwn(INHERITED_ENV, n) &&
        !["MODEL_SETTING", "PYTHONUNBUFFERED"].includes(n),
    );
    expect(unexpected).toEqual([]);

    // Neither the records the supervisor keeps nor its log hold a secret.
    for (const file of [m.paths.deploymentsFile, m.paths.childrenFile, m.paths.configFile, join(m.paths.logsDir, "supervisor.log")]) {
      expect(readFileSync(file, "utf8")).not.toContain(replica!.env[RPC_SECRET_ENV]);
      expect(readFileSync(file, "utf8")).not.toContain(key);
    }
  });

  it("runs without an RPC key, and hands replicas no secret, with rpcAuth none", async () => {
    const m = manager();
    const addresses = await m.startClipper(options({ rpcAuth: "none", maxRpcFrameBytes: 65536 }));
    const fe = await argsOf(addresses.queryUrl);
    expect(flagValue(fe, "--rpc-auth")).toBe("none");
    expect(fe).not.toContain("--rpc-key-file");
    expect(flagValue(fe, "--max-rpc-frame-bytes")).toBe("65536");
    expect(existsSync(m.paths.rpcKeyFile)).toBe(false);
    await m.deployModel(deployment(), 1);
    const [replica] = await readyReplicas(m, "sum-model", "1", 1);
    expect(replica!.envNames).not.toContain(RPC_SECRET_ENV);
  });

  it("creates a 0600 token and passes --token-file when listening beyond loopback", async () => {
    const m = manager();
    const addresses = await m.startClipper(options({ host: "0.0.0.0" }));
    expect(addresses.queryUrl).toMatch(/^http:\/\/127\.0\.0\.1:/);
    expect(addresses.token).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(m.paths.tokenFile).mode & 0o777).toBe(0o600);
    const mgmt = await argsOf(addresses.managementUrl);
    expect(flagValue(mgmt, "--host")).toBe("0.0.0.0");
    expect(flagValue(mgmt, "--token-file")).toBe(m.paths.tokenFile);
    expect(flagValue(await argsOf(addresses.queryUrl), "--token-file")).toBe(m.paths.tokenFile);
    expect((await m.connect()).token).toBe(addresses.token);
  });

  it("names the component that did not come up and its log, and leaves nothing running", async () => {
    const m = manager({ componentCommands: { frontend: fixture("silent.mjs") } });
    const error = await m.startClipper(options({ startupTimeoutMs: 2500 })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StartupError);
    expect((error as StartupError).component).toBe("frontend");
    expect((error as Error).message).toMatch(
      /^the query frontend did not answer GET http:\/\/127\.0\.0\.1:\d+\/health within 2500 ms \(connection refused\); see its log: .*\/clusters\/test\/logs\/frontend\.log$/,
    );
    const silent = Number(readFileSync(join(m.paths.dir, "silent.pid"), "utf8"));
    const management = Number(readFileSync(join(m.paths.dir, "management.pid"), "utf8"));
    expect([silent, management].filter(alive)).toEqual([]);
    expect(existsSync(m.paths.supervisorFile)).toBe(false);
    await expect(m.connect()).rejects.toThrow(ClusterNotRunningError);
  });

  it("waits for the cluster on its injected clock: an hour's startup timeout passes in a few steps", async () => {
    let now = 0;
    const clock = { now: () => now, sleep: async (ms: number) => { now += 20 * 60_000; await new Promise((r) => setTimeout(r, Math.min(ms, 100))); } };
    const m = manager({ componentCommands: { frontend: fixture("silent.mjs") }, clock });
    const error = await m.startClipper(options({ startupTimeoutMs: 3_600_000 })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StartupError);
    // Which part is named first depends on how far the real processes got in those few real steps
    // (a loaded machine may not have the daemon up yet); the hour-long timeout is what is tested.
    expect((error as Error).message).toMatch(/^the (query frontend did not answer|management daemon did not answer|supervisor did not report).* within 3600000 ms/);
    expect(existsSync(m.paths.supervisorFile)).toBe(false);
  });

  it("reports how a crashing component exited", async () => {
    const m = manager({ componentCommands: { management: fixture("crash.mjs") } });
    const error = await m.startClipper(options({ startupTimeoutMs: 2000 })).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(
      /^the management daemon did not answer GET .*\/admin\/ping within 2000 ms \(connection refused; it exited with code 3, restarted \d+ times; last log line: crash\.mjs: failing on purpose\); see its log: .*management\.log$/,
    );
    expect(readFileSync((error as StartupError).logFile, "utf8")).toContain("crash.mjs: failing on purpose");
  });

  it("lets only one of two concurrent starts of a cluster through", async () => {
    const results = await Promise.allSettled([manager().startClipper(options()), manager().startClipper(options())]);
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    const failed = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(String(failed.reason)).toMatch(/is being started by another process|is already running/);
  });

  const built = ["management/main.js", "frontend/main.js", "container-node/main.js"].every((f) => existsSync(runtimeEntry(f)));
  it.skipIf(!built)("runs the real management daemon, frontend and Node model runtime (when built)", async () => {
    const m = new LocalContainerManager({ cluster: "real", home, stopGraceMs: 3000 });
    managers.push(m);
    const addresses = await m.startClipper(options({ cluster: "real" }));
    expect(await (await fetch(`${addresses.managementUrl}/admin/ping`)).text()).toContain("PONG");
    const modelDir = join(home, "model");
    rmSync(modelDir, { recursive: true, force: true });
    await import("node:fs").then((fs) => fs.mkdirSync(modelDir));
    writeFileSync(join(modelDir, "model.mjs"), "export function predict(xs) { return xs.map((x) => String(x.length)); }\n");
    await m.deployModel(deployment({ name: "len", predictFile: join(modelDir, "model.mjs"), modelPath: modelDir }), 1);
    await waitFor("the Node replica to be ready", async () => (await m.statusDetails()).replicas[0]?.ready, 20_000);
    const pids = (await m.status()).components.map((c) => c.pid!);
    await m.stopAll({ keepState: false });
    expect(pids.filter(alive)).toEqual([]);
  });
});
