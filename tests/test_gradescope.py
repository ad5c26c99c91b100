"""The Gradescope autograder: the zip, and run() in a folder laid out like /autograder/.

Only one test executes a notebook: the generated ``run_autograder`` script, run from an
unpacked zip on a copy of the release, which goes through ``run()`` end to end. The other
submissions (none, several, invalid JSON) are refused before any kernel starts.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

import course_config as cfg
from autograder.platforms import gradescope
from autograder.grading.grade import GradeRow, graded_cells

AUTO_IDS, MANUAL_IDS = graded_cells()
SCHEMA = json.loads(gradescope.SCHEMA.read_text())
VENV = Path(sys.executable).parent.parent


def valid(results: dict) -> dict:
    jsonschema.Draft202012Validator(SCHEMA).validate(results)
    return results


def autograder_root(tmp_path: Path, *notebooks: tuple[str, str | Path]) -> Path:
    """A /autograder/ stand-in whose submission/ holds ``(name, text or file to copy)``."""
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    for name, content in notebooks:
        target = root / "submission" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_text(content)
    return root


def results_file(root: Path) -> dict:
    return valid(json.loads((root / "results" / "results.json").read_text()))


# --- the schema itself ---------------------------------------------------------------------------

def test_the_schema_is_a_valid_json_schema_citing_its_source():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert "gradescope-autograders.readthedocs.io/en/latest/specs" in SCHEMA["$comment"]


@pytest.mark.parametrize("results", [
    {"tests": [{"name": "no score anywhere"}]},
    {"score": 1, "stdout_visibility": "students"},
    {"score": 1, "tests": [{"score": 1, "visibility": "after_grading"}]},
    {"score": 1, "scroe": 2},
])
def test_the_schema_rejects_what_gradescope_does_not_define(results):
    with pytest.raises(jsonschema.ValidationError):
        valid(results)


# --- the zip -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    return gradescope.build_zip(tmp_path_factory.mktemp("zip") / "autograder.zip")


def test_the_zip_has_gradescope_scripts_at_its_root(built_zip):
    with zipfile.ZipFile(built_zip) as archive:
        names = set(archive.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
        setup = archive.read("setup.sh").decode()
    assert {"setup.sh", "run_autograder"} <= names
    assert modes["setup.sh"] & 0o111 and modes["run_autograder"] & 0o111
    assert "deploy/docker/install.sh" in setup and gradescope.VENV in setup


def test_the_zip_holds_what_the_grader_needs_and_nothing_else(built_zip):
    with zipfile.ZipFile(built_zip) as archive:
        names = set(archive.namelist())
    needed = {"course_config.py", "nbgrader_config.py", "requirements.txt", "autograder/__init__.py",
              "autograder/grading/grade.py", "autograder/platforms/gradescope.py", "deploy/docker/install.sh",
              f"source/{cfg.ASSIGNMENT_ID}/{cfg.NOTEBOOK_NAME}.ipynb",
              f"source/{cfg.ASSIGNMENT_ID}/data/MNIST/raw/train-images-idx3-ubyte"}
    assert needed <= names, needed - names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith(("release/", "tests/"))]


def test_the_zip_is_reproducible_and_must_be_a_zip(built_zip, tmp_path):
    assert gradescope.build_zip(tmp_path / "again.zip").read_bytes() == built_zip.read_bytes()
    with pytest.raises(ValueError, match="must be a .zip file"):
        gradescope.build_zip(tmp_path / "autograder.tar")


@pytest.mark.parametrize("script", ["setup.sh", "run_autograder"])
def test_the_scripts_parse_as_bash(built_zip, tmp_path, script):
    path = tmp_path / script
    path.write_bytes(zipfile.ZipFile(built_zip).read(script))
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


# --- run(): submissions refused before grading ---------------------------------------------------------

def test_no_notebook_scores_zero_with_a_message(tmp_path):
    root = autograder_root(tmp_path, ("notes.txt", "my answers are in my head"))
    results = gradescope.run(root)
    assert results == results_file(root)
    assert results["score"] == 0 and "No notebook (.ipynb file) was found" in results["output"]
    assert [t["name"] for t in results["tests"]] == AUTO_IDS
    assert all(t["score"] == 0 and t["output"].startswith("not graded") for t in results["tests"])


def test_several_notebooks_score_zero_naming_them(tmp_path):
    root = autograder_root(tmp_path, ("a.ipynb", "{}"), ("sub/b.ipynb", "{}"),
                           (".ipynb_checkpoints/a-checkpoint.ipynb", "{}"))
    gradescope.run(root)
    results = results_file(root)
    assert results["score"] == 0
    assert "2 notebooks were found in your submission (a.ipynb, sub/b.ipynb)" in results["output"]


def test_invalid_json_scores_zero_with_the_reason(tmp_path):
    root = autograder_root(tmp_path, (f"{cfg.NOTEBOOK_NAME}.ipynb", '{"cells": [{"cell_type": "code",'))
    gradescope.run(root)
    results = results_file(root)
    assert results["score"] == 0 and results["stdout_visibility"] == "hidden"
    assert f"could not be graded: {cfg.NOTEBOOK_NAME}.ipynb: not valid JSON" in results["output"]
    assert all(t["max_score"] == cfg.POINTS[t["name"]] for t in results["tests"])


def test_a_crash_of_the_grader_writes_no_score(tmp_path, monkeypatch, caplog):
    def crash(root):
        raise RuntimeError("the gradebook is locked")

    monkeypatch.setattr(gradescope, "grade_submission", crash)
    root = autograder_root(tmp_path)
    (root / "results").mkdir()
    (root / "results" / "results.json").write_text('{"score": 0}')  # a stale file is not left standing
    assert gradescope.run(root) is None
    assert not (root / "results" / "results.json").exists()
    assert "the gradebook is locked" in caplog.text  # in the log, which only instructors see


def test_run_autograder_fails_without_a_score_when_python_cannot_start(built_zip, tmp_path):
    root = autograder_root(tmp_path)
    (root / "run_autograder").write_bytes(zipfile.ZipFile(built_zip).read("run_autograder"))
    (root / "source").mkdir()
    run = subprocess.run(["bash", str(root / "run_autograder")], capture_output=True, text=True, timeout=60,
                         env={**os.environ, gradescope.ROOT_VARIABLE: str(root), "VENV": str(tmp_path / "no-venv")})
    assert run.returncode != 0
    assert not (root / "results" / "results.json").exists()
    assert "no score was given" in run.stderr


# --- pieces of a result --------------------------------------------------------------------------

@pytest.mark.parametrize("metadata, expected", [
    ({"users": [{"email": "ada.lovelace@uni.edu", "name": "Ada"}]}, "ada.lovelace_uni.edu"),
    ({"users": [{"name": "Ada Lovelace"}]}, "Ada_Lovelace"),
    ({"users": []}, "submission"),
    ({"users": [{"name": "__"}]}, "submission"),  # nothing usable left after cleaning
    (None, "submission"),
])
def test_the_student_id_comes_from_the_submission_metadata(tmp_path, metadata, expected):
    if metadata is not None:
        (tmp_path / "submission_metadata.json").write_text(json.dumps(metadata))
    assert gradescope.student_id(tmp_path) == expected


def test_tests_show_failures_and_hide_hidden_tests_until_published():
    first, second = AUTO_IDS[:2]
    cells = {g: 0.0 for g in AUTO_IDS} | {first: float(cfg.POINTS[first])} | {g: None for g in MANUAL_IDS}
    row = GradeRow("ada", cfg.POINTS[first], 21.0, cells, "graded", {second: "AssertionError: 1 MB is 10**6 bytes"})
    passed = gradescope.cell_result(first, row, hidden={first})
    failed = gradescope.cell_result(second, row, hidden=set())
    assert passed == {"name": first, "score": cfg.POINTS[first], "max_score": cfg.POINTS[first],
                      "output": "passed", "visibility": "after_published"}
    assert failed["output"] == "AssertionError: 1 MB is 10**6 bytes" and failed["visibility"] == "visible"
    assert gradescope.cells_with_hidden_tests() <= set(AUTO_IDS)


# --- the real thing, through the generated script ---------------------------------------------

@pytest.mark.kernel
@pytest.mark.platform  # Gradescope's platform, as the container's run of it: make test-platforms
def test_run_autograder_grades_the_release_from_the_unpacked_zip(built_zip, tmp_path):
    """Gradescope's layout: the zip unpacked into source/, run_autograder beside it."""
    root = autograder_root(tmp_path, (f"{cfg.NOTEBOOK_NAME}.ipynb", cfg.RELEASE_NOTEBOOK))
    with zipfile.ZipFile(built_zip) as archive:
        archive.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission_metadata.json").write_text(json.dumps({"users": [{"email": "ada@uni.edu"}]}))
    env = {**os.environ, gradescope.ROOT_VARIABLE: str(root), "VENV": str(VENV)}
    run = subprocess.run(["bash", str(root / "run_autograder")], capture_output=True, text=True, env=env,
                         cwd=root, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = results_file(root)
    assert results["score"] == 0 and isinstance(results["execution_time"], int)
    assert [t["name"] for t in results["tests"]] == AUTO_IDS  # hand-graded q_* cells are not tests
    assert sum(t["max_score"] for t in results["tests"]) == sum(cfg.POINTS[g] for g in AUTO_IDS)
    assert all(t["output"] != "passed" and t["output"] for t in results["tests"])
    assert {t["visibility"] for t in results["tests"]} == {"after_published"}  # every cell has hidden tests
    assert "graded by hand" in results["output"] and all(q in results["output"] for q in MANUAL_IDS)
    assert "BEGIN HIDDEN TESTS" not in json.dumps(results)
