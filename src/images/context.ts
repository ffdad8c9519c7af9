/**
 * A Docker build context assembled file by file (never a whole directory sent blindly), packed
 * with tar-stream as it is uploaded. Entries are sorted, owned by root and stamped with one fixed
 * time, so the same files give the same tar, the same content hash and the daemon's layer cache.
 */
import { createHash } from "node:crypto";
import { createReadStream, type Stats } from "node:fs";
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import tar from "tar-stream";

const FIXED_MTIME = new Date("2020-01-01T00:00:00Z");

type Source = { file: string } | { data: Buffer };

interface Entry {
  source: Source;
  size: number;
  mode: number;
}

/** Decides whether a file or directory (path relative to the walk's root, `/` separators) is copied. */
export type PathFilter = (relPath: string, isDirectory: boolean) => boolean;

export class BuildContext {
  private readonly files = new Map<string, Entry>();

  /** Adds (or replaces) a file from the host at `target` (relative, `/` separators). */
  addFile(target: string, hostPath: string, info: Pick<Stats, "size" | "mode">): void {
    this.files.set(normalize(target), { source: { file: hostPath }, size: info.size, mode: info.mode & 0o111 ? 0o755 : 0o644 });
  }

  addData(target: string, data: string | Buffer, mode = 0o644): void {
    const buffer = typeof data === "string" ? Buffer.from(data) : data;
    this.files.set(normalize(target), { source: { data: buffer }, size: buffer.length, mode });
  }

  /**
   * Copies a host directory's files under `target`, following symbolic links (a loop is walked
   * once) and skipping what `filter` rejects. Returns how many files were added.
   */
  async addDirectory(target: string, hostDir: string, filter: PathFilter = () => true): Promise<number> {
    const seen = new Set<string>();
    let added = 0;
    const walk = async (dir: string, rel: string): Promise<void> => {
      const real = await realpath(dir);
      if (seen.has(real)) return;
      seen.add(real);
      const names = (await readdir(dir)).sort();
      for (const name of names) {
        const path = join(dir, name);
        const relPath = rel ? `${rel}/${name}` : name;
        let info: Stats;
        try {
          info = await stat(path);
        } catch {
          continue; // a dangling link
        }
        if (info.isDirectory()) {
          if (filter(relPath, true)) await walk(path, relPath);
        } else if (info.isFile() && filter(relPath, false)) {
          this.addFile(target ? `${target}/${relPath}` : relPath, path, info);
          added++;
        }
      }
    };
    await walk(hostDir, "");
    return added;
  }

  get fileCount(): number {
    return this.files.size;
  }

  get byteCount(): number {
    let total = 0;
    for (const e of this.files.values()) total += e.size;
    return total;
  }

  paths(): string[] {
    return [...this.files.keys()].sort();
  }

  /** sha256 over every path, mode and content (hex). */
  async hash(extra = ""): Promise<string> {
    const h = createHash("sha256");
    h.update(extra);
    for (const path of this.paths()) {
      const e = this.files.get(path)!;
      const content = "data" in e.source ? e.source.data : await readFile(e.source.file);
      h.update(`\0${path}\0${e.mode.toString(8)}\0${content.length}\0`);
      h.update(content);
    }
    return h.digest("hex");
  }

  /** The context as a tar stream; files are read as the daemon consumes it. */
  pack(): Readable {
    const pack = tar.pack();
    const dirs = new Set<string>();
    const header = (name: string, extra: Partial<tar.Header>): Partial<tar.Header> & { name: string } => ({
      name,
      mtime: FIXED_MTIME,
      uid: 0,
      gid: 0,
      uname: "root",
      gname: "root",
      ...extra,
    });
    const write = async (): Promise<void> => {
      for (const path of this.paths()) {
        const parts = path.split("/");
        for (let i = 1; i < parts.length; i++) {
          const dir = parts.slice(0, i).join("/");
          if (dirs.has(dir)) continue;
          dirs.add(dir);
          await new Promise<void>((res, rej) => pack.entry(header(`${dir}/`, { type: "directory", mode: 0o755 }), (err) => (err ? rej(err) : res())));
        }
        const e = this.files.get(path)!;
        if ("data" in e.source) {
          const data = e.source.data;
          await new Promise<void>((res, rej) => pack.entry(header(path, { size: data.length, mode: e.mode }), data, (err) => (err ? rej(err) : res())));
        } else {
          const current = await stat(e.source.file);
          if (current.size !== e.size) throw new Error(`${e.source.file} changed size while the build context was being sent`);
          const file = e.source.file;
          await new Promise<void>((res, rej) => {
            const entry = pack.entry(header(path, { size: e.size, mode: e.mode }), (err) => (err ? rej(err) : res()));
            const input = createReadStream(file);
            input.on("error", rej);
            input.pipe(entry);
          });
        }
      }
      pack.finalize();
    };
    write().catch((err: unknown) => pack.destroy(err instanceof Error ? err : new Error(String(err))));
    return pack as unknown as Readable;
  }
}

function normalize(target: string): string {
  const clean = target.replace(/\\/g, "/").replace(/^\/+/, "").replace(/\/+/g, "/");
  if (!clean || clean.split("/").some((p) => p === ".." || p === ".")) throw new Error(`invalid build context path '${target}'`);
  return clean;
}
