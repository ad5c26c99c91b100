#!/usr/bin/env bash
# Install the pinned grading stack into a virtual environment, then check it.
#
#   VENV=/opt/venv bash deploy/docker/install.sh               # everything below
#   VENV=/opt/venv bash deploy/docker/install.sh --deps-only   # no data check: needs only requirements.txt
#   VENV=.venv     bash deploy/docker/install.sh --check-only  # only the checks, on an existing venv
#
# Steps: Python 3.11 (apt-get, when it is missing and we are root), the venv, `pip install -r
# requirements.txt -c constraints.txt`, then the checks: every pinned version installed, every package imports,
# and `python -m autograder make-data --check` (the shipped MNIST subset matches its checksums).
# Used by deploy/Dockerfile and by Gradescope's setup.sh (autograder/platforms/gradescope.py).
#
# Environment:
#   VENV          the virtual environment to create or check (required)
#   PYTHON        the Python 3.11 to create it with (default python3.11)
#   REQUIREMENTS  the pinned stack (default: requirements.txt of the repository)
#   CONSTRAINTS   every package's tested version (default: constraints.txt beside REQUIREMENTS, if there)
#   REPO          the repository root, for the data check (default: two folders above this script)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="${REPO:-$(cd "$HERE/../.." && pwd)}"
REQUIREMENTS="${REQUIREMENTS:-$REPO/requirements.txt}"
# every installed package at its tested version, when the file sits beside the requirements
CONSTRAINTS="${CONSTRAINTS:-$(dirname "$REQUIREMENTS")/constraints.txt}"
PYTHON="${PYTHON:-python3.11}"

die() { echo "install.sh: error: $*" >&2; exit 1; }
step() { echo "install.sh: $*"; }

ensure_python() {
    # Gradescope's and the CUDA images are Ubuntu: 22.04 has python3.11 in its archive, 24.04
    # only through the deadsnakes PPA, which is tried second.
    command -v "$PYTHON" >/dev/null && return
    if [ "$PYTHON" != python3.11 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        die "$PYTHON not found: install Python 3.11, or set PYTHON=/path/to/python3.11"
    fi
    step "installing Python 3.11 with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    if ! apt-get install -y -q --no-install-recommends python3.11 python3.11-venv; then
        apt-get install -y -q --no-install-recommends ca-certificates gpg-agent software-properties-common
        add-apt-repository -y ppa:deadsnakes/ppa
        apt-get update -q
        apt-get install -y -q --no-install-recommends python3.11 python3.11-venv
    fi
}

make_venv() {
    [ -f "$REQUIREMENTS" ] || die "$REQUIREMENTS not found: set REQUIREMENTS=/path/to/requirements.txt"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
        || die "$PYTHON is Python $("$PYTHON" -V 2>&1), the course pins 3.11: set PYTHON=/path/to/python3.11"
    step "creating $VENV and installing $REQUIREMENTS"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --no-cache-dir --upgrade pip
    if [ -f "$CONSTRAINTS" ]; then
        "$VENV/bin/python" -m pip install -q --no-cache-dir -r "$REQUIREMENTS" -c "$CONSTRAINTS"
    else
        "$VENV/bin/python" -m pip install -q --no-cache-dir -r "$REQUIREMENTS"
    fi
}

check_stack() {
    # Pins compare without the local part: the CUDA wheel of torch 2.14.1 is 2.14.1+cu130.
    [ -x "$VENV/bin/python" ] || die "VENV=$VENV has no bin/python: run install.sh without --check-only to create it"
    [ -f "$REQUIREMENTS" ] || die "$REQUIREMENTS not found: set REQUIREMENTS=/path/to/requirements.txt"
    step "checking $VENV against $REQUIREMENTS"
    "$VENV/bin/python" - "$REQUIREMENTS" <<'PY'
import importlib
import importlib.metadata as md
import sys

if sys.version_info[:2] != (3, 11):
    sys.exit(f"install.sh: error: the venv runs Python {sys.version.split()[0]}, the course pins 3.11")
problems, pins = [], 0
# a distribution's import name may differ from its own (PyYAML: yaml, pillow: PIL, ipython: IPython)
modules = {}
for module, dists in md.packages_distributions().items():
    for dist in dists:
        if not module.startswith("_"):
            modules.setdefault(dist.lower().replace("_", "-"), []).append(module)
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, pinned = line.partition("==")
    pins += 1
    try:
        installed = md.version(name)
    except md.PackageNotFoundError:
        problems.append(f"{name} is not installed")
        continue
    if pinned and installed.split("+")[0] != pinned:
        problems.append(f"{name} {installed} is installed, requirements.txt pins {pinned}")
    try:
        key = name.lower().replace("_", "-")
        importlib.import_module(min(modules.get(key, [name.replace("-", "_")]),
                                    key=lambda m: (m.lower() != key.replace("-", "_"), m)))
    except Exception as error:  # a broken binary wheel raises anything
        problems.append(f"import {name} fails: {type(error).__name__}: {error}")
if problems:
    sys.exit("install.sh: error: " + "; ".join(problems) + " (rerun install.sh without --check-only)")
print(f"install.sh: stack OK: Python {sys.version.split()[0]}, {pins} packages of {sys.argv[1]} at their pins")
PY
}

check_data() {
    [ -f "$REPO/course_config.py" ] || die "$REPO holds no course_config.py: set REPO to the repository root"
    step "checking the MNIST subset in $REPO"
    (cd "$REPO" && "$VENV/bin/python" -m autograder make-data --check)
}

[ -n "${VENV:-}" ] || die "set VENV to the virtual environment to create or check, e.g. VENV=/opt/venv"
case "${1:-}" in
    "")           ensure_python; make_venv; check_stack; check_data ;;
    --deps-only)  ensure_python; make_venv; check_stack ;;
    --check-only) check_stack; check_data ;;
    *)            die "unknown option '$1' (usage: VENV=DIR install.sh [--deps-only | --check-only])" ;;
esac
step "done"
