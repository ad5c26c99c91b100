# Quick start: `make demo` (release + grade the examples), `make test` (the test suite).
# Both create .venv/ with the pinned stack (requirements.txt, constraints.txt) on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# the venv is remade when either file changes: requirements.txt (what the course needs) and
# constraints.txt (the exact version of every package installed with it)
STAMP := $(VENV)/.installed-$(shell cat requirements.txt constraints.txt | cksum | cut -d' ' -f1)
# nbgrader runs `alembic` from PATH when it creates a gradebook
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install sandbox-tools browser-tools slurm-tools container-tools container container-demo demo test test-fast test-attacks test-platforms test-all release grade calibrate benchmarks clean

$(STAMP): requirements.txt constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -c constraints.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP) sandbox-tools

# bubblewrap sandboxes the grading kernels: installed with apt where we are root, else named
sandbox-tools:
	@command -v bwrap >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing bubblewrap (the kernel sandbox) with apt-get"; \
		(apt-get install -y -q bubblewrap >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q bubblewrap >/dev/null)) \
			|| echo "WARNING: apt-get could not install bubblewrap: kernels will NOT be sandboxed"; \
	else \
		echo "WARNING: bubblewrap (bwrap) is missing and cannot be installed here (not root, or no apt-get):"; \
		echo "         kernels will NOT be sandboxed; install it (apt-get install bubblewrap) and grade as root"; \
	fi

# headless Chromium and its driver, for the formgrader's browser test (which skips without them)
browser-tools:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium and chromium-driver (the formgrader test's browser) with apt-get"; \
		(apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null)) \
			|| echo "WARNING: apt-get could not install chromium: the formgrader browser test will skip"; \
	else \
		echo "WARNING: chromium/chromedriver missing and not installable here: the formgrader browser test will skip"; \
	fi

# Slurm and munge, for the one-node cluster that tests/test_slurm.py starts (which skips without them)
slurm-tools:
	@PATH="$$PATH:/usr/sbin:/sbin"; \
	command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v munged >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing slurm-wlm and munge (the Slurm tests' one-node cluster) with apt-get"; \
		(apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm munge >/dev/null)) \
			|| echo "WARNING: apt-get could not install slurm-wlm and munge: the Slurm tests will skip"; \
	else \
		echo "WARNING: Slurm (slurm-wlm) and munge missing and not installable here (not root, or no apt-get): the Slurm tests will skip"; \
	fi

# the grading image: podman (apt, as root) and debootstrap build it offline (deploy/docker/build.sh);
# a docker whose daemon answers will do too (a docker client alone does not)
container-tools:
	@PATH="$$PATH:/usr/sbin:/sbin"; \
	{ command -v podman && command -v runc && command -v debootstrap; } >/dev/null && exit 0; \
	command -v docker >/dev/null && docker info >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing podman, runc and debootstrap (to build and run the grading image) with apt-get"; \
		apt-get install -y -q podman runc debootstrap >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q podman runc debootstrap >/dev/null); \
	else \
		echo "podman, or docker with a running daemon, is needed to build the grading image: install one"; exit 1; \
	fi

container: install container-tools
	bash deploy/docker/build.sh

# grade the examples inside the image (no network, non-root), then Gradescope's entry point there
container-demo: container
	bash deploy/docker/demo.sh

demo: install
	$(BIN)/python -m autograder demo --out out/demo

# the default suite (what CI runs): every grading path; test-all adds the mutant corpus and calibration
test: install browser-tools
	$(BIN)/python -m pytest -m "not extended and not platform" --durations=25

# the grader on its platforms and placements: a one-node Slurm cluster, sandbox placements and faults,
# every README command from a fresh copy, shards, the container's entry point (about 10 minutes);
# CI runs it after `make test`
test-platforms: install browser-tools slurm-tools
	$(BIN)/python -m pytest -m "platform and not extended" --durations=10

# unit tests with no kernel and no nbgrader run (the `fast` marker): under a minute; only the files that
# hold such tests are collected (collecting the whole suite imports every test module: 20 s more)
test-fast: install
	$(BIN)/python -m pytest -m fast -q $$(grep -l 'mark\.fast' tests/test_*.py)

# the adversarial corpus's attacks on the machine's resources (fork and memory bombs, busy children,
# huge output, a signal-proof loop): minutes of CPU, so a run of their own; CI runs it after `make test`
test-attacks: install
	$(BIN)/python -m pytest -m extended tests/test_adversarial.py

test-all: install browser-tools slurm-tools
	$(BIN)/python -m pytest

release: install
	$(BIN)/python -m autograder release

calibrate: install
	$(BIN)/python -m autograder calibrate

benchmarks: install
	$(BIN)/python benchmarks/experiments.py

clean:
	rm -rf out .pytest_cache
