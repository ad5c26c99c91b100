"""The grading container without Docker: the Dockerfile read statically, and its two scripts
(install.sh, entrypoint.sh) run directly on this checkout and its venv."""
from __future__ import annotations

import csv
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import course_config as cfg

DOCKER = cfg.ROOT / "deploy" / "docker"
DOCKERFILE = cfg.ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = cfg.ROOT / "deploy" / "Dockerfile.dockerignore"
VENV = Path(sys.executable).parent.parent  # the venv running these tests
CUDA_IMAGES = ("nvidia/cuda:", "pytorch/pytorch:")


def script_env(**changes: str) -> dict[str, str]:
    return {**os.environ, "VENV": str(VENV), "REPO": str(cfg.ROOT), **changes}


def run_script(name: str, *args: str, timeout: int = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(DOCKER / name), *args], capture_output=True, text=True,
                          env=script_env(**env), timeout=timeout, cwd="/")


# --- The Dockerfile, statically ---------------------------------------------------------------

def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with comments dropped and continuation lines joined."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in text.splitlines() if line.strip()]


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage: what the image that runs is made of."""
    found = instructions()
    start = max(i for i, (word, _) in enumerate(found) if word == "FROM")
    return found[start:]


def copy_sources(stage: list[tuple[str, str]]) -> list[str]:
    sources = []
    for word, args in stage:
        if word == "COPY" and "--from" not in args:
            sources += [a for a in args.split()[:-1] if not a.startswith("--")]
    return sources


def test_the_base_image_is_cuda_capable_and_matches_torch():
    image = final_stage()[0][1].split()[0]
    assert image.startswith(CUDA_IMAGES), f"{image}: not a CUDA image"
    import torch

    if image.startswith("nvidia/cuda:") and torch.version.cuda:  # a CPU-only torch build says nothing
        assert image.split(":")[1].startswith(torch.version.cuda), (
            f"{image} is not CUDA {torch.version.cuda}, the CUDA of the pinned torch {torch.__version__}")


def test_the_image_runs_as_a_non_root_user():
    users = [args.split(":")[0] for word, args in final_stage() if word == "USER"]
    assert users, "no USER: the container would run as root"
    assert users[-1] not in {"root", "0"}
    created = [args for word, args in final_stage() if word == "RUN" and "useradd" in args]
    assert created and users[-1] in created[-1]


def test_the_pinned_stack_comes_from_requirements_through_install_sh():
    stage = final_stage()
    assert "requirements.txt" in copy_sources(stage)
    runs = [args for word, args in stage if word == "RUN"]
    assert any("install.sh --deps-only" in r for r in runs) and any("install.sh --check-only" in r for r in runs)


def test_nothing_is_downloaded_outside_the_package_managers():
    for word, args in final_stage():
        if word in {"RUN", "ADD", "ENTRYPOINT", "CMD"}:
            assert not re.search(r"\b(curl|wget)\b|https?://", args), f"{word} {args}"


def test_the_repository_and_its_data_are_copied_in():
    sources = copy_sources(final_stage())
    for needed in ["course_config.py", "nbgrader_config.py", "autograder", "source", "release"]:
        assert needed in sources
    for source in sources:
        assert (cfg.ROOT / source).exists(), f"COPY {source}: no such path in the repository"


def test_the_build_context_keeps_what_the_image_copies():
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    allowed = [p[1:] for p in patterns if p.startswith("!")]
    assert patterns[0] == "*", "the ignore file lists what to keep, so .venv/ and out/ stay out of the context"
    for source in copy_sources(final_stage()):
        assert any(fnmatch.fnmatch(source, a) or source.startswith(a + "/") for a in allowed), \
            f"{source} is excluded from the context"


def test_the_entrypoint_is_the_script_in_exec_form():
    (entrypoint,) = [args for word, args in final_stage() if word == "ENTRYPOINT"]
    assert json.loads(entrypoint)[-1].endswith("deploy/docker/entrypoint.sh")


# --- install.sh -------------------------------------------------------------------------------

def test_install_checks_an_existing_venv():
    run = run_script("install.sh", "--check-only")
    assert run.returncode == 0, run.stderr
    assert "stack OK: Python 3.11" in run.stdout and "subset and held-out set verified" in run.stdout


def test_install_refuses_a_missing_venv_and_unknown_options(tmp_path):
    run = run_script("install.sh", "--check-only", VENV=str(tmp_path / "none"))
    assert run.returncode != 0 and "run install.sh without --check-only" in run.stderr
    run = run_script("install.sh", "--everything")
    assert run.returncode != 0 and "unknown option '--everything'" in run.stderr


def test_install_reports_a_version_that_differs_from_its_pin(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tqdm==0.0.1\n")
    run = run_script("install.sh", "--check-only", REQUIREMENTS=str(requirements))
    assert run.returncode != 0 and "requirements.txt pins 0.0.1" in run.stderr


@pytest.mark.slow
def test_install_builds_a_venv_from_a_requirements_file(tmp_path):
    """The full path (venv, pip, checks) on a one-package requirements file; needs the registry."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tqdm==4.70.1\n")
    run = run_script("install.sh", "--deps-only", timeout=300, VENV=str(tmp_path / "venv"),
                     REQUIREMENTS=str(requirements), PYTHON=sys.executable)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "1 packages of" in run.stdout and (tmp_path / "venv" / "bin" / "python").exists()


# --- entrypoint.sh ----------------------------------------------------------------------------

def test_entrypoint_without_a_venv_says_which_variable_to_set(tmp_path):
    run = run_script("entrypoint.sh", VENV=str(tmp_path))
    assert run.returncode == 2 and "set VENV" in run.stderr


@pytest.mark.skipif(Path("/data/submissions").exists(), reason="this machine has a /data/submissions")
def test_entrypoint_defaults_to_grading_data_submissions():
    run = run_script("entrypoint.sh")
    assert run.stdout.startswith("grading device: ")
    assert run.returncode == 2 and "/data/submissions: not a folder of submissions" in run.stderr


@pytest.mark.kernel
@pytest.mark.platform
def test_entrypoint_grades_a_folder(tmp_path):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    shutil.copy(cfg.RELEASE_NOTEBOOK, submissions / "blank.ipynb")
    out = tmp_path / "out"
    run = run_script("entrypoint.sh", "grade", str(submissions), "--out", str(out), timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.match(r"grading device: (cpu|cuda) \(", run.stdout), run.stdout[:200]
    with open(out / "grades.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["student_id"] == "blank" and row["status"] == "graded" and float(row["autograded_score"]) == 0
