"""`python -m autograder grade` on a mixed folder, through real kernels.

The folder holds the example submissions (reference, blank release, realistic partial ones,
with their expected per-cell scores in ``examples/submissions/expected.json``) plus a corrupt
JSON file and another assignment's notebook. It is graded once, through the command line.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.validator import Validator

import course_config as cfg
from autograder.grading.grade import graded_cells

EXAMPLES = cfg.EXAMPLES_DIR
AUTO_IDS, MANUAL_IDS = graded_cells()
pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    for notebook in EXAMPLES.glob("*.ipynb"):
        shutil.copy(notebook, folder)
    (folder / "zz_corrupt.ipynb").write_text('{"cells": [{"cell_type": "code",')
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("week 3")]), folder / "zz_foreign.ipynb")
    out = tmp_path_factory.mktemp("out")
    run = subprocess.run([sys.executable, "-m", "autograder", "grade", str(folder), "--out", str(out), "--workers", "2"],
                         cwd=cfg.ROOT, capture_output=True, text=True, timeout=900)
    with open(out / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    return run, rows, out


def test_grade_exits_zero_and_prints_the_table(graded):
    run, rows, _ = graded
    assert run.returncode == 0, run.stderr
    assert "student" in run.stdout and "reference" in run.stdout


def test_csv_has_one_column_per_graded_cell(graded):
    _, rows, _ = graded
    columns = list(next(iter(rows.values())))
    assert columns == ["student_id", "autograded_score", "autograded_max", *AUTO_IDS, *MANUAL_IDS, "status", "device", "isolation"]


def test_reference_earns_full_marks_and_blank_earns_zero(graded):
    _, rows, _ = graded
    full = sum(cfg.POINTS[g] for g in AUTO_IDS)
    assert float(rows["reference"]["autograded_score"]) == full == float(rows["reference"]["autograded_max"])
    assert float(rows["blank"]["autograded_score"]) == 0
    assert rows["reference"]["status"] == rows["blank"]["status"] == "graded"


def test_every_example_gets_its_expected_per_cell_scores(graded):
    _, rows, _ = graded
    expected = json.loads((EXAMPLES / "expected.json").read_text())
    for student, cells in expected.items():
        for cell, score in cells.items():
            assert float(rows[student][cell]) == score, f"{student}: {cell} scored {rows[student][cell]}, expected {score}"


def test_broken_submissions_get_zero_with_a_reason(graded):
    _, rows, _ = graded
    assert rows["zz_corrupt"]["status"].startswith("error: zz_corrupt.ipynb: not valid JSON")
    assert "another assignment" in rows["zz_foreign"]["status"]
    for student in ["zz_corrupt", "zz_foreign"]:
        assert float(rows[student]["autograded_score"]) == 0


def hidden_identifiers() -> set[str]:
    """Private names (``_trace``, ``_EXPECTED``...) defined only in hidden test regions.

    HTML feedback highlights code token by token, so whole lines never appear verbatim;
    these identifiers would, if any hidden code were shown.
    """
    source = nbformat.read(cfg.SOURCE_NOTEBOOK, as_version=4)
    names = set()
    for cell in source.cells:
        for region in re.findall(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", cell.source, re.S):
            names.update(re.findall(r"\b_[A-Za-z][A-Za-z0-9_]{3,}\b", region))
    return names


def test_feedback_shows_no_hidden_test(graded):
    _, rows, out = graded
    names = hidden_identifiers()
    assert len(names) > 10
    for student in ["reference", "blank"]:
        html = (out / "feedback" / f"{student}.html").read_text()
        assert "BEGIN HIDDEN TESTS" not in html
        leaked = sorted(name for name in names if re.search(rf"(?<![\w]){name}(?![\w])", html))
        assert not leaked, f"{student}'s feedback shows hidden test code: {leaked[:5]}"


def test_the_reference_passes_nbgrader_validate(tmp_path):
    # what `nbgrader validate` runs: the visible tests, in a kernel (the hidden ones run in the grader,
    # tests/test_judge.py), in the release's folder; it exits 0 even on failure, so its result is read instead
    folder = shutil.copytree(cfg.RELEASE_DIR / cfg.ASSIGNMENT_ID, tmp_path / "release")
    shutil.copy(EXAMPLES / "reference.ipynb", folder / "reference.ipynb")
    results = Validator().validate(str(folder / "reference.ipynb"))
    assert "failed" not in results and "type_changed" not in results, results


def test_honest_feedback_carries_no_grader_note(graded):
    _, rows, out = graded
    for student in json.loads((EXAMPLES / "expected.json").read_text()):
        result = json.loads((out / ".course" / "results" / f"{student}.json").read_text())
        assert result["notes"] == {}, (student, result["notes"])
        assert "[grader]" not in (out / "feedback" / f"{student}.html").read_text(), student


def test_device_column_follows_the_gpus_kernels_can_see(tmp_path, monkeypatch):
    # A stand-in nvidia-smi lists one GPU; an empty CUDA_VISIBLE_DEVICES (what the kernels inherit,
    # and what benchmarks/grading.py --device cpu sets) hides it, and the column must say so.
    from autograder.grading.grade import grading_device

    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-0)'\n")
    (tmp_path / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert grading_device() == "cuda (GPU 0: NVIDIA H200)"
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert grading_device() == "cpu"


def test_gradebook_schema_revision_read_in_process_is_alembics_own(tmp_path):
    # nbgrader asks the `alembic heads` command; the grader answers from alembic's API in-process.
    from nbgrader.dbutil import _temp_alembic_ini

    from autograder.grading.course import alembic_head

    alembic = shutil.which("alembic", path=str(Path(sys.executable).parent))
    with _temp_alembic_ini(f"sqlite:///{tmp_path / 'gradebook.db'}") as ini:
        heads = subprocess.run([alembic, "-c", ini, "heads"], capture_output=True, text=True, check=True).stdout
    assert heads.split()[0] == alembic_head()


def test_a_canary_failing_beside_students_keeps_nothing_of_theirs_and_loses_nothing_graded(tmp_path):
    # With 2 workers the canary grades beside the first student. Make it fail (its notebook is a
    # partial one): the student graded beside it must be a grader fault with no score, and what an
    # earlier run kept for that student (result, feedback) must be left as it was.
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    submissions.mkdir()
    shutil.copy(EXAMPLES / "reference.ipynb", submissions / "alice.ipynb")
    first = subprocess.run([sys.executable, "-m", "autograder", "grade", str(submissions), "--out", str(out)],
                           cwd=cfg.ROOT, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    kept = {path: path.read_bytes() for path in (out / ".course" / "results" / "alice.json", out / "feedback" / "alice.html")}
    nb = nbformat.read(submissions / "alice.ipynb", as_version=4)  # a new version of alice's notebook
    nb.cells.append(nbformat.v4.new_markdown_cell("one more thought"))
    nbformat.write(nb, submissions / "alice.ipynb")
    script = ("import sys; from pathlib import Path; import course_config as cfg; from autograder.grading.grade import grade\n"
              "cfg.REFERENCE_SUBMISSION = cfg.EXAMPLES_DIR / 'partial_memory_only.ipynb'\n"
              "rows = grade(Path(sys.argv[1]), Path(sys.argv[2]), workers=2)\n"
              "print('\\n'.join(f'{r.student_id}|{r.status}|{r.score}' for r in rows))")
    second = subprocess.run([sys.executable, "-c", script, str(submissions), str(out)], cwd=cfg.ROOT,
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    student, status, score = second.stdout.strip().splitlines()[-1].split("|")
    assert status.startswith("error: grader: not graded, the canary failed") and score == "None", status
    with open(out / "grades.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert row["autograded_score"] == "" and all(row[c] == "" for c in cfg.POINTS)
    assert all(path.read_bytes() == content for path, content in kept.items())
    assert not (out / ".course" / "held").exists()
