#!/usr/bin/env bash
# `make container`: build the grading image (deploy/Dockerfile) with podman, offline, or with
# docker where that is what the machine has (docker pulls the Dockerfile's CUDA base: it needs a
# registry). With podman nothing comes from a registry:
#   1. the base: base.sh (debootstrap of Debian 12 from the package archive, podman import),
#      given to the build with --from in place of the Dockerfile's nvidia/cuda base, which only
#      adds the variables of NVIDIA's container toolkit; torch's wheels bring their own CUDA;
#   2. the stack: a wheelhouse of requirements.txt, downloaded here with pip (and this host's pip
#      configuration), mounted into the build with a pip.conf that installs from it alone;
#   3. podman build --isolation chroot (no nested namespaces needed).
# Prints the build time and the image's size.
#
#   bash deploy/docker/build.sh [IMAGE]      default IMAGE: w4-autograder
# Environment: ENGINE (podman or docker), BASE (default w4-base:bookworm), PIP (default .venv/bin/pip),
# WHEELHOUSE (default out/container/wheelhouse).
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE="${1:-w4-autograder}"
BASE="${BASE:-w4-base:bookworm}"
PIP="${PIP:-.venv/bin/pip}"
WHEELHOUSE="${WHEELHOUSE:-out/container/wheelhouse}"
ENGINE="${ENGINE:-$(command -v podman || command -v docker || true)}"
die() { echo "build.sh: error: $*" >&2; exit 1; }
[ -n "$ENGINE" ] || die "neither podman nor docker is installed: apt-get install podman (as root), or install docker"
start=$(date +%s)

if [ "$(basename "$ENGINE")" = docker ]; then
    "$ENGINE" build -f deploy/Dockerfile -t "$IMAGE" .
else
    bash deploy/docker/base.sh "$BASE"
    # wheels for the base's Python (Debian 12's 3.11.2), which may be older than this host's 3.11
    base_python=$("$ENGINE" --runtime runc run --rm --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 "$BASE" \
        python3.11 -c 'import platform; print(platform.python_version())')
    echo "build.sh: wheelhouse of requirements.txt for Python $base_python in $WHEELHOUSE"
    constraints=(); [ -f constraints.txt ] && constraints=(-c constraints.txt)
    # --ignore-requires-python as in the build's pip.conf below; a failed download stops here, naming pip's error
    "$PIP" download -q --only-binary=:all: --python-version "$base_python" --ignore-requires-python \
        -r requirements.txt "${constraints[@]}" pip -d "$WHEELHOUSE" \
        2>&1 | { grep -v "^WARNING: Location" || true; }
    # ignore-requires-python: constraints.txt pins wheels that ask for a later 3.11 patch release than
    # Debian 12's 3.11.2 (soupsieve 2.10: >=3.11.5); install.sh's check then imports every package
    printf '[global]\nno-index = true\nfind-links = /wheelhouse\nignore-requires-python = true\n' \
        > "$WHEELHOUSE/../pip.conf"
    echo "build.sh: podman build of deploy/Dockerfile on $BASE"
    "$ENGINE" build --isolation chroot --from "$BASE" --ignorefile deploy/Dockerfile.dockerignore \
        -v "$PWD/$WHEELHOUSE:/wheelhouse:ro" -v "$PWD/$WHEELHOUSE/../pip.conf:/etc/pip.conf:ro" \
        -f deploy/Dockerfile -t "$IMAGE" .
fi
size=$("$ENGINE" image inspect "$IMAGE" --format '{{.Size}}')
echo "build.sh: $IMAGE built in $(( $(date +%s) - start )) s, $(( size / 1000000 )) MB"
