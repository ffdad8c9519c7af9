/**
 * The Docker manager's rules against an in-memory Docker Engine (test/support/fake-docker.ts): the
 * shared lifecycle contract, then what is the Docker manager's own: a start that fails or times out
 * removes what it created and nothing else, ownership by label, stop order, deployment records
 * (the desired count across stop and start, an update cut short), the RPC credential of replicas
 * brought back, errors mapped. No daemon, no server, no process; readiness runs on a fake clock.
 */
import { describe, expect, it } from "vitest";
import { ClipperError } from "../../src/errors.js";
import type { BuildEvent } from "../../src/images/types.js";
import type { ClusterOptions, ModelDeployment } from "../../src/managers/container-manager.js";
import { ManagerError } from "../../src/managers/errors.js";
import { RPC_KEY_FILE, TOKEN_FILE } from "../../src/managers/cluster-spec.js";
import { DockerContainerManager, type DockerManagerOptions } from "../../src/managers/docker/docker-manager.js";
import { EngineError } from "../../src/managers/docker/engine.js";
import { LABEL, names, RECORD_LABEL, storedDeployment } from "../../src/managers/docker/labels.js";
import { deploymentRecordSpec } from "../../src/managers/docker/specs.js";
import { RPC_SECRET_ENV, versionSecret } from "../../runtime/shared/rpc-auth.js";
import { describeLifecycle } from "../support/lifecycle-contract.js";
import { STOP_GRACE_SECONDS } from "../../src/managers/common/index.js";
import { FakeClock, FakeDockerEngine } from "../support/fake-docker.js";

const IMAGES = ["model:1", "model:2"];

function clusterOptions(cluster: string, extra: Partial<ClusterOptions> = {}): ClusterOptions {
  return {
    cluster, host: "127.0.0.1", queryPort: 0, managementPort: 0, rpcPort: 0,
    maxBodyBytes: 1 << 20, startupTimeoutMs: 5_000, replicaTimeoutMs: 3_000, ...extra,
  };
}

function deployment(name: string, version: string, variant = 0): ModelDeployment {
  return {
    name, version, inputType: "doubles", framework: "python", predictFile: "/m/predict.py", predictFunction: "predict", modelPath: "/m",
    image: "model:1", ...(variant ? { env: { VARIANT: String(variant) } } : {}),
  };
}

function setup(cluster = "unit", options: Partial<DockerManagerOptions> = {}) {
  const fake = new FakeDockerEngine({ images: IMAGES });
  const clock = new FakeClock();
  const manager = new DockerContainerManager({ cluster, engine: fake, probe: fake.probe, clock, stopGraceSeconds: 1, ...options });
  const running = (name: string, version: string) =>
    fake.namesWith({ [LABEL.cluster]: cluster, [LABEL.role]: "model", [LABEL.modelName]: name, [LABEL.modelVersion]: version })
      .filter((n) => fake.byName(n)?.state === "running").length;
  return { fake, clock, manager, running, options: clusterOptions(cluster) };
}

async function failure(p: Promise<unknown>): Promise<ManagerError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof ManagerError)) throw new Error(`expected a ManagerError, got ${String(err)}`);
  return err;
}

describeLifecycle("Docker (fake engine)", async () => {
  const s = setup("contract");
  return { manager: s.manager, options: s.options, deployment, running: async (n, v) => s.running(n, v), close: async () => undefined };
});

describe("the Docker manager on a fake engine", () => {
  it("starts from a built runtime image, reports its build, hands the RPC key to the frontend only", async () => {
    const events: BuildEvent[] = [];
    const { fake, manager, options } = setup("start", { runtimeBaseImage: "base:node20", onProgress: (e) => events.push(e) });
    const addresses = await manager.startClipper(options);
    expect(fake.builds).toEqual([{ baseImage: "base:node20" }]);
    expect(events.map((e) => e.type)).toEqual(["step"]);
    const management = fake.byName(names.management("start"))!;
    const frontend = fake.byName(names.frontend("start"))!;
    expect(addresses.managementUrl).toBe(`http://127.0.0.1:${management.ports[1338]}`);
    expect(addresses.queryUrl).toBe(`http://127.0.0.1:${frontend.ports[1337]}`);
    expect(addresses.token).toBeUndefined();
    expect(frontend.files.get(RPC_KEY_FILE)?.trim()).toMatch(/.{16,}/);
    expect([...management.files.keys()]).toEqual([]);
    expect(await manager.connect()).toEqual(addresses);
  });

  it("uses a given runtime image without building, and refuses one the host lacks", async () => {
    const { fake, manager, options } = setup("given", { runtimeImage: "model:2" });
    await manager.startClipper(options);
    expect(fake.builds).toEqual([]);
    expect(fake.byName(names.frontend("given"))!.spec.Image).toBe("model:2");
    const missing = setup("missing", { runtimeImage: "nowhere:1" });
    expect((await failure(missing.manager.startClipper(missing.options))).reason).toBe("NOT_FOUND");
    expect(missing.fake.containers.size + missing.fake.networks.size + missing.fake.volumes.size).toBe(0);
  });

  it("a cluster beyond loopback gets a token in both frontends, read back by connect", async () => {
    const { fake, manager } = setup("wide");
    const addresses = await manager.startClipper(clusterOptions("wide", { host: "0.0.0.0" }));
    expect(addresses.token).toMatch(/^[0-9a-f]{64}$/);
    expect(fake.byName(names.management("wide"))!.files.get(TOKEN_FILE)?.trim()).toBe(addresses.token);
    expect(fake.byName(names.frontend("wide"))!.files.get(TOKEN_FILE)?.trim()).toBe(addresses.token);
    expect((await manager.connect()).token).toBe(addresses.token);
  });

  it("a frontend that exits fails the start with its log, and the start removes what it created", async () => {
    const { fake, manager, options } = setup("crash");
    fake.onStart.push({ when: (spec) => spec.name === names.frontend("crash"), then: { exit: 3, logs: ["", "bad flag --x"] } });
    const err = await failure(manager.startClipper(options));
    expect(err.reason).toBe("STARTUP_FAILED");
    expect(err.message).toContain("the query frontend (container clipper-crash-query-frontend) exited with code 3");
    expect(err.message).toContain("  bad flag --x");
    expect(fake.containers.size + fake.networks.size + fake.volumes.size).toBe(0);
  });

  it("a frontend that never answers times out on the injected clock, naming the URL", async () => {
    const { fake, manager, options, clock } = setup("silent", { probe: async () => "connect ECONNREFUSED" });
    const before = clock.now();
    const err = await failure(manager.startClipper({ ...options, startupTimeoutMs: 3_000 }));
    expect(err.reason).toBe("STARTUP_FAILED");
    expect(err.message).toMatch(/did not answer GET http:\/\/127\.0\.0\.1:\d+\/admin\/ping within 3000 ms \(connect ECONNREFUSED\)/);
    expect(clock.now() - before).toBe(3_000);
    expect(fake.containers.size).toBe(0);
  });

  it("a failed start keeps what it did not create: a network and volume of ours left behind, and every other container", async () => {
    const { fake, manager, options } = setup("left");
    await fake.createNetwork(names.network("left"), { [LABEL.cluster]: "left" });
    await fake.createVolume(names.volume("left"), { [LABEL.cluster]: "left" });
    await fake.createContainer({ name: "someone-else", Image: "model:1", Labels: {}, HostConfig: {} });
    fake.onStart.push({ when: (spec) => spec.name === names.management("left"), then: { fail: "no space left on device" } });
    const err = await failure(manager.startClipper(options));
    expect(err.reason).toBe("CONTROL_API");
    expect(err.message).toContain("no space left on device");
    expect([...fake.networks.values()].map((n) => n.name)).toEqual([names.network("left")]);
    expect([...fake.volumes.keys()]).toEqual([names.volume("left")]);
    expect([...fake.containers.values()].map((c) => c.name)).toEqual(["someone-else"]);
  });

  it("refuses a network of the same name that is not ours, and a second start of a running cluster", async () => {
    const { fake, manager, options } = setup("taken");
    await fake.createNetwork(names.network("taken"), {});
    expect((await failure(manager.startClipper(options))).reason).toBe("CONFLICT");
    expect(fake.containers.size).toBe(0);
    fake.networks.clear();
    await manager.startClipper(options);
    expect((await failure(manager.startClipper(options))).reason).toBe("CLUSTER_ALREADY_RUNNING");
  });

  it("stops the autoscaler, then replicas, then the frontend, then the management daemon, and only this cluster's containers", async () => {
    const { fake, manager, options } = setup("order");
    await manager.startClipper(options);
    await manager.deployModel(deployment("m", "1"), 2);
    await fake.createContainer({ name: "unlabelled", Image: "model:1", Labels: {}, HostConfig: {} });
    await fake.createContainer({ name: "other-cluster", Image: "model:1", Labels: { [LABEL.cluster]: "other", [LABEL.role]: "model" }, HostConfig: {} });
    fake.events.length = 0;
    await manager.stopAll({ keepState: false });
    const removed = fake.events.filter((e) => e.startsWith("remove "));
    // The autoscaler goes first: nothing may scale a replica up while the cluster stops.
    expect(removed[0]).toBe("remove clipper-order-autoscaler");
    expect(removed.slice(1, 4).sort()).toEqual(["remove clipper-order-m-1-0", "remove clipper-order-m-1-1", "remove clipper-order-m-1-deployment"]);
    expect(removed.slice(4)).toEqual(["remove clipper-order-query-frontend", "remove clipper-order-management"]);
    expect([...fake.containers.values()].map((c) => c.name).sort()).toEqual(["other-cluster", "unlabelled"]);
    expect(fake.networks.size + fake.volumes.size).toBe(0);
  });

  it("scales up and down by replica number, removing the highest first", async () => {
    const { fake, manager, options } = setup("scale");
    await manager.startClipper(options);
    await manager.deployModel(deployment("m", "1"), 3);
    await manager.setNumReplicas("m", "1", 1);
    expect(fake.namesWith({ [LABEL.role]: "model" })).toEqual(["clipper-scale-m-1-0"]);
    const record = fake.byName(names.deployment("scale", "m", "1"))!;
    expect(record.state).toBe("created");
    expect(record.spec.Labels[RECORD_LABEL.replicas]).toBe("1");
  });

  it("gives a replica it removes 30 s to drain by default, and creates replicas with that StopTimeout", async () => {
    const { fake, manager, options } = setup("grace", { stopGraceSeconds: undefined });
    await manager.startClipper(options);
    await manager.deployModel(deployment("m", "1"), 2);
    expect(fake.byName("clipper-grace-m-1-1")!.spec.StopTimeout).toBe(STOP_GRACE_SECONDS);
    await manager.setNumReplicas("m", "1", 1);
    expect(STOP_GRACE_SECONDS).toBe(30);
    const replicaStops = () => fake.stops.filter((s) => !s.name.endsWith("-deployment")); // not the record's rewrite
    expect(replicaStops()).toEqual([{ name: "clipper-grace-m-1-1", graceSeconds: 30 }]);
    // The grace stays configurable.
    const quick = setup("quick", { stopGraceSeconds: 2 });
    await quick.manager.startClipper(quick.options);
    await quick.manager.deployModel(deployment("m", "1"), 1);
    expect(quick.fake.byName("clipper-quick-m-1-0")!.spec.StopTimeout).toBe(2);
    await quick.manager.setNumReplicas("m", "1", 0);
    expect(quick.fake.stops.filter((s) => !s.name.endsWith("-deployment"))).toEqual([{ name: "clipper-quick-m-1-0", graceSeconds: 2 }]);
  });

  it("replicas brought back by start hold the new cluster's RPC credential; a count of 0 stays stopped", async () => {
    const { fake, manager, options } = setup("restore");
    await manager.startClipper(options);
    await manager.deployModel(deployment("m", "1"), 1);
    await manager.deployModel(deployment("n", "1"), 1);
    await manager.stopModels({ n: [] });
    const secretOf = (name: string) => fake.byName(name)!.spec.Env!.find((e) => e.startsWith(`${RPC_SECRET_ENV}=`));
    const before = secretOf("clipper-restore-m-1-0");
    await manager.stopAll({ keepState: true });
    expect(fake.namesWith({ [LABEL.cluster]: "restore" })).toEqual([names.deployment("restore", "m", "1"), names.deployment("restore", "n", "1")]);
    expect((await failure(manager.stopAll({ keepState: true }))).reason).toBe("CLUSTER_NOT_RUNNING");
    await manager.startClipper(options);
    const key = fake.byName(names.frontend("restore"))!.files.get(RPC_KEY_FILE)!.trim();
    expect(secretOf("clipper-restore-m-1-0")).toBe(`${RPC_SECRET_ENV}=${versionSecret(key, { name: "m", version: "1", inputType: "doubles" })}`);
    expect(secretOf("clipper-restore-m-1-0")).not.toBe(before);
    expect(await manager.getNumReplicas("n", "1")).toBe(0);
    await manager.setNumReplicas("n", "1", 1);
    expect(await manager.getNumReplicas("n", "1")).toBe(1);
  });

  it("a start that cannot bring a recorded model back says which, and leaves its record", async () => {
    const { fake, manager, options } = setup("gone");
    await manager.startClipper(options);
    await manager.deployModel({ ...deployment("m", "1"), image: "model:2" }, 1);
    await manager.stopAll({ keepState: true });
    fake.images.delete("model:2");
    const err = await failure(manager.startClipper(options));
    expect(err.reason).toBe("STARTUP_FAILED");
    expect(err.message).toContain("could not bring back 1 replica of model m version 1");
    expect(fake.namesWith({ [LABEL.cluster]: "gone" })).toEqual([names.deployment("gone", "m", "1")]);
  });

  it("a record that asks for more than 64 replicas fails the start instead of running them", async () => {
    const { fake, manager, options } = setup("greedy");
    const d = storedDeployment({ ...deployment("m", "1"), image: "model:1" });
    await fake.createNetwork(names.network("greedy"), { [LABEL.cluster]: "greedy" });
    await fake.createContainer(deploymentRecordSpec("greedy", d, { replicas: 10_000, generation: 1 }));
    await fake.removeNetwork(names.network("greedy"));
    const err = await failure(manager.startClipper(options));
    expect(err.reason).toBe("STARTUP_FAILED");
    expect(err.message).toMatch(/could not bring back 10000 replicas of model m version 1: the number of replicas must be an integer from 0 to 64/);
    expect(fake.namesWith({ [LABEL.role]: "model" })).toEqual([]);
  });

  it("an update of a record cut short: the newest generation wins, and the next write leaves one record", async () => {
    const { fake, manager, options } = setup("crashy");
    await manager.startClipper(options);
    await manager.deployModel(deployment("m", "1"), 1);
    // What a process killed between creating the new record and removing the old one leaves.
    const d = storedDeployment({ ...deployment("m", "1"), image: "model:1" });
    await fake.createContainer(deploymentRecordSpec("crashy", d, { replicas: 3, generation: 9 }, `${names.deployment("crashy", "m", "1")}-9`));
    await manager.stopAll({ keepState: true });
    await manager.startClipper(options);
    expect(await manager.getNumReplicas("m", "1")).toBe(3);
    await manager.setNumReplicas("m", "1", 2);
    expect(fake.namesWith({ [LABEL.role]: "model_deployment" })).toEqual([names.deployment("crashy", "m", "1")]);
    expect(fake.byName(names.deployment("crashy", "m", "1"))!.spec.Labels[RECORD_LABEL.generation]).toBe("10");
  });

  it("a replica name taken by a container that is not ours is a CONFLICT, and nothing half-made stays", async () => {
    const { fake, manager, options } = setup("clash");
    await manager.startClipper(options);
    await fake.createContainer({ name: "clipper-clash-m-1-1", Image: "model:1", Labels: {}, HostConfig: {} });
    const err = await failure(manager.deployModel(deployment("m", "1"), 2));
    expect(err.reason).toBe("CONFLICT");
    expect(err.message).toContain("a container this cluster did not create");
    expect(fake.namesWith({ [LABEL.cluster]: "clash", [LABEL.role]: "model" })).toEqual([]);
  });

  it("pulls a model image the host lacks; one no registry has is NOT_FOUND", async () => {
    const { fake, manager, options } = setup("pull");
    await manager.startClipper(options);
    fake.registry.add("registry.example/m:1");
    await manager.deployModel({ ...deployment("m", "1"), image: "registry.example/m:1" }, 1);
    expect(fake.images.has("registry.example/m:1")).toBe(true);
    fake.failNext("pullImage", new EngineError("manifest for registry.example/m:2 not found: manifest unknown", 404));
    const err = await failure(manager.deployModel({ ...deployment("m", "2"), image: "registry.example/m:2" }, 1));
    expect(err.reason).toBe("NOT_FOUND");
    expect(err.message).toContain("model image registry.example/m:2 is not on the Docker host and could not be pulled");
  });

  it("maps daemon errors: a status to NOT_FOUND, CONFLICT or CONTROL_API, no daemon to UNREACHABLE with a hint", async () => {
    const { fake, manager, options } = setup("errors");
    await manager.startClipper(options);
    fake.failNext("listContainers", new EngineError("daemon is shutting down", 503));
    const err = await failure(manager.getNumReplicas("m", "1"));
    expect([err.reason, err.message]).toEqual(["CONTROL_API", "listing containers: the Docker daemon answered 503: daemon is shutting down"]);
    fake.failNext("listContainers", new EngineError("connect ECONNREFUSED /var/run/docker.sock"));
    const down = await manager.status().then(() => undefined, (e: unknown) => e);
    expect(down).toBeInstanceOf(ClipperError);
    expect((down as ClipperError).code).toBe("UNREACHABLE");
    await manager.deployModel(deployment("m", "1"), 1);
    fake.failNext("removeContainer", new EngineError("removal of container is already in progress", 409));
    expect((await failure(manager.stopModels({ m: [] }))).reason).toBe("CONFLICT");
    fake.failNext("readFile", new EngineError("No such container: x", 404));
    expect((await failure(manager.setNumReplicas("m", "1", 1))).reason).toBe("NOT_FOUND");
  });

  it("names like __proto__ and constructor select nothing by accident", async () => {
    const { manager, options } = setup("proto");
    await manager.startClipper(options);
    await manager.deployModel(deployment("constructor", "1"), 1);
    expect((await failure(manager.deleteModels({ toString: [] }))).reason).toBe("INVALID_ARGUMENT");
    expect((await failure(manager.deleteModels(JSON.parse('{"__proto__": []}') as Record<string, string[]>))).reason).toBe("INVALID_ARGUMENT");
    await manager.deleteModels({ valueof: [] });
    expect(await manager.getNumReplicas("constructor", "1")).toBe(1);
    expect((await manager.logs("constructor")).map((l) => l.component)).toEqual(["constructor-1-0"]);
    await manager.deleteModels({ constructor: [] });
    expect((await failure(manager.setNumReplicas("constructor", "1", 1))).reason).toBe("NOT_FOUND");
  });

  it("reads the end of each chosen component's log", async () => {
    const { fake, manager, options } = setup("logs");
    await manager.startClipper(options);
    await manager.deployModel(deployment("m", "1"), 1);
    fake.byName("clipper-logs-m-1-0")!.logs.push("one", "two", "three");
    expect(await manager.readLogs("m-1", 2)).toEqual([{ component: "m-1-0", lines: ["two", "three"] }]);
    expect((await manager.logs()).map((l) => l.component)).toEqual(["autoscaler", "frontend", "m-1-0", "management"]);
  });

  it("runs the autoscaler last, with the cluster's token and the engine socket, and shows it in status and logs", async () => {
    const { fake, manager } = setup("auto");
    const addresses = await manager.startClipper(clusterOptions("auto", { host: "0.0.0.0" }));
    const started = fake.events.filter((e) => e.startsWith("start "));
    expect(started.at(-1)).toBe(`start ${names.autoscaler("auto")}`);
    const autoscaler = fake.byName(names.autoscaler("auto"))!;
    expect(autoscaler.state).toBe("running");
    expect(autoscaler.files.get(TOKEN_FILE)?.trim()).toBe(addresses.token);
    expect(autoscaler.files.has(RPC_KEY_FILE)).toBe(false);
    expect(autoscaler.spec.HostConfig?.Mounts).toEqual([{ Type: "bind", Source: "/var/run/docker.sock", Target: "/var/run/docker.sock" }]);
    expect((await manager.status()).components.map((c) => c.component)).toEqual(["autoscaler", "frontend", "management"]);
    autoscaler.logs.push('{"msg":"autoscaler running"}');
    expect(await manager.readLogs("autoscaler", 5)).toEqual([{ component: "autoscaler", lines: ['{"msg":"autoscaler running"}'] }]);
    // An autoscaler that cannot start fails the start, which removes everything it created.
    const broken = setup("auto-broken");
    broken.fake.onStart.push({ when: (spec) => spec.name === names.autoscaler("auto-broken"), then: { fail: "mounts denied: /var/run/docker.sock" } });
    expect((await failure(broken.manager.startClipper(broken.options))).message)
      .toMatch(/mounts denied.*the autoscaler mounts the Docker host's \/var\/run\/docker\.sock; start with --no-autoscaler/);
    expect(broken.fake.containers.size + broken.fake.networks.size + broken.fake.volumes.size).toBe(0);
  });

  it("autoscaler: false (--no-autoscaler) runs no autoscaler container", async () => {
    const { fake, manager, options } = setup("manual");
    await manager.startClipper({ ...options, autoscaler: false });
    expect(fake.byName(names.autoscaler("manual"))).toBeUndefined();
    expect(fake.namesWith({ [LABEL.role]: "autoscaler" })).toEqual([]);
    expect((await manager.status()).components.map((c) => c.component)).toEqual(["frontend", "management"]);
    expect((await failure(manager.readLogs("autoscaler", 5))).reason).toBe("NOT_FOUND");
  });
});
