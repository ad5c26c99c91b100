#!/usr/bin/env bash
# `make container-demo`: grade examples/submissions inside the grading image with no network, as
# its non-root user (the canary first, as always), then check every example's scores against
# examples/submissions/expected.json; again as root with the capabilities bubblewrap needs, every
# kernel sandboxed; then the Gradescope entry point (run_autograder) on the reference inside the
# same image.
#
#   bash deploy/docker/demo.sh [IMAGE]       default IMAGE: w4-autograder
# podman runs with runc and explicit rlimits: crun refuses hybrid cgroups, and an unprivileged
# engine may not raise the rlimits it would otherwise copy from the host.
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE="${1:-w4-autograder}"
OUT="${OUT:-out/container-demo}"
ENGINE="${ENGINE:-$(command -v podman || command -v docker || true)}"
[ -n "$ENGINE" ] || { echo "demo.sh: error: neither podman nor docker is installed" >&2; exit 1; }
if [ "$(basename "$ENGINE")" = podman ]; then
    RUN=("$ENGINE" --runtime runc run --ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
else
    RUN=("$ENGINE" run)
fi
rm -rf "$OUT" && mkdir -p "$OUT/grade" "$OUT/gradescope/submission" "$OUT/gradescope/results"
chmod -R a+rwX "$OUT"  # written by the image's user, grader (uid 10001)

echo "demo.sh: grading examples/submissions in $IMAGE (no network, user grader)"
"${RUN[@]}" --rm --network none -v "$PWD/examples/submissions:/data/submissions:ro" -v "$PWD/$OUT/grade:/data/out" \
    "$IMAGE"
.venv/bin/python -m autograder.authoring.expected "$OUT/grade/grades.csv"  # as `make demo` checks them

# As root with the two capabilities bubblewrap needs in a container (SYS_ADMIN for its namespaces and
# mounts, NET_ADMIN for the loopback of the kernel's network namespace), the kernels are sandboxed.
# The host's lock folder is mounted so that this run and the host's take different kernel user ids.
LOCKS=/run/lock/w4-sandbox
mkdir -p "$LOCKS" "$OUT/root"
echo "demo.sh: grading examples/submissions in $IMAGE as root with SYS_ADMIN and NET_ADMIN (kernels sandboxed)"
"${RUN[@]}" --rm --network none --user root --cap-add SYS_ADMIN --cap-add NET_ADMIN -v "$LOCKS:$LOCKS" \
    -v "$PWD/examples/submissions:/data/submissions:ro" -v "$PWD/$OUT/root:/data/out" "$IMAGE"
.venv/bin/python -m autograder.authoring.expected "$OUT/root/grades.csv" --isolation sandbox

echo "demo.sh: Gradescope's run_autograder on the reference, in $IMAGE"
GS="$OUT/gradescope"
.venv/bin/python -m autograder gradescope-zip --out "$GS/autograder.zip" >/dev/null
.venv/bin/python -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('run_autograder', sys.argv[2])" \
    "$GS/autograder.zip" "$GS"
ln -s /opt/autograder "$GS/source"  # the image's repository, where Gradescope unpacks the zip
cp examples/submissions/reference.ipynb "$GS/submission/W4_Tutorial1.ipynb"
chmod -R a+rwX "$GS"
"${RUN[@]}" --rm --network none --entrypoint bash -e GRADESCOPE_ROOT=/gradescope -e VENV=/opt/venv \
    -v "$PWD/$GS:/gradescope" "$IMAGE" /gradescope/run_autograder | tail -1
.venv/bin/python -c "import json, sys; r = json.load(open(sys.argv[1])); print(f\"gradescope: {r['score']:g}/{sum(t.get('max_score', 0) for t in r['tests']):g}\")" \
    "$GS/results/results.json"
