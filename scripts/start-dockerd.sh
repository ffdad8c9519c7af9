#!/usr/bin/env bash
# Starts dockerd in the background when no daemon answers, and waits until one does (CI and dev machines).
set -euo pipefail
if docker info >/dev/null 2>&1; then echo "docker daemon already running"; exit 0; fi
command -v dockerd >/dev/null || { echo "dockerd is not installed (apt-get install docker.io)" >&2; exit 1; }
log="${DOCKERD_LOG:-/tmp/dockerd.log}"
# A daemon killed with its machine's session leaves its pid files; a new one refuses to start on them.
for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
  if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then rm -f "$pidfile"; fi
done
setsid dockerd >"$log" 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then echo "docker daemon started"; exit 0; fi
  sleep 1
done
echo "dockerd did not answer within 60 s; see $log" >&2
tail -20 "$log" >&2
exit 1
