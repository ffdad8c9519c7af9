/**
 * Keeps two processes from starting the same local cluster at once: a lock file holding the
 * starter's pid, created exclusively; a lock left by a starter that died is taken over.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { ManagerError } from "../errors.js";
import { pidAlive } from "./processes.js";

/** Takes the cluster directory's start lock; returns what releases it. */
export function acquireStartLock(clusterDir: string, cluster: string): () => void {
  const lock = join(clusterDir, "start.lock");
  mkdirSync(clusterDir, { recursive: true, mode: 0o700 });
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(lock, "wx", 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(lock, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw err;
      const holder = Number(readFileSync(lock, "utf8").trim());
      if (Number.isInteger(holder) && holder > 0 && pidAlive(holder)) {
        throw new ManagerError(`cluster ${cluster} is being started by another process (pid ${holder})`, "CLUSTER_ALREADY_RUNNING");
      }
      rmSync(lock, { force: true });
    }
  }
}
