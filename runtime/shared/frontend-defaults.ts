/**
 * The query frontend's defaults, in a module without dependencies, so that the frontend itself,
 * its command line (runtime/frontend/main.ts) and the `clipper` CLI and library, which must not
 * load the frontend to know them, share one set.
 */
export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Clipper's: a replica silent for 30 s is dropped. */
export const DEFAULT_REPLICA_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_BATCH = 64;
/** The frontend process's cache bound (--cache-bytes); `startQueryFrontend` without `cacheBytes` has none. */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
/** Deadline of an Open Inference Protocol request to a model no application links. */
export const DEFAULT_OIP_TIMEOUT_MS = 1_000;
/** Batch latency budget of a model no application links (no SLO to take half of). */
export const DEFAULT_BATCH_BUDGET_MS = 50;
/**
 * Largest frame a model container may send the frontend's RPC port (--max-rpc-frame-bytes,
 * ZMQ_MAXMSGSIZE): a peer that sends a bigger one is disconnected before the frame is allocated.
 * One frame is one output of a batch; 64 MiB leaves room for large outputs.
 */
export const DEFAULT_MAX_RPC_FRAME_BYTES = 64 * 1024 * 1024;
/**
 * The smallest --max-rpc-frame-bytes the frontend accepts: below it even the handshake and
 * heartbeat frames of a well-behaved container would be refused. The CLI and the local manager's
 * state files check against it too, so a smaller value is refused at once, not by a frontend
 * that exits at start.
 */
export const MIN_RPC_FRAME_BYTES = 1024;

/**
 * Most query frontend worker processes on one query port (`--workers`, `--frontend-workers`): more
 * would only share the same cores.
 */
export const MAX_FRONTEND_WORKERS = 8;

/**
 * Batches the frontend keeps in flight to one replica (--max-in-flight, pipelining; dispatcher.ts):
 * with 2 a replica finds its next batch waiting when it answers one, instead of idling for the
 * round trip through the frontend. 1 sends the next batch only after the answer (Clipper's way).
 */
export const DEFAULT_MAX_IN_FLIGHT = 2;
export const MAX_MAX_IN_FLIGHT = 16;
