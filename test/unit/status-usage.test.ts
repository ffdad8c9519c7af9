/**
 * What `clipper status` computes: the frontend's Prometheus text read into queue depth and p99 per
 * model version, Kubernetes quantities, Docker's stats, /proc's stat line, and how the table
 * prints durations and sizes. The Docker manager's status with usage runs on the fake engine.
 */
import { describe, expect, it } from "vitest";
import { histogramQuantile, modelVersionLoads, parsePrometheusText } from "../../src/frontend-metrics.js";
import { cpuCores, memoryBytes } from "../../src/managers/kubernetes/pod-usage.js";
import { usageFromStats } from "../../src/managers/docker/stats.js";
import { parseProcStat, processUsage } from "../../src/managers/local/proc-usage.js";
import { bytes, duration } from "../../src/cli/commands/cluster.js";
import { DockerContainerManager } from "../../src/managers/docker/docker-manager.js";
import { FakeClock, FakeDockerEngine } from "../support/fake-docker.js";

const METRICS = `# HELP clipper_model_queue_depth Queries waiting in a model version's queue
# TYPE clipper_model_queue_depth gauge
clipper_model_queue_depth{model="sum:1"} 3
clipper_model_queue_depth{model="odd \\"name\\":2"} 0
# TYPE clipper_model_batch_latency_seconds histogram
clipper_model_batch_latency_seconds_bucket{le="0.005",model="sum:1"} 50
clipper_model_batch_latency_seconds_bucket{le="0.01",model="sum:1"} 90
clipper_model_batch_latency_seconds_bucket{le="0.025",model="sum:1"} 100
clipper_model_batch_latency_seconds_bucket{le="+Inf",model="sum:1"} 100
clipper_model_batch_latency_seconds_sum{model="sum:1"} 0.6
clipper_model_batch_latency_seconds_count{model="sum:1"} 100
clipper_app_requests_total{app="a"} 7
not a sample line
`;

describe("the frontend's metrics", () => {
  it("parses samples with escaped labels", () => {
    const samples = parsePrometheusText(METRICS);
    expect(samples.find((s) => s.labels.model === 'odd "name":2')?.value).toBe(0);
    expect(samples.find((s) => s.labels.le === "+Inf")?.value).toBe(100);
    expect(samples).toHaveLength(9);
    // A label named like Object.prototype's members is only a label.
    const labels = parsePrometheusText('x{constructor="a",__proto__="b"} 1')[0]!.labels;
    expect(Object.keys(labels)).toEqual(["constructor", "__proto__"]);
    expect(Object.getOwnPropertyDescriptor(labels, "__proto__")?.value).toBe("b");
    expect(Object.getPrototypeOf(labels)).toBeNull();
  });

  it("computes p99 as histogram_quantile does", () => {
    // Rank 99 of 100 falls in (0.01, 0.025]: 0.01 + 0.015 × (99 − 90) / 10.
    expect(histogramQuantile(0.99, [{ le: 0.005, count: 50 }, { le: 0.01, count: 90 }, { le: 0.025, count: 100 }, { le: Infinity, count: 100 }])).toBeCloseTo(0.0235);
    expect(histogramQuantile(0.99, [{ le: 1, count: 1 }, { le: Infinity, count: 100 }])).toBe(1);
    expect(histogramQuantile(0.99, [{ le: 1, count: 0 }, { le: Infinity, count: 0 }])).toBeUndefined();
  });

  it("reads queue depth and p99 per model version", () => {
    expect(modelVersionLoads(METRICS)).toEqual([
      { model: 'odd "name":2', queueDepth: 0 },
      { model: "sum:1", queueDepth: 3, p99Ms: 23.5, batches: 100 },
    ]);
  });
});

describe("usage sources", () => {
  it("reads Kubernetes quantities", () => {
    expect(cpuCores("250m")).toBe(0.25);
    expect(cpuCores("1500000n")).toBeCloseTo(0.0015);
    expect(cpuCores("2")).toBe(2);
    expect(cpuCores("lots")).toBeUndefined();
    expect(memoryBytes("64Mi")).toBe(64 * 1024 * 1024);
    expect(memoryBytes("1G")).toBe(1e9);
    expect(memoryBytes("1048576Ki")).toBe(1024 ** 3);
    expect(memoryBytes("12e3")).toBeUndefined();
  });

  it("computes Docker's CPU share of one core and memory without the page cache", () => {
    expect(usageFromStats({
      cpu_stats: { cpu_usage: { total_usage: 2_000_000_000 }, system_cpu_usage: 20_000_000_000, online_cpus: 4 },
      precpu_stats: { cpu_usage: { total_usage: 1_000_000_000 }, system_cpu_usage: 16_000_000_000 },
      memory_stats: { usage: 100_000_000, stats: { inactive_file: 20_000_000 } },
    })).toEqual({ cpuPercent: 100, memoryBytes: 80_000_000 });
    // A first sample (no previous one) has no CPU share.
    expect(usageFromStats({ cpu_stats: { cpu_usage: { total_usage: 5 }, system_cpu_usage: 9 }, precpu_stats: {}, memory_stats: {} })).toEqual({});
  });

  it("reads /proc/PID/stat whatever the process name holds, and this process's usage", async () => {
    const line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 1 0 98765 1000 100 18446744073709551615";
    expect(parseProcStat(line)).toEqual({ cpuTicks: 200, startTicks: 98765 });
    const usage = (await processUsage([process.pid, 2 ** 22 + 7], 100));
    expect(usage.has(2 ** 22 + 7)).toBe(false);
    if (process.platform === "linux") {
      const mine = usage.get(process.pid)!;
      expect(mine.memoryBytes).toBeGreaterThan(10 * 1024 * 1024);
      expect(mine.uptimeSeconds).toBeGreaterThanOrEqual(0);
      expect(mine.uptimeSeconds).toBeLessThan(Math.ceil(process.uptime()) + 2);
      expect(mine.cpuPercent).toBeGreaterThanOrEqual(0);
    }
  });

  it("prints durations and sizes for people", () => {
    expect([duration(undefined), duration(0), duration(59), duration(61), duration(3600), duration(3 * 86_400 + 4 * 3600 + 5)]).toEqual(["-", "0s", "59s", "1m1s", "1h", "3d4h"]);
    expect([bytes(undefined), bytes(512), bytes(48.25 * 1024 * 1024), bytes(1.5 * 1024 ** 3)]).toEqual(["-", "512 B", "48.3 MiB", "1.5 GiB"]);
  });
});

describe("the Docker manager's status with usage (fake engine)", () => {
  it("adds uptime and the engine's stats for running containers only, and asks for none without usage", async () => {
    const fake = new FakeDockerEngine({ images: ["model:1"] });
    const manager = new DockerContainerManager({ cluster: "st", engine: fake, probe: fake.probe, clock: new FakeClock(), stopGraceSeconds: 1 });
    await manager.startClipper({
      cluster: "st", host: "127.0.0.1", queryPort: 0, managementPort: 0, rpcPort: 0, maxBodyBytes: 1 << 20, startupTimeoutMs: 5_000, replicaTimeoutMs: 3_000,
    });
    await manager.deployModel({
      name: "m", version: "1", inputType: "doubles", framework: "python", predictFile: "/m/p.py", predictFunction: "predict", modelPath: "/m", image: "model:1",
    }, 1);
    fake.byName("clipper-st-m-1-0")!.usage = { cpuPercent: 12.5, memoryBytes: 3 << 20 };
    const plain = await manager.status();
    expect(plain.replicas[0]!.usage).toBeUndefined();
    const measured = await manager.status({ usage: true });
    expect(measured.replicas[0]!.usage).toEqual({ uptimeSeconds: expect.any(Number), cpuPercent: 12.5, memoryBytes: 3 << 20 });
    // Every running component (daemon, frontend, autoscaler) has an uptime.
    expect(measured.components).toHaveLength(3);
    for (const c of measured.components) expect(c.usage?.uptimeSeconds).toEqual(expect.any(Number));
    await fake.stopContainer(fake.byName("clipper-st-m-1-0")!.id);
    expect((await manager.status({ usage: true })).replicas[0]).toMatchObject({ state: "exited" });
    expect((await manager.status({ usage: true })).replicas[0]!.usage).toBeUndefined();
  });
});
