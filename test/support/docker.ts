/**
 * What Docker tests share: whether they can run here, the local base image they build on (no
 * registry is reachable, so nothing is pulled), running a command in an image, and cleanup by label.
 */
import type Docker from "dockerode";
import { PassThrough } from "node:stream";
import { dockerAvailable, dockerClient } from "../../src/docker/client.js";

/** The base image Docker tests build on: made by scripts/docker-test-base.sh (python3, numpy, zmq, sklearn, node 20). */
export const TEST_BASE_IMAGE = process.env.CLIPPER_TEST_BASE?.trim() || "clipper-test-base:bookworm";

/** True in CI, where a missing daemon or base image must fail the Docker tests rather than skip them. */
export const IN_CI = process.env.CI === "true";

/**
 * Why Docker tests should be skipped (one line), or undefined when a daemon answers and the base
 * image exists. Always undefined in CI (CI=true): there the tests run, and fail if Docker is missing.
 */
export async function dockerSkipReason(docker: Docker = dockerClient()): Promise<string | undefined> {
  if (IN_CI) return undefined;
  if (!(await dockerAvailable(docker))) {
    return "no Docker daemon answers (start one with scripts/start-dockerd.sh, or set DOCKER_HOST)";
  }
  try {
    await docker.getImage(TEST_BASE_IMAGE).inspect();
  } catch {
    return `the base image ${TEST_BASE_IMAGE} is missing (build it with scripts/docker-test-base.sh, or set CLIPPER_TEST_BASE)`;
  }
  return undefined;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `cmd` in a new container of `image` without a network, waits for it (bounded), and removes
 * it. The container carries `labels`, so a test's afterAll can remove it if the test is cut short.
 */
export async function runInImage(
  docker: Docker,
  image: string,
  cmd: string[],
  options: { env?: string[]; labels?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  const container = await docker.createContainer({
    Image: image,
    Cmd: cmd,
    Env: options.env,
    Labels: options.labels,
    HostConfig: { NetworkMode: "none" },
  });
  try {
    await container.start();
    const timeoutMs = options.timeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const result = (await Promise.race([
      container.wait(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${cmd.join(" ")} in ${image} ran past ${timeoutMs} ms`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer))) as { StatusCode: number };
    const { stdout, stderr } = await containerLogs(docker, container);
    return { exitCode: result.StatusCode, stdout, stderr };
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}

/** A container's stdout and stderr so far, demultiplexed. */
export async function containerLogs(docker: Docker, container: Docker.Container): Promise<{ stdout: string; stderr: string }> {
  const raw = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough().on("data", (c: Buffer) => out.push(c));
  const stderr = new PassThrough().on("data", (c: Buffer) => err.push(c));
  const source = new PassThrough();
  docker.modem.demuxStream(source, stdout, stderr);
  await new Promise<void>((resolve) => {
    source.on("end", resolve);
    source.end(raw);
  });
  return { stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
}

/** Removes every container, then every image (newest first, so children go before parents), carrying `label=value`. */
export async function removeByLabel(docker: Docker, label: string, value: string): Promise<{ containers: number; images: number }> {
  const filters = JSON.stringify({ label: [`${label}=${value}`] });
  const containers = await docker.listContainers({ all: true, filters });
  for (const c of containers) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  let removed = 0;
  // Untagged intermediate layers (a failed build's steps) are listed only with all: true.
  for (let pass = 0; pass < 3; pass++) {
    const images = (await docker.listImages({ all: true, filters })).sort((a, b) => b.Created - a.Created);
    if (images.length === 0) break;
    for (const image of images) {
      try {
        await docker.getImage(image.Id).remove({ force: true });
        removed++;
      } catch {
        // already gone with its child, or a child still holds it: the next pass retries
      }
    }
  }
  return { containers: containers.length, images: removed };
}

/**
 * Starts a cluster on Docker through the CLI, with ports Docker picks and the runtime image built
 * on the test base, and any further `start` flags; returns what `start --json` printed (its queryUrl among it).
 */
export async function startDockerTestCluster(env: Record<string, string>, cluster: string, flags: string[] = []): Promise<any> {
  const { runCli } = await import("./cli.js");
  const started = await runCli(["start", "--manager", "docker", "--cluster", cluster, "--runtime-base-image", TEST_BASE_IMAGE,
    "--query-port", "0", "--management-port", "0", "--rpc-port", "0", ...flags, "--json"], env, 300_000);
  if (started.code !== 0) throw new Error(`clipper start --manager docker failed:\n${started.stdout}\n${started.stderr}`);
  return started.json;
}

/**
 * Stops a Docker test cluster and removes whatever a failed test left behind: containers,
 * networks and volumes carrying its label, and the images it built (tagged `<cluster>-*`).
 */
export async function removeDockerTestCluster(docker: Docker, env: Record<string, string>, cluster: string): Promise<void> {
  const { runCli } = await import("./cli.js");
  await runCli(["stop", "--cluster", cluster], env, 120_000);
  const filters = JSON.stringify({ label: [`ai.clipper.container.label=${cluster}`] });
  for (const c of await docker.listContainers({ all: true, filters })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  for (const n of await docker.listNetworks({ filters })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  for (const v of (await docker.listVolumes({ filters })).Volumes ?? []) await docker.getVolume(v.Name).remove().catch(() => undefined);
  for (const image of await docker.listImages({ filters: JSON.stringify({ reference: [`${cluster}-*`] }) })) {
    await docker.getImage(image.Id).remove({ force: true }).catch(() => undefined);
  }
}
