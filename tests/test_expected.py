"""The examples' expected scores, as ``make demo`` and the container's demo check them, on both sides:
a grades.csv with exactly the expected points passes, one cell off fails naming it."""
from __future__ import annotations

import csv
import json

import pytest

import course_config as cfg
from autograder.authoring import expected

pytestmark = pytest.mark.fast
EXPECTED = json.loads((cfg.EXAMPLES_DIR / "expected.json").read_text())


def write_grades(path, change=None, isolation="sandbox"):
    cells = sorted({cell for wanted in EXPECTED.values() for cell in wanted})
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["student_id", *cells, "status", "isolation"])
        for student, wanted in sorted(EXPECTED.items()):
            points = {cell: f"{wanted[cell]:g}" if cell in wanted else "" for cell in cells}
            if change and change[0] == student:
                points[change[1]] = change[2]
            writer.writerow([student, *points.values(), "graded", isolation])
    return path


def test_the_expected_scores_pass(tmp_path, capsys):
    assert expected.main([str(write_grades(tmp_path / "grades.csv"))]) == 0
    out = capsys.readouterr().out
    assert f"demo: all {len(EXPECTED)} examples got the scores" in out
    assert "demo: kernels' isolation: sandbox" in out


def test_one_cell_off_fails_naming_it(tmp_path, capsys):
    student = sorted(EXPECTED)[0]
    cell, points = sorted(EXPECTED[student].items())[0]
    assert expected.main([str(write_grades(tmp_path / "grades.csv", (student, cell, str(points + 1))))]) == 1
    err = capsys.readouterr().err
    assert f"demo: UNEXPECTED {student}: {cell} scored {points + 1:.1f}, expected {points:g}" in err
    assert "got the scores" not in err


def test_a_missing_student_fails(tmp_path):
    ok, lines = expected.verdict_lines({})
    assert not ok and len(lines) == sum(len(cells) for cells in EXPECTED.values())


def test_isolation_asked_for_passes_when_every_row_has_it_and_fails_otherwise(tmp_path, capsys):
    grades = str(write_grades(tmp_path / "sandboxed.csv"))
    assert expected.main([grades, "--isolation", "sandbox"]) == 0
    unsandboxed = str(write_grades(tmp_path / "none.csv", isolation="NONE: the grader does not run as root"))
    assert expected.main([unsandboxed]) == 0  # not asked: the scores alone
    capsys.readouterr()
    assert expected.main([unsandboxed, "--isolation", "sandbox"]) == 1
    err = capsys.readouterr().err
    assert "demo: UNEXPECTED isolation: NONE: the grader does not run as root, expected sandbox on every row" in err
