/**
 * Recorded queries read back from a query log export (docs/rollouts.md#query-log): the file that
 * `clipper query-log APP --export FILE` wrote, or the daemon's export read as it streams. Replay and
 * warm-up from the log both read them here. Lines are validated one by one: a torn line (a file cut
 * short), one that is not JSON, does not fit the record schema, is feedback, or names another
 * application is skipped and counted, never fatal. Memory stays bounded whatever the input: a line
 * longer than MAX_RECORDED_LINE_BYTES is skipped without being held.
 */
import { type QueryRecord, QueryRecordSchema } from "../runtime/shared/query-log.js";

/** An exported line is a record (at most 1 MiB as the frontend wrote it) plus its joined feedback. */
export const MAX_RECORDED_LINE_BYTES = 4 * 1024 * 1024;

/** Why lines were skipped, and how many of each. */
export interface SkippedLines {
  /** Not JSON, cut short, longer than the bound, or not a query record of the log's schema. */
  invalid: number;
  /** A record of another application than the one replayed. */
  other_app: number;
}

export function noSkippedLines(): SkippedLines {
  return { invalid: 0, other_app: 0 };
}

/** The lines of a byte stream, without their "\n" (a last line without one is yielded too); `undefined` for an over-long line. */
async function* lines(chunks: AsyncIterable<Uint8Array>, maxBytes: number): AsyncGenerator<string | undefined> {
  let parts: Buffer[] = [];
  let held = 0;
  let overLong = false;
  for await (const chunk of chunks) {
    let buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (let end = buf.indexOf(0x0a); ; end = buf.indexOf(0x0a)) {
      const piece = end < 0 ? buf : buf.subarray(0, end);
      if (!overLong) {
        if (held + piece.length > maxBytes) {
          overLong = true;
          parts = [];
          held = 0;
        } else {
          // A copy: the stream may reuse its chunk.
          parts.push(Buffer.from(piece));
          held += piece.length;
        }
      }
      if (end < 0) break;
      yield overLong ? undefined : Buffer.concat(parts).toString("utf8");
      parts = [];
      held = 0;
      overLong = false;
      buf = buf.subarray(end + 1);
    }
  }
  if (overLong) yield undefined;
  else if (held > 0) yield Buffer.concat(parts).toString("utf8");
}

/**
 * The query records of application `app` in a stream of exported JSON lines, in order. Skipped
 * lines are counted into `skipped` (blank lines are not lines). Stops early when the consumer does.
 */
export async function* recordedQueries(chunks: AsyncIterable<Uint8Array>, app: string, skipped: SkippedLines): AsyncGenerator<QueryRecord> {
  for await (const line of lines(chunks, MAX_RECORDED_LINE_BYTES)) {
    if (line !== undefined && line.trim() === "") continue;
    const record = line === undefined ? undefined : parseRecord(line);
    if (!record) skipped.invalid++;
    else if (record.app !== app) skipped.other_app++;
    else yield record;
  }
}

function parseRecord(line: string): QueryRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  const record = QueryRecordSchema.safeParse(value);
  // The schema takes any JSON as input and output, but a line may lack either key: such a record has nothing to send or compare.
  return record.success && record.data.input !== undefined && record.data.output !== undefined ? record.data : undefined;
}
