"""A class-level report of one grading run: where the class stands and which cells it fails.

Reads the ``grades.csv`` that ``grade`` (or ``merge``) wrote and writes beside it:

- ``report.png``: a histogram of the autograded scores and, per autograded test cell, the
  share of submissions that earned its full points;
- ``report.md``: the same numbers as a table (cell, points, pass rate, mean score), with the
  submissions that could not be graded and why.

Only submissions with status ``graded`` enter the numbers; the others are counted apart (their
zero says nothing about the class's understanding). Hand-graded ``q_*`` cells are empty in
``grades.csv`` and are left out.

    from autograder.reports.class_report import write_class_report
    write_class_report(Path("out/grades.csv"), Path("out"))
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

import course_config as cfg
from autograder.csvfiles import parse_points
from autograder.errors import InputError
from autograder.grading.results import STUDENT_ERROR, auto_max, graded_cells
from autograder.reports.report import short_id
from autograder.grading.shards import read_grades
from autograder.text import storable

FIXED_COLUMNS = ("student_id", "autograded_score", "autograded_max", "status")


@dataclass(frozen=True)
class CellStats:
    grade_id: str
    points: float
    pass_rate: float | None  # share of graded submissions with full points; None: nothing graded
    mean: float | None  # mean score of the graded submissions


@dataclass(frozen=True)
class ClassSummary:
    scores: list[float]  # autograded score of each graded submission
    max_score: float
    cells: list[CellStats]  # autograded test cells, in notebook order
    errors: list[tuple[str, str]]  # (student id, reason) of the submissions not graded


def number(value: str, path: Path, student: str, column: str) -> float:
    """``float(value)``, or an ``InputError`` naming the file, row and column."""
    return parse_points(value, f"{path}: student {student!r}, column {column!r}")


def read_rows(grades_csv: Path, auto_ids: list[str]) -> list[dict[str, str]]:
    """Rows of ``grades_csv`` as dicts; ``ValueError`` if a needed column is missing."""
    header, rows = read_grades(grades_csv)
    missing = [c for c in (*FIXED_COLUMNS, *auto_ids) if c not in header]
    if missing:
        raise InputError(f"{grades_csv}: no column {', '.join(missing)}; it was written for another version of "
                         f"{cfg.NOTEBOOK_NAME}.ipynb or by another tool: grade the submissions again")
    for row in rows:
        if len(row) != len(header):
            raise InputError(f"{grades_csv}: the row of {row[0] if row else '(empty)'!r} has {len(row)} values for "
                             f"{len(header)} columns; was the file edited by hand? grade again")
    return [dict(zip(header, row, strict=True)) for row in rows]


def summarize(rows: list[dict[str, str]], auto_ids: list[str], path: Path) -> ClassSummary:
    """Per-cell pass rates and means over the graded rows; errors set apart. Reads and changes nothing."""
    graded = [r for r in rows if not r["status"].startswith(STUDENT_ERROR)]
    errors = [(r["student_id"], r["status"].removeprefix(STUDENT_ERROR)) for r in rows
              if r["status"].startswith(STUDENT_ERROR)]
    cells = []
    for gid in auto_ids:
        points = float(cfg.POINTS[gid])
        scores = [number(r[gid], path, r["student_id"], gid) for r in graded]
        cells.append(CellStats(gid, points,
                               sum(s >= points for s in scores) / len(scores) if scores else None,
                               statistics.fmean(scores) if scores else None))
    scores = [number(r["autograded_score"], path, r["student_id"], "autograded_score") for r in graded]
    return ClassSummary(scores, auto_max(auto_ids), cells, errors)


def title(summary: ClassSummary) -> str:
    """One line: how many submissions were graded, and how many errors the charts leave out."""
    errors = len(summary.errors)
    left_out = f", {errors} not graded (errors, left out of the charts)" if errors else ", no error"
    return f"{cfg.ASSIGNMENT_ID}: {len(summary.scores)} graded submissions{left_out}"


def plot(summary: ClassSummary, path: Path) -> Path:
    """Write the histogram and the pass-rate bars to ``path`` (PNG); return ``path``.

    Uses a bare ``Figure`` (Agg canvas) rather than pyplot, so no global backend or figure
    state is touched in the caller's process.
    """
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    hist, bars = fig.subplots(1, 2, width_ratios=[1, 1.3])
    # one bin per whole point: every cell carries whole points, so every total is an integer
    hist.hist(summary.scores, bins=np.arange(-0.5, summary.max_score + 1.5), color="tab:blue", edgecolor="white")
    hist.set(xlabel=f"autograded score (out of {summary.max_score:g})", ylabel="submissions",
             title="Autograded scores", xlim=(-0.5, summary.max_score + 0.5))
    hist.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of submissions
    if not summary.scores:
        hist.text(0.5, 0.5, "no graded submission", transform=hist.transAxes, ha="center")
    labels = [f"{short_id(c.grade_id)} ({c.points:g} pt)" for c in summary.cells]
    rates = [100 * (c.pass_rate or 0.0) for c in summary.cells]
    positions = np.arange(len(labels))
    bars.barh(positions, rates, color="tab:green")
    bars.set_yticks(positions, labels)
    bars.invert_yaxis()  # notebook order, top to bottom
    bars.set(xlim=(0, 100), xlabel="submissions with full points (%)", title="Pass rate per autograded cell")
    for y, cell in zip(positions, summary.cells, strict=True):
        text = "n/a" if cell.pass_rate is None else f"{100 * cell.pass_rate:.0f}%"
        bars.text(1, y, text, va="center")
    fig.suptitle(title(summary))
    fig.savefig(path, dpi=100)
    return path


def table_cell(text: str) -> str:
    """Text as one cell of a Markdown table: one line, pipes escaped, storable, at most 300 characters."""
    line = " ".join(storable(text).split())
    line = line if len(line) <= 300 else line[:297] + "..."
    return line.replace("|", "\\|")


def markdown(summary: ClassSummary, manual_ids: list[str], image_name: str, notes: Sequence[str] = ()) -> str:
    """The report as Markdown: totals, the per-cell table, the errors and their reasons, the notes."""
    def percent(cell: CellStats) -> str:
        if cell.pass_rate is None:
            return "n/a"
        return f"{100 * cell.pass_rate:.0f}% ({round(cell.pass_rate * len(summary.scores))}/{len(summary.scores)})"

    lines = [f"# Class report: {cfg.ASSIGNMENT_ID}", "", f"{title(summary)}.", ""]
    if summary.scores:
        lines += [(f"Autograded score of the graded submissions: mean {statistics.fmean(summary.scores):.2f}, "
                   f"median {statistics.median(summary.scores):g}, out of {summary.max_score:g}."), ""]
    lines += [f"![scores and pass rates]({image_name})", "",
              "| cell | points | pass rate | mean score |", "|---|---:|---:|---:|"]
    for cell in summary.cells:
        mean = "n/a" if cell.mean is None else f"{cell.mean:.2f}"
        lines.append(f"| {cell.grade_id} | {cell.points:g} | {percent(cell)} | {mean} |")
    manual_points = sum(cfg.POINTS[g] for g in manual_ids)
    lines += ["", (f"Pass: the cell's full points. The {len(manual_ids)} hand-graded answers (q_*, "
                   f"{manual_points:g} points) are not in this report."), "", f"## Errors: {len(summary.errors)}", ""]
    if summary.errors:
        lines += ["| student | reason |", "|---|---|"]
        lines += [f"| {table_cell(student)} | {table_cell(reason)} |" for student, reason in summary.errors]
    else:
        lines.append("Every submission was graded.")
    if notes:
        lines += ["", f"## Notes: {len(notes)}", "", *[f"- {table_cell(note)}" for note in notes]]
    return "\n".join(lines) + "\n"


def write_class_report(grades_csv: Path, out_dir: Path, *, notes: Sequence[str] = ()) -> tuple[Path, Path]:
    """Read ``grades_csv``; write ``out_dir/report.png`` and ``out_dir/report.md``; return both paths.

    ``notes``: lines about single students the instructor should know of (``submissions.repair_notes``).

    Raises ``ValueError`` naming the file when it is missing, empty, lacks a column of this
    notebook's graded cells, or holds a score that is not a number.
    """
    grades_csv, out_dir = Path(grades_csv), Path(out_dir)
    auto_ids, manual_ids = graded_cells()
    summary = summarize(read_rows(grades_csv, auto_ids), auto_ids, grades_csv)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot(summary, out_dir / "report.png")
    md = out_dir / "report.md"
    md.write_text(markdown(summary, manual_ids, png.name, notes), encoding="utf-8")
    return png, md
