#!/usr/bin/env bash
# Starts a local image registry for the push tests (the distribution registry, Debian's package
# docker-registry) in the background when none answers, and waits until one does. Installs nothing.
# It listens on loopback only (default 127.0.0.1:5055), where the Docker daemon pushes over plain
# HTTP without any daemon configuration (127.0.0.0/8 is an insecure registry by default).
# Usage: scripts/start-registry.sh
#   CLIPPER_TEST_REGISTRY   127.0.0.1:PORT to listen on (default 127.0.0.1:5055; loopback only)
#   CLIPPER_REGISTRY_DIR    configuration, storage, log and pid file (default /tmp/clipper-test-registry-PORT)
set -euo pipefail
addr="${CLIPPER_TEST_REGISTRY:-127.0.0.1:5055}"
addr="${addr%%/*}"
dir="${CLIPPER_REGISTRY_DIR:-/tmp/clipper-test-registry-${addr##*:}}"
if ! [[ "$addr" =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+$ ]]; then
  echo "CLIPPER_TEST_REGISTRY=$addr is not a loopback 127.x.x.x:PORT address; the test registry listens on loopback only" >&2
  exit 1
fi
url="http://$addr/v2/"

# The HTTP status of GET /v2/ (000 or 0 when nothing answers).
status() {
  if command -v curl >/dev/null; then
    curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null || true
  else
    node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(2000) }).then((r) => console.log(r.status), () => console.log(0))' "$url" 2>/dev/null || true
  fi
}
answers() { [ "$(status)" = 200 ]; }

code=$(status)
if [ "$code" = 200 ]; then echo "registry already answering at $url"; exit 0; fi
if [ -n "$code" ] && [ "$code" != 000 ] && [ "$code" != 0 ]; then
  # e.g. the package's own service (its config wants htpasswd credentials and binds every interface).
  echo "something else answers $url with HTTP $code (the docker-registry service? stop it: systemctl stop docker-registry)" >&2
  exit 1
fi
command -v docker-registry >/dev/null || { echo "docker-registry is not installed (apt-get install docker-registry)" >&2; exit 1; }

mkdir -p "$dir/data"
config="$dir/config.yml"
log="$dir/registry.log"
# No auth and no health checks; deletes allowed so tests can remove what they pushed.
cat >"$config" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
EOF

setsid docker-registry serve "$config" >"$log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$dir/registry.pid"
for _ in $(seq 1 100); do
  if answers; then echo "registry started at $url (pid $pid, storage $dir/data)"; exit 0; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "docker-registry exited before answering at $url; see $log" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "docker-registry did not answer at $url within 10 s; see $log" >&2
tail -20 "$log" >&2
exit 1
