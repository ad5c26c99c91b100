"""Prove the autograder right after an edit of the source notebook.

Grades, in one run, the reference solution (full marks expected), the blank release (zero),
the corpus of wrong submissions in ``tests/mutants/`` (each labelled in ``expected.json``
with the test cells it must lose and those it must keep) and the correct alternative designs of
``tests/alternatives/`` (full marks each), then re-runs the convergence tests
of the reference over ``course_config.CALIBRATION_SEEDS`` seeds on this device. Prints the
discrimination table (submission x test cell: expected, got) and the calibration; any
surprise makes it exit non-zero.

    python -m autograder selftest [--seeds K] [--workers N]
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import course_config as cfg
from autograder.grading.grade import GradeRow, grade, graded_cells

MUTANTS = cfg.ROOT / "tests" / "mutants"
ALTERNATIVES = cfg.ROOT / "tests" / "alternatives"
EXAMPLES = cfg.EXAMPLES_DIR


@dataclass
class Expectation:
    name: str
    lose: set[str]  # test cells that must score 0
    keep: set[str]  # test cells that must keep full points
    label: str
    score: dict[str, float] = field(default_factory=dict)  # test cells that must score exactly this share
    origin: Path = MUTANTS  # the folder of its notebook


def expectations(auto_ids: list[str]) -> list[Expectation]:
    """Reference, blank and every mutant of ``tests/mutants/expected.json``."""
    items = [Expectation("reference", set(), set(auto_ids), "the reference solution", origin=EXAMPLES),
             Expectation("blank", set(auto_ids), set(), "the blank release", origin=EXAMPLES)]
    for name, entry in sorted(json.loads((MUTANTS / "expected.json").read_text()).items()):
        items.append(Expectation(name, set(entry["must_lose"]), set(entry["must_keep"]), entry["mistake"],
                                 entry.get("must_score", {})))
    for name, entry in sorted(json.loads((ALTERNATIVES / "expected.json").read_text()).items()):
        items.append(Expectation(name, set(), set(auto_ids), entry["design"], origin=ALTERNATIVES))
    return items


def surprises(expectation: Expectation, row: GradeRow) -> list[str]:
    """What differs from the expectation, one line per cell; empty when all is as expected."""
    found = []
    if row.status != "graded":
        return [f"{expectation.name}: not graded ({row.status})"]
    if row.notes:  # none of these tampers: a note would accuse honest work
        found.append(f"{expectation.name}: grader notes on a submission that tampers with nothing: {row.notes}")
    for cell in sorted(expectation.lose):
        if row.cells.get(cell):
            found.append(f"{expectation.name}: {cell} scored {row.cells[cell]:g}, expected 0 ({expectation.label})")
    for cell, points in sorted(expectation.score.items()):
        if row.cells.get(cell) != points:
            found.append(f"{expectation.name}: {cell} scored {row.cells.get(cell)}, expected {points:g} "
                         f"({expectation.label})")
    for cell in sorted(expectation.keep):
        if row.cells.get(cell) != cfg.POINTS[cell]:
            found.append(f"{expectation.name}: {cell} scored {row.cells.get(cell)}, expected {cfg.POINTS[cell]} "
                         f"(failed: {row.failed.get(cell, '?')})")
    return found


def discrimination_table(items: list[Expectation], rows: dict[str, GradeRow], auto_ids: list[str]) -> str:
    """One line per submission; per test cell ``expected/got``, ``!`` marking a surprise."""
    short = [cell.removeprefix("test_") for cell in auto_ids]
    width = max(len(item.name) for item in items)
    lines = [" " * width + "  " + "  ".join(f"{s[:14]:>14}" for s in short)]
    for item in items:
        row = rows[item.name]
        cells = []
        for cell in auto_ids:
            expected = 0 if cell in item.lose else cfg.POINTS[cell] if cell in item.keep else item.score.get(cell)
            got = row.cells.get(cell) or 0
            mark = "!" if expected is not None and got != expected else " "
            cells.append(f"{'' if expected is None else f'{expected:g}'}/{got:g}{mark}".rjust(14))
        lines.append(f"{item.name:<{width}}  " + "  ".join(cells))
    lines.append("each cell: expected/got points; ! marks a surprise")
    return "\n".join(lines)


def run_selftest(*, seeds: int = cfg.CALIBRATION_SEEDS, workers: int = 1, out: Path | None = None,
                 calibration: bool = True) -> tuple[bool, str]:
    """Grade the corpus and calibrate; return (all as expected, printable report)."""
    from autograder.authoring import calibrate

    auto_ids, _ = graded_cells()
    items = expectations(auto_ids)
    with tempfile.TemporaryDirectory(prefix="w4-selftest-") as tmp:
        folder = Path(tmp) / "submissions"
        folder.mkdir()
        for item in items:
            shutil.copy(item.origin / f"{item.name}.ipynb", folder / f"{item.name}.ipynb")
        rows = {row.student_id: row for row in grade(folder, out or Path(tmp) / "out", workers=workers)}
    problems = [line for item in items for line in surprises(item, rows[item.name])]
    counts = {origin: sum(item.origin == origin for item in items) for origin in (MUTANTS, ALTERNATIVES)}
    report = [f"selftest: {len(items)} submissions ({counts[MUTANTS]} mutants, {counts[ALTERNATIVES]} correct "
              f"alternatives)", discrimination_table(items, rows, auto_ids)]
    if calibration:
        result = calibrate.calibrate(seeds=seeds)
        report.append(calibrate.format_report(result))
        if not result["all_passed"]:
            problems.append("the reference fails a convergence test for some seed")
    report += [f"SURPRISE {line}" for line in problems] or [
        "no surprise: every mutant loses exactly where expected, every alternative earns full marks"]
    return not problems, "\n".join(report)
