"""Correct designs the instructions allow, graded through real kernels: full marks, and no note.

``tests/alternatives/`` holds one submission per design (``make_alternatives.py`` says what each
student did differently from the reference); the selftest grades them beside the mutants too.
"""
from __future__ import annotations

import json
import shutil
import sys

import pytest

import course_config as cfg
from autograder.grading.grade import grade

CORPUS = cfg.ROOT / "tests" / "alternatives"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())
pytestmark = [pytest.mark.kernel, pytest.mark.slow]

sys.path.insert(0, str(CORPUS))
from make_alternatives import build  # noqa: E402


def test_committed_corpus_is_what_the_generator_makes():
    for relative, content in build().items():
        assert (cfg.ROOT / relative).read_bytes() == content, f"{relative} is stale: run tests/alternatives/make_alternatives.py"
    assert len(EXPECTED) >= 10


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    folder = tmp_path_factory.mktemp("alternatives")
    for name in EXPECTED:
        shutil.copy(CORPUS / f"{name}.ipynb", folder)
    return {row.student_id: row for row in grade(folder, tmp_path_factory.mktemp("out"), workers=2, canary=False)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_allowed_design_earns_full_marks_without_a_note(rows, name):
    row = rows[name]
    assert row.status == "graded", row.status
    assert {cell: row.cells[cell] for cell in EXPECTED[name]["scores"]} == EXPECTED[name]["scores"], row.failed
    assert row.notes == {}, row.notes
    assert "[grader]" not in row.feedback.read_text()
