"""The example submissions and the mutants: reproducible, and graded as expected.

Each mutant in ``tests/mutants/`` carries one realistic mistake; ``expected.json`` there says
which test cells it must lose (score 0) and which it must keep (full points). Most mutants
pass the visible tests, so grading them shows that the hidden tests catch what the visible
ones let through. ``examples/submissions/`` holds whole submissions (reference, blank,
partial) with their expected score per test cell.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

import course_config as cfg
from autograder.grade import GradeRow, grade, graded_cells

MUTANTS_DIR = cfg.ROOT / "tests" / "mutants"
EXAMPLES_DIR = cfg.ROOT / "examples" / "submissions"
AUTO_IDS, _ = graded_cells()

sys.path.insert(0, str(MUTANTS_DIR))  # the generator is a script there, not a package module
import make_submissions  # noqa: E402

MUTANTS: dict[str, dict] = json.loads((MUTANTS_DIR / "expected.json").read_text())
EXAMPLES: dict[str, dict[str, float]] = json.loads((EXAMPLES_DIR / "expected.json").read_text())


def committed_files() -> dict[Path, bytes]:
    """The generated files as committed: {path relative to the repository: content}."""
    return {path.relative_to(cfg.ROOT): path.read_bytes()
            for folder in (MUTANTS_DIR, EXAMPLES_DIR) for path in sorted(folder.iterdir())
            if path.suffix in {".ipynb", ".json"}}


def test_committed_submissions_are_what_the_generator_makes(tmp_path: Path) -> None:
    make_submissions.write(tmp_path)
    generated = {path.relative_to(tmp_path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    committed = committed_files()
    assert sorted(map(str, committed)) == sorted(map(str, generated)), \
        "files differ from the generator's: run python tests/mutants/make_submissions.py and commit"
    stale = sorted(str(path) for path in generated if generated[path] != committed[path])
    assert not stale, f"stale, run python tests/mutants/make_submissions.py and commit: {stale}"


def test_each_mutant_expectation_covers_every_test_cell_once() -> None:
    for name, expectation in MUTANTS.items():
        lose, keep = expectation["must_lose"], expectation["must_keep"]
        assert lose, f"mutant {name} loses no test cell: it is no mistake"
        assert sorted(lose + keep) == sorted(AUTO_IDS), \
            f"mutant {name}: must_lose + must_keep is not each test cell exactly once"


def test_every_test_cell_is_made_to_fail_by_some_mutant() -> None:
    lost = {cell for expectation in MUTANTS.values() for cell in expectation["must_lose"]}
    assert lost == set(AUTO_IDS), f"no mutant fails {sorted(set(AUTO_IDS) - lost)}"


def test_a_mutation_that_does_not_apply_fails_loudly() -> None:
    with pytest.raises(ValueError, match="ex3_momentum"):
        make_submissions.filled([make_submissions.mutation("ex3_momentum", "no such code", "x")])


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, GradeRow]:
    """Every example and mutant graded in one ``grade()`` call, sharing one course set-up."""
    folder = tmp_path_factory.mktemp("submissions")
    for source in (EXAMPLES_DIR, MUTANTS_DIR):
        for path in source.glob("*.ipynb"):
            shutil.copyfile(path, folder / path.name)
    rows = grade(folder, tmp_path_factory.mktemp("out"), workers=2)
    return {row.student_id: row for row in rows}


def failure(row: GradeRow, cell: str) -> str:
    """What the grader said about a cell, for assertion messages."""
    return row.failed.get(cell, "no error") + (f"; notes: {row.notes[cell]}" if row.notes.get(cell) else "")


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_loses_exactly_its_cells(graded: dict[str, GradeRow], name: str) -> None:
    row, expectation = graded[name], MUTANTS[name]
    assert row.status == "graded", f"mutant {name}: {row.status}"
    for cell in expectation["must_lose"]:
        assert row.cells[cell] == 0, \
            f"mutant {name} ({expectation['mistake']}) is not caught by {cell}: it scored {row.cells[cell]:g}"
    for cell in expectation["must_keep"]:
        assert row.cells[cell] == cfg.POINTS[cell], \
            f"mutant {name} ({expectation['mistake']}) lost points on {cell}, which its mistake should not touch: " \
            f"{row.cells[cell]:g}/{cfg.POINTS[cell]:g} ({failure(row, cell)})"


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_scores_as_expected(graded: dict[str, GradeRow], name: str) -> None:
    row = graded[name]
    assert row.status == "graded", f"example {name}: {row.status}"
    for cell, expected in EXAMPLES[name].items():
        assert row.cells[cell] == expected, \
            f"example {name}: {cell} scored {row.cells[cell]:g}, expected {expected:g} ({failure(row, cell)})"
