/**
 * How long a stopping replica gets after SIGTERM before it is killed, on every manager (local:
 * `stopGraceMs`, Docker: `stopGraceSeconds` and the containers' StopTimeout, Kubernetes: the pods'
 * terminationGracePeriodSeconds). A replica drains on SIGTERM (docs/autoscaling.md): it waits for its
 * frontends' acknowledgement (at most 5 s each, CLIPPER_DRAIN_TIMEOUT_MS) and answers the batches it
 * holds, and a model's batch can take seconds. Killed sooner, a batch it holds is computed twice.
 */
export const STOP_GRACE_SECONDS = 30;
