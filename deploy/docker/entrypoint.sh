#!/usr/bin/env bash
# The grading image's entry point: `python -m autograder "$@"` from the repository, with the
# venv first on PATH (nbgrader runs `alembic` from there). Without arguments it grades the
# mounted folder:  grade /data/submissions --out /data/out
# It first prints the device the grading kernels will use, so a run's log says whether the
# GPU was seen (a CPU grade is valid, only slower; course_config.DEVICE_POLICY can force it).
#
# Environment: VENV (default /opt/venv), REPO (default /opt/autograder), as in the Dockerfile;
# tests point them at a checkout and its .venv.
set -euo pipefail

VENV="${VENV:-/opt/venv}"
REPO="${REPO:-/opt/autograder}"
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "entrypoint.sh: error: $PY not found: set VENV to the venv made by install.sh" >&2; exit 2; }
[ -f "$REPO/course_config.py" ] || { echo "entrypoint.sh: error: $REPO holds no course_config.py: set REPO" >&2; exit 2; }
export PATH="$VENV/bin:$PATH"
cd "$REPO"

# The kernel's view: apply the DEVICE_POLICY environment before torch looks for CUDA.
"$PY" - <<'PY'
import os

from autograder.grading.settings import kernel_environment

os.environ.update(kernel_environment())
import torch  # noqa: E402 - after the environment change, which CUDA reads at start

if torch.cuda.is_available():
    print(f"grading device: cuda ({torch.cuda.get_device_name(0)}, torch {torch.__version__})", flush=True)
else:
    print(f"grading device: cpu (torch {torch.__version__})", flush=True)
PY

if [ "$#" -eq 0 ]; then
    set -- grade /data/submissions --out /data/out
fi
exec "$PY" -m autograder "$@"
