/** Container logs as the Engine API sends them, turned into lines. */

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
