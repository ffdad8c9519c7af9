#!/usr/bin/env bash
# Builds (or reuses) the local base image the Docker tests run on: no registry is reachable here,
# so it is made from Debian packages with debootstrap, with the host's Node binary copied in.
# Usage: scripts/docker-test-base.sh [IMAGE]   (default clipper-test-base:bookworm)
set -euo pipefail
image="${1:-clipper-test-base:bookworm}"
# python3-zmq needs python3-cffi-backend named: debootstrap does not resolve virtual packages.
# python3-cloudpickle: pickled predict functions (func.pkl) load with the version the host pickles with.
packages="python3,python3-numpy,python3-zmq,python3-cffi-backend,python3-sklearn,python3-joblib,python3-cloudpickle,ca-certificates"
# The image records its package list in a label: one built from another list (an older script) is rebuilt.
label="ai.clipper.test-base.packages"
if docker image inspect "$image" >/dev/null 2>&1; then
  built_with=$(docker image inspect -f "{{if .Config.Labels}}{{index .Config.Labels \"$label\"}}{{end}}" "$image")
  if [ "$built_with" = "$packages" ]; then
    echo "base image $image already present"
    exit 0
  fi
  echo "base image $image was built with other packages (${built_with:-none recorded}); rebuilding it"
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
mirror=$(grep -m1 '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | awk '{print $2}')
mirror="${mirror:-http://deb.debian.org/debian}"
rootfs=$(mktemp -d /tmp/clipper-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "building $image from $mirror (debootstrap, about a minute or two)"
debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >/tmp/clipper-debootstrap.log 2>&1 || { tail -20 /tmp/clipper-debootstrap.log >&2; exit 1; }
cp "$(readlink -f "$(command -v node)")" "$rootfs/usr/local/bin/node"
chroot "$rootfs" apt-get clean || true
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' \
  -c "LABEL $label=\"$packages\"" - "$image" >/dev/null
echo "built $image"
