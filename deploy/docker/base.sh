#!/usr/bin/env bash
# Build the grading image's base offline, where no image registry is reachable: a minimal Debian
# 12 (bookworm, whose Python is the 3.11 the course pins) made with debootstrap from Debian's
# package archive, which apt reaches, and imported into podman (or docker) as an image.
#
#   bash deploy/docker/base.sh [IMAGE]        default IMAGE: w4-base:bookworm
#
# The image holds python3.11 and its venv module, CA certificates and bubblewrap (the kernel
# sandbox, used when the container runs as root with the capability it needs). torch's wheels
# carry their CUDA runtime: a GPU needs only the host's driver (the NVIDIA container toolkit).
# Environment: ENGINE (podman or docker; default: whichever is installed, podman first),
# MIRROR (default http://deb.debian.org/debian), ROOTFS (default /var/tmp/w4-base-rootfs).
set -euo pipefail

IMAGE="${1:-w4-base:bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
ROOTFS="${ROOTFS:-/var/tmp/w4-base-rootfs}"
ENGINE="${ENGINE:-$(command -v podman || command -v docker || true)}"
die() { echo "base.sh: error: $*" >&2; exit 1; }

[ -n "$ENGINE" ] || die "neither podman nor docker is installed (apt-get install podman)"
[ "$(id -u)" = 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
if "$ENGINE" image exists "$IMAGE" 2>/dev/null || "$ENGINE" image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base.sh: $IMAGE exists; remove it ($ENGINE rmi $IMAGE) to build it again"
    exit 0
fi
rm -rf "$ROOTFS"
echo "base.sh: debootstrap bookworm into $ROOTFS from $MIRROR"
PACKAGES=python3.11,python3.11-venv,python3-distutils,python3-pip-whl,python3-setuptools-whl,ca-certificates,bubblewrap
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" "$MIRROR" > "$ROOTFS.log" 2>&1 \
    || { tail -20 "$ROOTFS.log" >&2; die "debootstrap failed (its log: $ROOTFS.log)"; }
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
echo "base.sh: importing $ROOTFS as $IMAGE"
tar -C "$ROOTFS" -c . | "$ENGINE" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
rm -rf "$ROOTFS"
echo "base.sh: $IMAGE built"
