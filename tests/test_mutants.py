"""The example submissions and the mutants: reproducible, and well labelled.

Each mutant in ``tests/mutants/`` carries one realistic mistake; ``expected.json`` there says
which test cells it must lose (score 0), which it must cost a share of their points (a
multiple-choice slip), and which it must keep (full points). Most mutants
pass the visible tests, so grading them shows that the hidden tests catch what the visible
ones let through. ``examples/submissions/`` holds whole submissions (reference, blank,
partial) with their expected score per test cell.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

import course_config as cfg
from autograder.grading.grade import graded_cells

MUTANTS_DIR = cfg.ROOT / "tests" / "mutants"
EXAMPLES_DIR = cfg.EXAMPLES_DIR
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
        lose, keep, partial = expectation["must_lose"], expectation["must_keep"], expectation["must_score"]
        assert lose or partial, f"mutant {name} loses no points: it is no mistake"
        assert sorted(lose + keep + list(partial)) == sorted(AUTO_IDS), \
            f"mutant {name}: must_lose + must_score + must_keep is not each test cell exactly once"
        for cell, points in partial.items():
            assert 0 < points < cfg.POINTS[cell], f"mutant {name}: {cell} must score a share, not {points}"


def test_every_test_cell_is_made_to_fail_by_some_mutant() -> None:
    lost = {cell for expectation in MUTANTS.values() for cell in [*expectation["must_lose"], *expectation["must_score"]]}
    assert lost == set(AUTO_IDS), f"no mutant costs points on {sorted(set(AUTO_IDS) - lost)}"


def test_a_multiple_choice_slip_costs_half_the_points() -> None:
    shares = {cell: points for expectation in MUTANTS.values() for cell, points in expectation["must_score"].items()}
    from autograder.grading.judge import Judge

    partial = {gid for gid, code in Judge(cfg.SOURCE_NOTEBOOK).tests.items() if re.search(r"^share\s*=", code, re.M)}
    assert set(shares) == partial == {"test_mcq_minibatch", "test_mcq_momentum"}
    assert all(points == 0.5 * cfg.POINTS[cell] for cell, points in shares.items())  # right minus wrong


def test_a_mutation_that_does_not_apply_fails_loudly() -> None:
    with pytest.raises(ValueError, match="ex3_momentum"):
        make_submissions.filled([make_submissions.mutation("ex3_momentum", "no such code", "x")])


# Grading the corpus through real kernels is done by the selftest (tests/test_readme.py, make test-all)
# (every mutant, the reference and the blank release) and tests/test_grade.py (the examples).
