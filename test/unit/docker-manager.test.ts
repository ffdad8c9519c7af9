/**
 * The Docker manager's container specs, labels, option checks and log demultiplexing, with no
 * daemon. The manager against a real daemon is in test/docker-manager.test.ts.
 */
import { describe, expect, it } from "vitest";
import { dockerClient } from "../../src/docker/client.js";
import type { ClusterOptions } from "../../src/managers/container-manager.js";
import { checkClusterOptions } from "../../src/managers/docker/docker-manager.js";
import { LABEL, readStoredDeployment, RECORD_LABEL, storedDeployment } from "../../src/managers/docker/labels.js";
import { demuxLogs, logLines } from "../../src/managers/docker/logs.js";
import { autoscalerSpec, daemonHostName, deploymentRecordSpec, deviceRequests, frontendSpec, managementSpec, replicaSpec } from "../../src/managers/docker/specs.js";
import { versionSecret } from "../../runtime/shared/rpc-auth.js";
import { recordedFrontendWorkers } from "../../src/managers/cluster-spec.js";

describe("Docker manager specs (no daemon needed)", () => {
  const options: ClusterOptions = {
    cluster: "c1", host: "0.0.0.0", queryPort: 1337, managementPort: 0, rpcPort: 7000,
    maxBodyBytes: 1000, startupTimeoutMs: 1000, replicaTimeoutMs: 2000, cacheBytes: 0, maxBatch: 8, admission: false,
  };
  const d = storedDeployment({
    name: "m", version: "2", inputType: "floats", framework: "python", predictFile: "/p.py", predictFunction: "predict",
    modelPath: "/", image: "img:1", env: { A: "1", CLIPPER_IP: "wrong" }, gpu: { deviceIds: ["0", "GPU-abc"] },
  });

  it("maps GPU requests to NVIDIA device requests", () => {
    expect(deviceRequests(undefined)).toBeUndefined();
    expect(deviceRequests({ count: 2 })).toEqual([{ Driver: "nvidia", Count: 2, Capabilities: [["gpu"]] }]);
    expect(deviceRequests({ count: "all" })).toEqual([{ Driver: "nvidia", Count: -1, Capabilities: [["gpu"]] }]);
    expect(deviceRequests({ deviceIds: ["0", "1"] })).toEqual([{ Driver: "nvidia", DeviceIDs: ["0", "1"], Capabilities: [["gpu"]] }]);
  });

  it("passes the cluster's tuning flags to the frontend and publishes its query port only, on the cluster host", () => {
    const f = frontendSpec({ cluster: "c1", options, image: "rt", token: true });
    expect(f.Cmd).toEqual([
      "node", "dist/runtime/frontend/main.js", "--host", "0.0.0.0", "--port", "1337", "--rpc-port", "7000",
      "--management-url", "http://clipper-c1-management:1338", "--token-file", "/etc/clipper/token",
      "--rpc-auth", "plain", "--rpc-key-file", "/etc/clipper-rpc/key",
      "--max-body-bytes", "1000", "--replica-timeout-ms", "2000", "--cache-bytes", "0", "--max-batch", "8", "--no-admission",
      // Published beyond loopback: query API keys by default. Containers on the network use these names.
      "--query-auth", "keys", "--allowed-hosts", "clipper-c1-management,clipper-c1-query-frontend",
    ]);
    expect(f.HostConfig?.PortBindings).toEqual({ "1337/tcp": [{ HostIp: "0.0.0.0", HostPort: "1337" }] });
    expect(f.ExposedPorts).toEqual({ "1337/tcp": {}, "7000/tcp": {} });
    expect(f.Labels?.[LABEL.rpcAuth]).toBe("plain");
    expect(f.Labels?.[LABEL.frontendWorkers]).toBe("1");
    const open = frontendSpec({ cluster: "c1", options: { ...options, rpcAuth: "none", maxRpcFrameBytes: 1 << 20 }, image: "rt", token: false });
    expect(open.Cmd).toEqual(expect.arrayContaining(["--rpc-auth", "none", "--max-rpc-frame-bytes", "1048576"]));
    expect(open.Cmd).not.toContain("--rpc-key-file");
    expect(open.Labels?.[LABEL.rpcAuth]).toBe("none");
    expect(f.HostConfig?.DeviceRequests).toBeUndefined();
    const m = managementSpec({ cluster: "c1", options: { ...options, host: "localhost" }, image: "rt", token: false });
    expect(m.Cmd).toEqual(["node", "dist/runtime/management/main.js", "--host", "0.0.0.0", "--port", "1338", "--state-dir", "/state", "--max-body-bytes", "1000",
      "--allowed-hosts", "clipper-c1-management,clipper-c1-query-frontend"]);
    // The user's names join the manager's; '*' replaces them all.
    const named = managementSpec({ cluster: "c1", options: { ...options, allowedHosts: ["Clipper.Example"] }, image: "rt", token: false });
    expect(named.Cmd?.slice(-2)).toEqual(["--allowed-hosts", "clipper-c1-management,clipper-c1-query-frontend,clipper.example"]);
    const any = frontendSpec({ cluster: "c1", options: { ...options, host: "127.0.0.1", allowedHosts: ["*"] }, image: "rt", token: false });
    expect(any.Cmd?.slice(-4)).toEqual(["--query-auth", "none", "--allowed-hosts", "*"]);
    expect(() => managementSpec({ cluster: "c1", options: { ...options, allowedHosts: ["bad name"] }, image: "rt", token: false }))
      .toThrow(/allowedHosts: 'bad name' is not a hostname/);
    expect(m.HostConfig?.PortBindings).toEqual({ "1338/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }] });
    expect(m.Labels).toMatchObject({ [LABEL.managementPort]: "0", [LABEL.queryPort]: "1337", [LABEL.host]: "localhost" });
    expect(m.Labels?.[LABEL.tokenFile]).toBeUndefined();
  });

  it("runs the autoscaler host with the engine socket, reaching the daemon by a name the daemon admits", () => {
    const a = autoscalerSpec({ cluster: "c1", options, image: "rt", token: true });
    expect(a.name).toBe("clipper-c1-autoscaler");
    expect(a.Image).toBe("rt");
    expect(a.Cmd).toEqual(["node", "dist/src/autoscaler/host-main.js"]);
    expect(a.Env?.sort()).toEqual([
      "CLIPPER_ADMIN_TOKEN_FILE=/etc/clipper/token", "CLIPPER_ADMIN_URL=http://clipper-c1-management:1338", "CLIPPER_CLUSTER=c1", "CLIPPER_MANAGER=docker",
    ]);
    expect(a.Labels).toEqual({ [LABEL.cluster]: "c1", [LABEL.role]: "autoscaler", [LABEL.tokenFile]: "/etc/clipper/token" });
    // The engine API is served on the socket: connecting needs it writable, so no ReadOnly.
    expect(a.HostConfig).toEqual({
      NetworkMode: "clipper-c1", RestartPolicy: { Name: "unless-stopped" },
      Mounts: [{ Type: "bind", Source: "/var/run/docker.sock", Target: "/var/run/docker.sock" }],
    });
    expect(a.ExposedPorts).toBeUndefined();
    const host = new URL(a.Env!.find((e) => e.startsWith("CLIPPER_ADMIN_URL="))!.split("=")[1]!).hostname;
    const m = managementSpec({ cluster: "c1", options, image: "rt", token: true });
    expect(m.Cmd?.at(-1)?.split(",")).toContain(host);
    expect(autoscalerSpec({ cluster: "c1", options, image: "rt", token: false }).Env).not.toContainEqual(expect.stringMatching(/TOKEN_FILE/));
  });

  it("admits the remote Docker daemon's hostname, which this client reaches the published ports by", () => {
    const previous = process.env.DOCKER_HOST;
    let modemHost: string | undefined;
    try {
      process.env.DOCKER_HOST = "tcp://GPU-Box:2375";
      modemHost = (dockerClient().modem as { host?: string }).host;
    } finally {
      if (previous === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = previous;
    }
    const daemonHost = daemonHostName(modemHost);
    expect(daemonHost).toBe("gpu-box");
    for (const spec of [managementSpec, frontendSpec]) {
      expect(spec({ cluster: "c1", options, image: "rt", token: true, daemonHost }).Cmd?.slice(-2))
        .toEqual(["--allowed-hosts", "clipper-c1-management,clipper-c1-query-frontend,gpu-box"]);
    }
    // A socket, or a daemon named by an IP address (always admitted), adds nothing.
    for (const host of [undefined, "", "10.0.0.5", "[fd00::5]", "fd00::5"]) expect(daemonHostName(host)).toBeUndefined();
    // '*' still stands alone.
    expect(frontendSpec({ cluster: "c1", options: { ...options, allowedHosts: ["*"] }, image: "rt", token: true, daemonHost }).Cmd?.slice(-2))
      .toEqual(["--allowed-hosts", "*"]);
  });

  it("runs N frontend workers in the frontend container, one exposed (not published) RPC port each, and tells replicas every port", () => {
    const f = frontendSpec({ cluster: "c1", options: { ...options, frontendWorkers: 3 }, image: "rt", token: false });
    expect(f.Cmd?.slice(0, 10)).toEqual([
      "node", "dist/runtime/frontend/main.js", "--host", "0.0.0.0", "--port", "1337", "--rpc-port", "7000", "--workers", "3",
    ]);
    expect(f.ExposedPorts).toEqual({ "1337/tcp": {}, "7000/tcp": {}, "7001/tcp": {}, "7002/tcp": {} });
    expect(f.HostConfig?.PortBindings).toEqual({ "1337/tcp": [{ HostIp: "0.0.0.0", HostPort: "1337" }] });
    expect(f.Labels?.[LABEL.frontendWorkers]).toBe("3");
    const r = replicaSpec("c1", d, 0, { rpcPorts: [7000, 7001, 7002] }, 30);
    expect(r.Env).toContain("CLIPPER_PORT=7000,7001,7002");
    expect(() => checkClusterOptions("c1", { ...options, frontendWorkers: 8 })).not.toThrow();
    for (const bad of [0, 9, 1.5]) {
      expect(() => checkClusterOptions("c1", { ...options, frontendWorkers: bad }), String(bad)).toThrow(/frontendWorkers must be an integer from 1 to 8/);
    }
  });

  it("reads a frontend's recorded worker count back, refusing one edited into nonsense", () => {
    expect(recordedFrontendWorkers(undefined, "f")).toBe(1);
    expect(recordedFrontendWorkers("4", "f")).toBe(4);
    for (const bad of ["0", "9", "2.5", "", " 2", "constructor", "1e1"]) {
      expect(() => recordedFrontendWorkers(bad, "the query frontend f"), bad).toThrow(/the query frontend f says ai\.clipper\.query_frontend\.workers=.* not a worker count from 1 to 8/);
    }
  });

  it("checks only the published ports for clashes: the RPC port is not published", () => {
    expect(() => checkClusterOptions("c1", { ...options, queryPort: 7000, rpcPort: 7000 })).not.toThrow();
    expect(() => checkClusterOptions("c1", { ...options, managementPort: 7000, rpcPort: 7000 })).not.toThrow();
    expect(() => checkClusterOptions("c1", { ...options, managementPort: 1337 })).toThrow(/ports must differ/);
    expect(() => checkClusterOptions("c1", { ...options, queryPort: 70000 })).toThrow(/queryPort must be an integer/);
  });

  it("gives replicas the runtime's environment, their version's credential, labels, device requests and restart policy", () => {
    const r = replicaSpec("c1", d, 3, { rpcKey: "the-cluster-key", rpcPorts: [7000] }, 30);
    const secret = versionSecret("the-cluster-key", { name: "m", version: "2", inputType: "floats" });
    expect(r.Env).toContain(`CLIPPER_RPC_SECRET=${secret}`);
    expect(JSON.stringify(r.Labels)).not.toContain(secret);
    expect(JSON.stringify(r)).not.toContain("the-cluster-key");
    expect(replicaSpec("c1", d, 3, { rpcPorts: [7000] }, 30).Env?.some((e) => e.startsWith("CLIPPER_RPC_SECRET="))).toBe(false);
    // Nothing from this process's environment: the deployment's own variables and the runtime's only.
    expect(r.Env!.map((e) => e.split("=")[0]!).filter((n) => !n.startsWith("CLIPPER_"))).toEqual(["A"]);
    expect(r.name).toBe("clipper-c1-m-2-3");
    expect(r.StopTimeout).toBe(30); // `docker stop` by hand gives it the time to drain too
    expect(r.Env).toEqual(expect.arrayContaining(["A=1", "CLIPPER_IP=clipper-c1-query-frontend", "CLIPPER_PORT=7000", "CLIPPER_INPUT_TYPE=floats", "CLIPPER_REPLICA_ID=3"]));
    expect(r.Env).not.toContain("CLIPPER_IP=wrong");
    expect(r.Labels).toMatchObject({ [LABEL.cluster]: "c1", [LABEL.role]: "model", [LABEL.modelContainer]: "m_2", [LABEL.replica]: "3" });
    expect(r.HostConfig).toMatchObject({ RestartPolicy: { Name: "unless-stopped" }, DeviceRequests: [{ Driver: "nvidia", DeviceIDs: ["0", "GPU-abc"], Capabilities: [["gpu"]] }] });
    expect(readStoredDeployment(r.Labels)).toEqual(d);
    const record = deploymentRecordSpec("c1", d, { replicas: 2, generation: 1 });
    expect(record.Labels).toMatchObject({ [RECORD_LABEL.replicas]: "2", [RECORD_LABEL.generation]: "1", [LABEL.role]: "model_deployment" });
    expect(JSON.stringify(record)).not.toContain(secret);
    expect(record.Labels?.[LABEL.modelContainer]).toBeUndefined();
    expect(record.HostConfig?.RestartPolicy).toEqual({ Name: "no" });
    expect(readStoredDeployment({ [LABEL.deployment]: "{not json" })).toBeUndefined();
  });

  it("demultiplexes Docker log frames into lines", () => {
    const frame = (stream: number, text: string) => {
      const payload = Buffer.from(text);
      const header = Buffer.alloc(8);
      header[0] = stream;
      header.writeUInt32BE(payload.length, 4);
      return Buffer.concat([header, payload]);
    };
    const log = Buffer.concat([frame(1, "one\ntw"), frame(2, "o\nthree\n")]);
    expect(demuxLogs(log).toString()).toBe("one\ntwo\nthree\n");
    expect(logLines(log, 2)).toEqual(["two", "three"]);
    expect(logLines(Buffer.from("raw tty output\n"), 5)).toEqual(["raw tty output"]);
  });
});
