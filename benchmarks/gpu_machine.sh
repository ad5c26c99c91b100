#!/usr/bin/env bash
# The grader's GPU checks, on a CUDA machine that has PyTorch but not the Jupyter/nbgrader stack:
#   bash benchmarks/gpu_machine.sh OUT_DIR
# Expects wheels of that stack for the machine's Python in .whl/ (pip download nbgrader==0.9.6 ...
# --python-version 3.12 --only-binary=:all:, minus what the machine has). Writes one file per step:
# the CUDA calibration (cuda.json, calibrate.txt), the examples graded on CUDA (grade.txt,
# grades.csv) and the per-submission times (grading-cuda.txt).
set -o pipefail
out=${1:?usage: gpu_machine.sh OUT_DIR}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "gpu_machine: the wheels in .whl/ did not install"; exit 9; }
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
{ nvidia-smi -L; nproc; git rev-parse HEAD 2>/dev/null;
  python3 -c "import sys, torch, torchvision, nbgrader; print(sys.version.split()[0], torch.__version__, torchvision.__version__, nbgrader.__version__)"; } \
  2>&1 | tee "$out/machine.txt"
timeout 240 python3 -m autograder calibrate 2>&1 | tee "$out/calibrate.txt"
cp autograder/calibration/cuda.json "$out/cuda.json" 2>/dev/null
timeout 150 python3 -m autograder grade examples/submissions --out /tmp/graded --workers 4 2>&1 | tee "$out/grade.txt"
cp /tmp/graded/grades.csv "$out/grades.csv" 2>/dev/null
timeout 150 python3 benchmarks/grading.py --repeats 1 --copies 0 --device cuda 2>&1 | tee "$out/grading-cuda.txt"
