/**
 * One supervised child process: started in its own process group with stdout and stderr appended
 * to its log file (between the supervisor's own lines when it starts or exits), restarted with capped exponential backoff when it exits unexpectedly, and
 * stopped with SIGTERM to the whole group, then SIGKILL after a grace period.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { pino } from "pino";
import type { Logger } from "../../../runtime/shared/logger.js";
import { SUPERVISOR_COMPONENT } from "../../log-lines.js";
import { signalGroup } from "./processes.js";
import type { LastExit, RestartPolicy } from "./schemas.js";

export interface ProcessSpec {
  component: string;
  argv: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  logFile: string;
  /** Removed before each start and after each exit (the child creates it when it is ready). */
  readyFile?: string;
}

export type ProcessState = "running" | "restarting" | "exited";

/** A log file past this size is moved to `<name>.log.1` when its process (re)starts. */
const MAX_LOG_BYTES = 64 * 1024 * 1024;

export interface ProcessClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): NodeJS.Timeout;
  clearTimeout(timer: NodeJS.Timeout): void;
}

const systemClock: ProcessClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t),
};

export class ManagedProcess {
  private child: ChildProcess | undefined;
  private pidValue: number | undefined;
  private startedAtMs: number | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private wanted = false;
  private failures = 0;
  private restartCount = 0;
  private last: LastExit | undefined;
  private exitWaiters: (() => void)[] = [];

  constructor(
    readonly spec: ProcessSpec,
    private readonly policy: RestartPolicy,
    private readonly log: Logger,
    /** Called whenever the pid or state changes. */
    private readonly onChange: () => void,
    private readonly clock: ProcessClock = systemClock,
  ) {}

  get component(): string {
    return this.spec.component;
  }
  get pid(): number | undefined {
    return this.pidValue;
  }
  get restarts(): number {
    return this.restartCount;
  }
  get lastExit(): LastExit | undefined {
    return this.last;
  }
  get startedAt(): string | undefined {
    return this.startedAtMs === undefined ? undefined : new Date(this.startedAtMs).toISOString();
  }
  get state(): ProcessState {
    if (this.child) return "running";
    if (this.restartTimer) return "restarting";
    return "exited";
  }

  start(): void {
    if (this.wanted) return;
    this.wanted = true;
    this.launch();
  }

  private launch(): void {
    if (!this.wanted) return;
    const { spec } = this;
    if (spec.readyFile) rmSync(spec.readyFile, { force: true });
    rotateIfLarge(spec.logFile);
    let fd: number;
    try {
      fd = openSync(spec.logFile, "a", 0o600);
    } catch (err) {
      this.exited(undefined, null, null, `cannot open ${spec.logFile}: ${(err as Error).message}`);
      return;
    }
    let child: ChildProcess;
    try {
      writeSync(fd, supervisorLine("info", this.clock.now(), spec.component, `starting ${spec.component}: ${spec.argv.join(" ")}`));
      const [program, ...args] = spec.argv as [string, ...string[]];
      // detached: the child leads a new session and process group, so a stop reaches its own children too.
      child = spawn(program, args, { cwd: spec.cwd, env: spec.env, stdio: ["ignore", fd, fd], detached: true });
    } catch (err) {
      this.exited(undefined, null, null, (err as Error).message);
      return;
    } finally {
      closeSync(fd);
    }
    let settled = false;
    child.once("error", (err) => {
      if (settled || child.pid !== undefined) {
        this.log.warn({ child: spec.component, err: err.message }, "child process error");
        return;
      }
      settled = true;
      this.exited(undefined, null, null, err.message);
    });
    child.once("exit", (code, signal) => {
      if (settled) return;
      settled = true;
      this.exited(child.pid, code, signal);
    });
    if (child.pid === undefined) return; // the error event follows
    this.child = child;
    this.pidValue = child.pid;
    this.startedAtMs = this.clock.now();
    this.log.info({ child: spec.component, pid: child.pid, restarts: this.restartCount }, "started");
    this.onChange();
  }

  private exited(pid: number | undefined, code: number | null, signal: NodeJS.Signals | null, error?: string): void {
    const ranMs = this.startedAtMs === undefined || pid === undefined ? 0 : this.clock.now() - this.startedAtMs;
    this.child = undefined;
    this.pidValue = undefined;
    this.last = { code, signal, ...(error ? { error } : {}), at: new Date(this.clock.now()).toISOString() };
    // Whatever the child left behind in its group goes with it.
    if (pid !== undefined) signalGroup(pid, "SIGKILL");
    if (this.spec.readyFile) rmSync(this.spec.readyFile, { force: true });
    if (!this.wanted) {
      this.log.info({ child: this.spec.component, code, signal }, "stopped");
      this.settleStop();
      this.onChange();
      return;
    }
    if (ranMs >= this.policy.resetAfterMs) this.failures = 0;
    this.failures += 1;
    const delay = Math.min(this.policy.initialDelayMs * 2 ** (this.failures - 1), this.policy.maxDelayMs);
    this.log.warn(
      { child: this.spec.component, code, signal, error, ranMs, restartInMs: delay },
      "exited unexpectedly; restarting",
    );
    appendLine(this.spec.logFile, supervisorLine("warn", this.clock.now(), this.spec.component, `${this.spec.component} ${describeExit(this.last)}; restarting in ${delay} ms`));
    this.restartTimer = this.clock.setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.wanted) return;
      this.restartCount += 1;
      this.launch();
    }, delay);
    this.onChange();
  }

  /** Stops the process (and its process group); resolves once it has exited. */
  async stop(graceMs: number): Promise<void> {
    this.wanted = false;
    if (this.restartTimer) {
      this.clock.clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
      this.onChange();
    }
    const pid = this.pidValue;
    if (!this.child || pid === undefined) return;
    const done = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    signalGroup(pid, "SIGTERM");
    const kill = this.clock.setTimeout(() => {
      this.log.warn({ child: this.spec.component, pid, graceMs }, "did not stop in time; killing");
      signalGroup(pid, "SIGKILL");
    }, graceMs);
    // Should the exit event never come, do not hang a shutdown forever.
    const giveUp = new Promise<void>((resolve) => {
      const t = this.clock.setTimeout(resolve, graceMs + 5_000);
      void done.then(() => this.clock.clearTimeout(t));
    });
    await Promise.race([done, giveUp]);
    this.clock.clearTimeout(kill);
  }

  /** Last resort when the supervisor itself is going down hard: signal the group, do not wait. */
  killNow(signal: NodeJS.Signals): void {
    this.wanted = false;
    if (this.pidValue !== undefined) signalGroup(this.pidValue, signal);
  }

  private settleStop(): void {
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    for (const w of waiters) w();
  }
}

export function describeExit(exit: LastExit): string {
  if (exit.error) return `could not be started (${exit.error})`;
  if (exit.signal) return `was killed by ${exit.signal}`;
  return `exited with code ${exit.code}`;
}

/**
 * The supervisor's line in a child's log, shaped as the supervisor's own (pino's): so every line of
 * a local log is one JSON object with level, time, component and msg, and filters alike. `child`
 * names the supervised component (`component` is the writer, as everywhere).
 */
export function supervisorLine(level: "info" | "warn", timeMs: number, child: string, msg: string): string {
  return `${JSON.stringify({ level: pino.levels.values[level], time: timeMs, component: SUPERVISOR_COMPONENT, child, msg })}\n`;
}

function rotateIfLarge(file: string): void {
  try {
    if (statSync(file).size > MAX_LOG_BYTES) renameSync(file, `${file}.1`);
  } catch {
    // no log yet
  }
}

function appendLine(file: string, line: string): void {
  try {
    const fd = openSync(file, "a", 0o600);
    try {
      writeSync(fd, line);
    } finally {
      closeSync(fd);
    }
  } catch {
    // the log directory may be gone during a purge
  }
}
