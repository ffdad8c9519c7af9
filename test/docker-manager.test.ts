/**
 * The Docker manager against a real daemon: a cluster on loopback with ports Docker chooses, found
 * again by label from a new manager; a model image built here from the test base image, deployed,
 * queried through the published port, scaled; logs; a GPU deployment's device requests; stop by
 * label. Needs a Docker daemon and the base image (scripts/docker-test-base.sh); skipped without
 * them, except in CI. The specs, with no daemon, are in test/unit/docker-manager.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Dockerode from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminClient } from "../src/admin-client.js";
import { dockerClient } from "../src/docker/client.js";
import type { ClusterAddresses, ClusterOptions, ModelDeployment } from "../src/managers/container-manager.js";
import { buildModelImage } from "../src/images/index.js";
import { DockerContainerManager } from "../src/managers/docker/docker-manager.js";
import { DockerodeEngine } from "../src/managers/docker/dockerode-engine.js";
import { LABEL, names, RECORD_LABEL } from "../src/managers/docker/labels.js";
import { waitFor } from "./support/cluster-in-process.js";
import { dockerSkipReason, TEST_BASE_IMAGE } from "./support/docker.js";
import { describeLifecycle } from "./support/lifecycle-contract.js";

const reason = await dockerSkipReason();
const cluster = `dmt${process.pid.toString(36)}`;
/** A second cluster, published beyond loopback (with a token), and one that fails to start. */
const wideCluster = `${cluster}-wide`;
const brokenCluster = `${cluster}-broken`;
/** The shared lifecycle contract's cluster. */
const contractCluster = `${cluster}-life`;
const CLUSTERS = [cluster, wideCluster, brokenCluster];
const labelled = (name: string) => ({ label: [`${LABEL.cluster}=${name}`] });
const clusterFilter = labelled(cluster);

/** A model image from the image builder: a predict that sums each input, on the local base image. */
async function buildSumModelImage(docker: Dockerode, dir: string, forCluster = cluster): Promise<string> {
  writeFileSync(join(dir, "predict.py"), "def predict(inputs):\n    return [str(float(x.sum())) for x in inputs]\n");
  const built = await buildModelImage(docker, {
    cluster: forCluster, name: "sum-model", version: "1", framework: "python", inputType: "doubles",
    predictFile: join(dir, "predict.py"), predictFunction: "predict", baseImage: TEST_BASE_IMAGE,
  });
  return built.tag;
}

async function removeByLabel(docker: Dockerode, name: string): Promise<void> {
  const filters = labelled(name);
  for (const c of await docker.listContainers({ all: true, filters })) {
    await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  }
  for (const n of await docker.listNetworks({ filters })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  for (const v of (await docker.listVolumes({ filters })).Volumes ?? []) {
    await docker.getVolume(v.Name).remove().catch(() => undefined);
  }
}

/** Whether anything with the cluster's label is left: containers, networks, volumes. */
async function leftovers(docker: Dockerode, name: string): Promise<string[]> {
  const filters = labelled(name);
  return [
    ...(await docker.listContainers({ all: true, filters })).map((c) => `container ${c.Names[0]}`),
    ...(await docker.listNetworks({ filters })).map((n) => `network ${n.Name}`),
    ...((await docker.listVolumes({ filters })).Volumes ?? []).map((v) => `volume ${v.Name}`),
  ];
}

describe.skipIf(reason !== undefined)(`the Docker container manager${reason ? ` (${reason})` : ""}`, () => {
  const docker = dockerClient();
  const engine = new DockerodeEngine(docker);
  const dir = mkdtempSync(join(tmpdir(), "clipper-docker-manager-"));
  let manager: DockerContainerManager;
  let addresses: ClusterAddresses;
  let admin: AdminClient;
  let modelImage = "";

  const options: ClusterOptions = {
    cluster,
    host: "127.0.0.1",
    queryPort: 0,
    managementPort: 0,
    rpcPort: 0,
    maxBodyBytes: 1024 * 1024,
    startupTimeoutMs: 60_000,
    replicaTimeoutMs: 3_000,
  };
  const deployment: ModelDeployment = {
    name: "sum-model",
    version: "1",
    inputType: "doubles",
    framework: "python",
    predictFile: "/model/predict.py",
    predictFunction: "predict",
    modelPath: "/model",
  };
  const replicasConnected = async (name: string, version: string) =>
    (await admin.postJson<string[]>("/admin/get_all_containers", { verbose: false })).filter((r) => r.startsWith(`${name}:${version}:`)).length;
  const container = (name: string) => docker.getContainer(name).inspect();
  /** The manager builds its runtime image (src/images) on the local base image: nothing is pulled. */
  const runtime = { runtimeBaseImage: TEST_BASE_IMAGE };

  beforeAll(async () => {
    for (const name of CLUSTERS) await removeByLabel(docker, name);
    modelImage = await buildSumModelImage(docker, dir);
    deployment.image = modelImage;
    manager = new DockerContainerManager({
      cluster,
      engine,
      stopGraceSeconds: 1,
      ...runtime,
    });
  }, 180_000);

  afterAll(async () => {
    for (const name of CLUSTERS) await removeByLabel(docker, name);
    if (modelImage) await docker.getImage(modelImage).remove({ force: true }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("starts a cluster on loopback on ports Docker chooses, labelled as Clipper labels it", async () => {
    addresses = await manager.startClipper(options);
    admin = new AdminClient({ managementUrl: addresses.managementUrl });
    expect(addresses).toMatchObject({ cluster, manager: "docker" });
    expect(addresses.token).toBeUndefined();
    expect(addresses.queryUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(addresses.queryUrl).not.toBe("http://127.0.0.1:0");

    const management = await container(names.management(cluster));
    const frontend = await container(names.frontend(cluster));
    expect(management.Config.Labels).toMatchObject({ [LABEL.cluster]: cluster, [LABEL.role]: "management", [LABEL.managementPort]: "0" });
    expect(frontend.Config.Labels).toMatchObject({ [LABEL.cluster]: cluster, [LABEL.role]: "query_frontend", [LABEL.queryPort]: "0", [LABEL.rpcAuth]: "plain" });
    // The RPC port is exposed, not published: only containers on the cluster's network reach it.
    expect(Object.entries(frontend.NetworkSettings.Ports ?? {}).filter(([, bindings]) => bindings?.length).map(([port]) => port)).toEqual(["1337/tcp"]);
    expect(Object.keys(frontend.Config.ExposedPorts ?? {}).sort()).toEqual(["1337/tcp", "7000/tcp"]);
    expect(addresses.rpcAddress).toBe(`tcp://${names.frontend(cluster)}:7000`);
    expect(frontend.Config.Cmd).toEqual(expect.arrayContaining(["--rpc-auth", "plain", "--rpc-key-file", "/etc/clipper-rpc/key"]));
    expect(JSON.stringify(frontend.Config.Env)).not.toContain("RPC");
    expect(frontend.HostConfig.RestartPolicy?.Name).toBe("unless-stopped");
    expect(management.HostConfig.Mounts).toEqual([expect.objectContaining({ Type: "volume", Source: names.volume(cluster), Target: "/state" })]);
    const query = (frontend.NetworkSettings.Ports as any)["1337/tcp"][0];
    expect(query.HostIp).toBe("127.0.0.1");
    expect(addresses.queryUrl).toBe(`http://127.0.0.1:${query.HostPort}`);
    expect(frontend.Config.Cmd).toEqual(expect.arrayContaining(["--management-url", `http://${names.management(cluster)}:1338`, "--replica-timeout-ms", "3000"]));

    const network = await docker.getNetwork(names.network(cluster)).inspect();
    expect(network.Labels).toMatchObject({ [LABEL.cluster]: cluster });
    const volume = await docker.getVolume(names.volume(cluster)).inspect();
    expect(volume.Labels).toMatchObject({ [LABEL.cluster]: cluster });

    expect(await (await fetch(`${addresses.managementUrl}/admin/ping`)).text()).toContain("PONG");
    expect((await fetch(`${addresses.queryUrl}/health`)).status).toBe(200);
  });

  it("is found again by label from a new manager, and refuses a second start", async () => {
    const other = new DockerContainerManager({ cluster, engine, runtimeImage: "unused:never" });
    expect(await other.connect()).toEqual(addresses);
    await expect(other.startClipper(options)).rejects.toMatchObject({ reason: "CLUSTER_ALREADY_RUNNING" });
    await expect(new DockerContainerManager({ cluster: `${cluster}-none`, engine }).connect()).rejects.toMatchObject({ code: "NO_CLUSTER" });
  });

  it("deploys a model image whose replicas connect over the cluster network and answer queries", async () => {
    await admin.postText("/admin/add_app", { name: "sum", input_type: "doubles", default_output: "-1.0", latency_slo_micros: 10_000_000 });
    await manager.deployModel(deployment, 1);
    await waitFor(async () => (await replicasConnected("sum-model", "1")) === 1, 30_000, "the replica to connect");
    await admin.postText("/admin/add_model", {
      model_name: "sum-model", model_version: "1", labels: [], input_type: "doubles",
      container_name: modelImage, model_data_path: "/model", batch_size: -1,
    });
    await admin.postText("/admin/add_model_links", { app_name: "sum", model_names: ["sum-model"] });

    const replica = await container(names.replica(cluster, "sum-model", "1", 0));
    expect(replica.Config.Labels).toMatchObject({
      [LABEL.cluster]: cluster, [LABEL.role]: "model", [LABEL.modelContainer]: "sum-model_1", [LABEL.replica]: "0",
    });
    expect(replica.Config.Env).toEqual(expect.arrayContaining([`CLIPPER_IP=${names.frontend(cluster)}`, "CLIPPER_PORT=7000", "CLIPPER_MODEL_NAME=sum-model"]));
    // Its credential is in its environment and nowhere else: not in the deployment label, not in the
    // record container, not in the management daemon.
    const secret = replica.Config.Env.find((e) => e.startsWith("CLIPPER_RPC_SECRET="))?.slice("CLIPPER_RPC_SECRET=".length);
    expect(secret).toMatch(/^[\w-]{43}$/);
    const record = await container(names.deployment(cluster, "sum-model", "1"));
    for (const where of [replica.Config.Labels, record.Config, (await container(names.management(cluster))).Config]) {
      expect(JSON.stringify(where)).not.toContain(secret);
    }
    expect(replica.HostConfig.RestartPolicy?.Name).toBe("unless-stopped");

    let reply: any;
    await waitFor(async () => {
      const res = await fetch(`${addresses.queryUrl}/sum/predict`, { method: "POST", body: JSON.stringify({ input: [1, 2, 3] }) });
      reply = await res.json();
      return reply.default === false;
    }, 20_000, "a prediction from the model");
    expect(reply.output).toBe(6);
  });

  it("refuses a deployment without an image, or with one the daemon cannot find or pull", async () => {
    const { image: _image, ...imageless } = deployment;
    await expect(manager.deployModel({ ...imageless, name: "nope" }, 1)).rejects.toMatchObject({ reason: "INVALID_ARGUMENT" });
    await expect(manager.deployModel({ ...deployment, name: "nope", image: "clipper-missing-image:1" }, 1)).rejects.toThrow(
      /clipper-missing-image:1/,
    );
    expect(await manager.getNumReplicas("nope", "1")).toBe(0);
    expect(await docker.listContainers({ all: true, filters: { label: [...clusterFilter.label, `${LABEL.modelName}=nope`] } })).toEqual([]);
  });

  it("scales to 3 replicas and back to 1, from another manager instance too", async () => {
    await manager.setNumReplicas("sum-model", "1", 3);
    expect(await manager.getNumReplicas("sum-model", "1")).toBe(3);
    await waitFor(async () => (await replicasConnected("sum-model", "1")) === 3, 30_000, "3 replicas to connect");

    // The deployment is recovered from labels by a manager that did not deploy it.
    const fresh = new DockerContainerManager({ cluster, engine, stopGraceSeconds: 1 });
    await fresh.setNumReplicas("sum-model", "1", 1);
    expect(await manager.getNumReplicas("sum-model", "1")).toBe(1);
    const left = await docker.listContainers({ all: true, filters: { label: [...clusterFilter.label, `${LABEL.role}=model`] } });
    expect(left.map((c) => c.Labels[LABEL.replica])).toEqual(["0"]);

    const status = await manager.status();
    expect(status.components.map((c) => [c.component, c.state])).toEqual([["autoscaler", "running"], ["frontend", "running"], ["management", "running"]]);
    expect(status.replicas).toEqual([expect.objectContaining({ name: "sum-model", version: "1", replica: 0, state: "running", restarts: 0 })]);
    expect(status.replicas[0]!.pid).toBeGreaterThan(0);
    await waitFor(async () => (await replicasConnected("sum-model", "1")) === 1, 20_000, "the removed replicas to be dropped");
  });

  it("reads the end of any component's log", async () => {
    const [frontend] = await manager.readLogs("frontend", 50);
    expect(frontend!.component).toBe("frontend");
    expect(frontend!.lines.join("\n")).toContain("query frontend listening");
    const replicas = await manager.readLogs("sum-model", 20);
    expect(replicas.map((l) => l.component)).toEqual(["sum-model-1-0"]);
    expect((await manager.readLogs("management", 1))[0]!.lines).toHaveLength(1);
    expect((await manager.logs()).map((l) => l.component)).toEqual(["autoscaler", "frontend", "management", "sum-model-1-0"]);
    await expect(manager.readLogs("nothing-here", 5)).rejects.toMatchObject({ reason: "NOT_FOUND" });
  });

  it("asks the NVIDIA runtime for a GPU model's containers only", async () => {
    const gpu: ModelDeployment = { ...deployment, name: "gpu-model", gpu: { count: 2 } };
    await manager.deployModel(gpu, 0); // records the deployment in a created, never started container
    const record = await container(names.deployment(cluster, "gpu-model", "1"));
    expect(record.State.Status).toBe("created");
    const requests = record.HostConfig.DeviceRequests ?? [];
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ Driver: "nvidia", Count: 2, Capabilities: [["gpu"]] });
    for (const name of [names.management(cluster), names.frontend(cluster), names.replica(cluster, "sum-model", "1", 0)]) {
      expect((await container(name)).HostConfig.DeviceRequests ?? []).toEqual([]);
    }

    const info = await docker.info();
    if (!JSON.stringify(info.Runtimes ?? {}).includes("nvidia")) {
      await expect(manager.setNumReplicas("gpu-model", "1", 1)).rejects.toThrow(/no GPU runtime/);
      expect(await manager.getNumReplicas("gpu-model", "1")).toBe(0); // the replica that could not start is gone
    }
    await manager.deleteModels({ "gpu-model": [] });
    await expect(manager.setNumReplicas("gpu-model", "1", 1)).rejects.toMatchObject({ reason: "NOT_FOUND" });
    expect(await docker.listContainers({ all: true, filters: { label: [...clusterFilter.label, `${LABEL.modelName}=gpu-model`] } })).toEqual([]);
  });

  it("stops everything it created, keeping the state volume only when asked", async () => {
    const bystander = await docker.createVolume({ Name: `${cluster}-bystander` });
    try {
      const before = (await container(names.replica(cluster, "sum-model", "1", 0))).Config.Env;
      await manager.stopAll({ keepState: true });
      // Only the deployment record stays, never started, with the version's desired count.
      const kept = await docker.listContainers({ all: true, filters: clusterFilter });
      expect(kept.map((c) => [c.Names[0], c.State, c.Labels[RECORD_LABEL.replicas]])).toEqual([
        [`/${names.deployment(cluster, "sum-model", "1")}`, "created", "1"],
      ]);
      expect(await docker.listNetworks({ filters: clusterFilter })).toEqual([]);
      expect((await docker.listVolumes({ filters: clusterFilter })).Volumes?.map((v) => v.Name)).toEqual([names.volume(cluster)]);
      await expect(manager.connect()).rejects.toMatchObject({ code: "NO_CLUSTER" });

      // The kept state serves the next start: the application is still registered.
      const again = await manager.startClipper(options);
      const apps = await new AdminClient({ managementUrl: again.managementUrl }).postJson<string[]>("/admin/get_all_applications", { verbose: false });
      expect(apps).toEqual(["sum"]);
      // The recorded replica is back, with the new cluster's RPC credential, and answers.
      expect(await manager.getNumReplicas("sum-model", "1")).toBe(1);
      const secret = (env: string[]) => env.find((e) => e.startsWith("CLIPPER_RPC_SECRET="));
      expect(secret((await container(names.replica(cluster, "sum-model", "1", 0))).Config.Env)).not.toBe(secret(before));
      await waitFor(async () => {
        const res = await fetch(`${again.queryUrl}/sum/predict`, { method: "POST", body: JSON.stringify({ input: [1, 2, 3] }) });
        return (await res.json()).output === 6;
      }, 30_000, "the restored replica to answer");

      await manager.stopAll({ keepState: false });
      expect(await leftovers(docker, cluster)).toEqual([]);
      await expect(manager.stopAll({ keepState: false })).rejects.toMatchObject({ code: "NO_CLUSTER" });
      expect((await docker.getVolume(bystander.name).inspect()).Name).toBe(bystander.name);
    } finally {
      await docker.getVolume(bystander.name).remove().catch(() => undefined);
    }
  });

  it("publishes beyond loopback with a token that connect() recovers and the frontends use", async () => {
    const wide = new DockerContainerManager({ cluster: wideCluster, engine, stopGraceSeconds: 1, ...runtime });
    const started = await wide.startClipper({ ...options, cluster: wideCluster, host: "0.0.0.0" });
    try {
      expect(started.token).toMatch(/^[0-9a-f]{64}$/);
      expect(started.managementUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const frontend = await container(names.frontend(wideCluster));
      expect((frontend.NetworkSettings.Ports as any)["1337/tcp"][0].HostIp).toBe("0.0.0.0");
      expect(JSON.stringify(frontend.Config.Env)).not.toContain(started.token!);
      expect(frontend.Config.Cmd).toEqual(expect.arrayContaining(["--token-file", "/etc/clipper/token"]));

      // Through the published port the daemon sees a non-loopback peer: the token is required.
      const url = `${started.managementUrl}/admin/get_all_applications`;
      const post = (headers: Record<string, string>) => fetch(url, {
        method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ verbose: false }),
      });
      expect((await post({})).status).toBe(401);
      expect((await post({ authorization: `Bearer ${started.token}` })).status).toBe(200);

      expect(await new DockerContainerManager({ cluster: wideCluster, engine }).connect()).toEqual(started);
      // The frontend reads its configuration from the daemon with the same token.
      const admin2 = new AdminClient({ managementUrl: started.managementUrl, token: started.token! });
      await admin2.postText("/admin/add_app", { name: "echo", input_type: "doubles", default_output: "7", latency_slo_micros: 100_000 });
      // Published beyond loopback, the query API wants a key by default (--query-auth keys).
      const { key } = await admin2.postJson<{ key: string }>("/admin/add_api_key", { app: "echo" });
      const query = (headers: Record<string, string>) =>
        fetch(`${started.queryUrl}/echo/predict`, { method: "POST", headers, body: JSON.stringify({ input: [1] }) });
      await waitFor(async () => {
        const res = await query({ authorization: `Bearer ${key}` });
        return res.status === 200 && (await res.json()).output === 7;
      }, 15_000, "the frontend to learn the application and the key");
      expect((await query({})).status).toBe(401);
    } finally {
      await wide.stopAll({ keepState: false });
    }
    expect(await leftovers(docker, wideCluster)).toEqual([]);
  });

  it("explains a start that fails, with the container's last log lines, and removes what it created", async () => {
    // The model image has Node but no dist/: the management daemon exits at once.
    const broken = new DockerContainerManager({ cluster: brokenCluster, engine, stopGraceSeconds: 1, runtimeImage: modelImage });
    const err = await broken.startClipper({ ...options, cluster: brokenCluster, startupTimeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: "STARTUP_FAILED" });
    expect((err as Error).message).toContain(`container ${names.management(brokenCluster)}`);
    expect((err as Error).message).toMatch(/keeps exiting|exited with code 1/);
    expect((err as Error).message).toMatch(/Cannot find module/);
    expect(await leftovers(docker, brokenCluster)).toEqual([]);
  });
});

// The lifecycle every manager keeps, on the real daemon (the fake-engine run is in test/unit/docker-lifecycle.test.ts).
if (reason === undefined) {
  describeLifecycle("Docker (real daemon)", async () => {
    const docker = dockerClient();
    const dir = mkdtempSync(join(tmpdir(), "clipper-docker-contract-"));
    await removeByLabel(docker, contractCluster);
    const image = await buildSumModelImage(docker, dir, contractCluster);
    const options: ClusterOptions = {
      cluster: contractCluster, host: "127.0.0.1", queryPort: 0, managementPort: 0, rpcPort: 0,
      maxBodyBytes: 1024 * 1024, startupTimeoutMs: 60_000, replicaTimeoutMs: 3_000,
    };
    return {
      manager: new DockerContainerManager({ cluster: contractCluster, engine: new DockerodeEngine(docker), stopGraceSeconds: 1, runtimeBaseImage: TEST_BASE_IMAGE }),
      options,
      deployment: (name, version, variant = 0) => ({
        name, version, inputType: "doubles", framework: "python", predictFile: "/model/predict.py", predictFunction: "predict",
        modelPath: "/model", image, ...(variant ? { env: { VARIANT: String(variant) } } : {}),
      }),
      running: async (name, version) => (await docker.listContainers({
        filters: { label: [`${LABEL.cluster}=${contractCluster}`, `${LABEL.role}=model`, `${LABEL.modelName}=${name}`, `${LABEL.modelVersion}=${version}`] },
      })).length,
      close: async () => {
        await removeByLabel(docker, contractCluster);
        await docker.getImage(image).remove({ force: true }).catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }, { timeoutMs: 180_000 });
}
