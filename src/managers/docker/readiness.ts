/**
 * Whether a Docker cluster that was just started came up: the ports Docker published, then the
 * management daemon's /admin/ping and the query frontend's /health through them, polled with
 * waitUntil on an injected clock. A container that exited or keeps restarting ends the wait at
 * once, with its last log lines; so does the deadline, naming the URL that did not answer.
 */
import type { ClusterAddresses } from "../container-manager.js";
import { ManagerError } from "../errors.js";
import { waitUntil, type Clock } from "../common/index.js";
import type { ContainerDetails, DockerEngine } from "./engine.js";
import { INTERNAL_PORTS } from "./labels.js";

/** One health check: undefined when `url` answers 200 (with `expect` in its body), else why not. */
export type Probe = (url: string, headers: Record<string, string>, timeoutMs: number, expect?: string) => Promise<string | undefined>;

/** The two containers a start waits for, by id. */
export type Frontends = Record<keyof typeof TITLES, string>;

export interface PublishedPorts {
  query: number;
  management: number;
}

export interface Readiness {
  engine: DockerEngine;
  probe: Probe;
  clock: Clock;
  /** Inspects a container that must exist (errors mapped by the manager). */
  inspect(id: string): Promise<ContainerDetails>;
}

const TITLES = { management: "the management daemon", frontend: "the query frontend" } as const;
const READY_POLL_MS = 250;

/** The ports Docker published; a container that already exited is a failed start, with its log. */
export async function publishedPorts(r: Readiness, containers: Frontends): Promise<PublishedPorts> {
  const [m, f] = await Promise.all([r.inspect(containers.management), r.inspect(containers.frontend)]);
  for (const [component, info] of [["management", m], ["frontend", f]] as const) {
    if (info.state === "exited" || info.state === "dead") throw await startupError(r.engine, component, info.id, `exited with code ${info.exitCode}`);
  }
  const ports = { query: f.ports[INTERNAL_PORTS.query] ?? 0, management: m.ports[INTERNAL_PORTS.management] ?? 0 };
  // Between an exit and Docker's restart a container publishes nothing: that too is a failed start.
  for (const [component, info, port] of [["management", m, ports.management], ["frontend", f, ports.query]] as const) {
    if (!port && (info.state === "restarting" || info.restartCount > 0)) {
      throw await startupError(r.engine, component, info.id,
        `keeps exiting (exit code ${info.exitCode}; Docker restarted it ${info.restartCount} time${info.restartCount === 1 ? "" : "s"})`);
    }
  }
  if (!ports.query || !ports.management) {
    throw new ManagerError(`Docker did not publish the cluster's ports (${m.name} ${m.state}, ${f.name} ${f.state})`, "STARTUP_FAILED");
  }
  return ports;
}

/** Waits until /admin/ping and /health answer through the published ports, or explains why not. */
export async function waitUntilUp(r: Readiness, addresses: ClusterAddresses, containers: Frontends, timeoutMs: number): Promise<void> {
  const headers: Record<string, string> = addresses.token ? { authorization: `Bearer ${addresses.token}` } : {};
  const checks = [
    { component: "management" as const, url: `${addresses.managementUrl}/admin/ping`, expect: "PONG", ok: false, problem: "no answer yet" },
    { component: "frontend" as const, url: `${addresses.queryUrl}/health`, expect: undefined, ok: false, problem: "no answer yet" },
  ];
  await waitUntil({
    deadline: r.clock.now() + timeoutMs,
    clock: r.clock,
    intervalMs: READY_POLL_MS,
    attempt: async (left) => {
      await Promise.all(checks.filter((c) => !c.ok).map(async (check) => {
        const problem = await r.probe(check.url, headers, Math.max(200, Math.min(2000, left)), check.expect);
        check.ok = problem === undefined;
        if (problem) check.problem = problem;
      }));
      if (checks.every((c) => c.ok)) return true;
      for (const check of checks.filter((c) => !c.ok)) {
        const info = await r.inspect(containers[check.component]);
        const exited = info.state === "exited" || info.state === "dead";
        const restarts = info.restartCount;
        if (restarts > 0 || exited) {
          throw await startupError(r.engine, check.component, containers[check.component], exited
            ? `exited with code ${info.exitCode}${restarts ? ` after ${restarts} restart${restarts > 1 ? "s" : ""}` : ""}`
            : `keeps exiting (Docker restarted it ${restarts} time${restarts > 1 ? "s" : ""})`);
        }
      }
      return undefined;
    },
    onTimeout: () => {
      const check = checks.find((c) => !c.ok)!;
      return startupError(r.engine, check.component, containers[check.component], `did not answer GET ${check.url} within ${timeoutMs} ms (${check.problem})`);
    },
  });
}

async function startupError(engine: DockerEngine, component: keyof typeof TITLES, id: string, what: string): Promise<ManagerError> {
  const info = await engine.inspectContainer(id).catch(() => undefined);
  const lines = (await engine.containerLogs(id, 10).catch(() => [] as string[])).filter((l) => l.trim());
  const tail = lines.length ? `; its last log lines:\n${lines.map((l) => `  ${l}`).join("\n")}` : "; it logged nothing";
  return new ManagerError(`${TITLES[component]} (container ${info?.name ?? id.slice(0, 12)}) ${what}${tail}`, "STARTUP_FAILED");
}
