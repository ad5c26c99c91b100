#!/usr/bin/env bash
# The GPU measurements of the grader, as run on a lent GPU machine (torch there, no nbgrader):
#   bash benchmarks/gpu_machine.sh OUT_DIR
# Expects the Jupyter/nbgrader wheels of requirements.txt (those the machine lacks) in .whl/,
# built for its Python (pip download --python-version 3.12 ...). Writes one text file per step.
set -o pipefail
out=${1:?usage: gpu_machine.sh OUT_DIR}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "gpu_machine: the wheels in .whl/ did not install"; exit 9; }
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
{ nvidia-smi -L; nproc; python3 -c "import sys, torch, torchvision; print(sys.version.split()[0], torch.__version__, torchvision.__version__)"; } \
  2>&1 | tee "$out/machine.txt"
timeout 100 python3 benchmarks/convergence.py --repeats 3 --profile 2>&1 | tee "$out/convergence.txt"
timeout 100 python3 -m autograder grade examples/submissions --out /tmp/graded --workers 4 2>&1 | tee "$out/grade.txt"
cp /tmp/graded/grades.csv "$out/grades.csv" 2>/dev/null
timeout 180 python3 benchmarks/grading.py --repeats 2 --copies 0 --device cuda 2>&1 | tee "$out/grading-cuda.txt"
timeout 170 python3 benchmarks/grading.py --repeats 2 --copies 0 --device cpu 2>&1 | tee "$out/grading-cpu.txt"
