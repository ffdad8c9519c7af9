/** Container logs as the Engine API sends them, turned into lines. */
import { TextLines } from "../common/follow.js";

/**
 * The payload of a log answer. Without a TTY the daemon multiplexes stdout and stderr into frames
 * of an 8-byte header (stream 0/1/2, three zero bytes, big-endian u32 length) and the payload;
 * frames are concatenated in the order they were written. Anything not in that shape is returned
 * as it is (a container with a TTY sends raw bytes).
 */
export function demuxLogs(buffer: Buffer): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset < buffer.length) {
    if (offset + 8 > buffer.length) return buffer;
    const stream = buffer[offset]!;
    if (stream > 2 || buffer[offset + 1] !== 0 || buffer[offset + 2] !== 0 || buffer[offset + 3] !== 0) return buffer;
    const size = buffer.readUInt32BE(offset + 4);
    const end = offset + 8 + size;
    if (end > buffer.length) return buffer;
    parts.push(buffer.subarray(offset + 8, end));
    offset = end;
  }
  return Buffer.concat(parts);
}

/** The last `tail` lines of a log answer (no trailing empty line). */
export function logLines(buffer: Buffer, tail: number): string[] {
  const text = demuxLogs(buffer).toString("utf8");
  const lines = text.split(/\r?\n/);
  if (lines.at(-1) === "") lines.pop();
  return tail > 0 ? lines.slice(-tail) : [];
}

/**
 * Lines out of a followed log stream, which arrives in arbitrary chunks: frames are parsed as they
 * complete (the same 8-byte headers as demuxLogs), and stdout and stderr keep separate partial
 * lines so that one never splits the other's. A stream whose first bytes are no frame header (a
 * TTY container) is read as raw text.
 */
export class LogStreamLines {
  private pending: Buffer = Buffer.alloc(0);
  private raw: boolean | undefined;
  private readonly streams: TextLines[];

  constructor(onLine: (line: string) => void) {
    this.streams = [0, 1, 2].map(() => new TextLines(onLine));
  }

  push(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    if (this.raw === undefined && this.pending.length >= 4) this.raw = !isFrameHeader(this.pending);
    if (this.raw) {
      this.text(0, this.pending);
      this.pending = Buffer.alloc(0);
      return;
    }
    let offset = 0;
    while (this.raw === false && offset + 8 <= this.pending.length) {
      const size = this.pending.readUInt32BE(offset + 4);
      if (offset + 8 + size > this.pending.length) break;
      this.text(this.pending[offset]!, this.pending.subarray(offset + 8, offset + 8 + size));
      offset += 8 + size;
    }
    this.pending = this.pending.subarray(offset);
  }

  /** The unterminated last lines, if any. */
  end(): void {
    if (this.pending.length) this.text(0, this.pending);
    this.pending = Buffer.alloc(0);
    for (const stream of this.streams) stream.end();
  }

  private text(stream: number, bytes: Buffer): void {
    this.streams[stream]!.push(bytes);
  }
}

function isFrameHeader(bytes: Buffer): boolean {
  return bytes[0]! <= 2 && bytes[1] === 0 && bytes[2] === 0 && bytes[3] === 0;
}
