"""The examples' scores against ``examples/submissions/expected.json``: what ``demo`` and the
container's demo (``deploy/docker/demo.sh``) check after grading the examples.

    python -m autograder.authoring.expected GRADES.csv [--isolation LABEL]
        # exit 1 on a score other than expected, or (with --isolation) a row isolated otherwise
"""
from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping
from pathlib import Path

import course_config as cfg
from autograder.csvfiles import parse_points

EXPECTED = cfg.EXAMPLES_DIR / "expected.json"


def unexpected_scores(scores: Mapping[str, Mapping[str, float | None]], wanted: dict) -> list[str]:
    """One line per example cell whose score (student -> cell -> points) is not the one ``wanted`` lists."""
    return [f"{student}: {cell} scored {scores.get(student, {}).get(cell)}, expected {points:g}"
            for student, cells in wanted.items() for cell, points in cells.items()
            if student not in scores or scores[student].get(cell) != points]


def verdict_lines(scores: Mapping[str, Mapping[str, float | None]], expected: Path = EXPECTED) -> tuple[bool, list[str]]:
    """(all as expected, the lines to print): each unexpected score, or the line that all were expected."""
    wanted = json.loads(Path(expected).read_text())  # read once for the check and the count
    wrong = unexpected_scores(scores, wanted)
    if wrong:
        return False, [f"demo: UNEXPECTED {line}" for line in wrong]
    return True, [f"demo: all {len(wanted)} examples got the scores examples/submissions/expected.json lists"]


def scores_of(grades_csv: Path, expected: Path = EXPECTED) -> tuple[dict[str, dict[str, float | None]], set[str]]:
    """The expected cells' points per student in a ``grades.csv`` (None where empty), and its isolations."""
    cells = {cell for wanted in json.loads(Path(expected).read_text()).values() for cell in wanted}
    with open(grades_csv, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    scores = {row["student_id"]: {cell: parse_points(row[cell], f"{grades_csv}: {row['student_id']}, {cell}")
                                  if row.get(cell) else None for cell in cells} for row in rows}
    return scores, {row["isolation"] for row in rows}


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m autograder.authoring.expected")
    parser.add_argument("grades", type=Path, help="a grades.csv of the examples")
    parser.add_argument("--isolation", help="every row's isolation column must say this (sandbox)")
    args = parser.parse_args(argv)
    scores, isolation = scores_of(args.grades)
    print(f"demo: kernels' isolation: {', '.join(sorted(isolation))}")
    ok, lines = verdict_lines(scores)
    if args.isolation is not None and isolation != {args.isolation}:
        ok, lines = False, [*lines, f"demo: UNEXPECTED isolation: {', '.join(sorted(isolation))}, "
                                    f"expected {args.isolation} on every row"]
    print("\n".join(lines), file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
