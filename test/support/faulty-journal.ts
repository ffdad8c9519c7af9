/** A state journal file that fails on cue (EIO), for the store's write-failure tests: no real disk faults. */
import { open } from "node:fs/promises";
import type { JournalHandle, OpenJournalHandle } from "../../runtime/management/state-journal.js";

type Step = "appendFile" | "datasync" | "truncate" | "sync";

/** Opens the real file; `fail(step, skip)` makes the step's call after the next `skip` ones fail (EIO) instead of running. */
export function faultyJournalFs() {
  const pending = new Map<Step, number>();
  const calls: Step[] = [];
  const fail = (name: Step, skip = 0) => pending.set(name, skip);
  const openJournal: OpenJournalHandle = async (path) => {
    const real = await open(path, "a", 0o600);
    const step = <A extends unknown[], R>(name: Step, run: (...args: A) => Promise<R>) => async (...args: A): Promise<R> => {
      calls.push(name);
      const skip = pending.get(name);
      if (skip === 0) {
        pending.delete(name);
        throw Object.assign(new Error(`EIO: i/o error, ${name}`), { code: "EIO" });
      }
      if (skip !== undefined) pending.set(name, skip - 1);
      return run(...args);
    };
    const handle: JournalHandle = {
      appendFile: step("appendFile", (data: string, encoding: BufferEncoding) => real.appendFile(data, encoding)),
      datasync: step("datasync", () => real.datasync()),
      truncate: step("truncate", (len?: number) => real.truncate(len)),
      sync: step("sync", () => real.sync()),
      stat: () => real.stat(),
      close: () => real.close(),
    } as JournalHandle;
    return handle;
  };
  return { openJournal, fail, calls };
}
