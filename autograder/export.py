"""Final grades of a grading run: autograded plus manual points, minus the late penalty.

Reads the class gradebook (``OUT/gradebook.db``), the run's ``grades.csv`` (each row's status)
and the submission times in ``OUT/submitted/``; writes the LMS's import file and nbgrader's CSV
beside it, and stores each late penalty in the gradebook as nbgrader does.

    python -m autograder export RUN_DIR --out FILE.csv [--roster LMS_EXPORT.csv]

A student is flagged, and gets no score in the LMS file (a blank changes nothing there), when a
free-response answer still waits for its grader or the grader failed on the submission. A
submission time that is missing or unreadable is flagged too, never taken as on time.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

import course_config as cfg
from autograder.csvfiles import write_csv_atomically
from autograder.gradebook import GRADEBOOK, course_path
from autograder.late import TIMESTAMP_FILE, Lateness, check_policy, due_date, lateness, parse_time
from autograder.lms import lms_format
from autograder.results import GRADER_ERROR
from autograder.shards import read_grades

NBGRADER_COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                    "raw_score", "late_submission_penalty", "score", "max_score"]  # nbgrader's CsvExportPlugin


@dataclass
class FinalGrade:
    student_id: str
    raw_score: float | None  # autograded + manual; None when the grader failed
    max_score: float
    late: Lateness
    unfinished: list[str] = field(default_factory=list)  # free-response answers still to grade
    status: str = "graded"  # the row's status in grades.csv
    flagged: bool = False  # a grader flagged the submission in the formgrader

    @property
    def score(self) -> float | None:
        return None if self.raw_score is None else max(0.0, self.raw_score - self.late.penalty)

    @property
    def flags(self) -> list[str]:
        found = []
        if self.status.startswith(GRADER_ERROR):
            found.append(self.status)
        if self.unfinished:
            found.append("manual grading unfinished: " + ", ".join(self.unfinished))
        if self.late.problem:
            found.append(self.late.problem)
        if self.flagged and not self.status.startswith(GRADER_ERROR):
            found.append("flagged in the formgrader")
        return found

    @property
    def final(self) -> bool:
        """Ready for the LMS: graded, every answer graded, the submission time known."""
        return not self.flags


def submission_time(run: Path, student_id: str) -> tuple[datetime | None, str | None]:
    """(aware datetime or None, problem) from ``submitted/<student>/<assignment>/timestamp.txt``."""
    stamp = course_path(run, "submitted", student_id) / TIMESTAMP_FILE
    if not stamp.is_file():
        return None, f"submission time unknown (no {TIMESTAMP_FILE}): no late penalty applied, check it"
    try:
        return parse_time(stamp.read_text()), None
    except ValueError as error:
        return None, f"{stamp}: {error}: no late penalty applied, check it"


def final_grades(run: Path) -> list[FinalGrade]:
    """Every student of the run's gradebook, with the final score; stores the late penalties there."""
    run = Path(run)
    db = run / GRADEBOOK
    if not db.is_file():
        raise ValueError(f"{db}: no class gradebook; grade into {run} first (python -m autograder grade ... --out {run})")
    check_policy()
    header, rows = read_grades(run / "grades.csv")
    status = {row[0]: row[header.index("status")] for row in rows}
    grades = []
    with Gradebook(f"sqlite:///{db.resolve()}", cfg.COURSE_ID) as gb:
        for student in sorted(s.id for s in gb.students):
            try:
                notebook = gb.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, student)
            except MissingEntry:
                continue
            submission = gb.find_submission(cfg.ASSIGNMENT_ID, student)
            row_status = status.get(student, f"{GRADER_ERROR}no row in grades.csv")
            fault = row_status.startswith(GRADER_ERROR)  # no score where the grader earned none
            raw = None if fault else float(sum(g.score for g in notebook.grades))
            unfinished = [] if fault else [g.name for g in notebook.grades if g.needs_manual_grade]
            when, problem = submission_time(run, student)
            late = lateness(when, raw or 0.0, float(notebook.max_score), extension=submission.extension,
                            problem=problem)
            notebook.late_submission_penalty = late.penalty or None
            grades.append(FinalGrade(student, raw, float(notebook.max_score), late, unfinished, row_status,
                                     bool(notebook.flagged)))
        gb.db.commit()
    return grades


def write_nbgrader_csv(grades: list[FinalGrade], path: Path) -> Path:
    """nbgrader's export columns (``nbgrader export``), then ``flags``; blank scores where none is final.

    Scores are written as numbers, text as text that a spreadsheet does not run (``autograder/csvfiles.py``).
    """
    due = due_date().astimezone(timezone.utc).replace(tzinfo=None)
    rows = []
    for g in grades:
        when = g.late.submitted.astimezone(timezone.utc).replace(tzinfo=None) if g.late.submitted else ""
        rows.append([cfg.ASSIGNMENT_ID, str(due), str(when), g.student_id, "", "", "",
                     g.raw_score, g.late.penalty, g.score, g.max_score, "; ".join(g.flags)])
    write_csv_atomically(path, NBGRADER_COLUMNS + ["flags"], rows)
    return path


def number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def read_roster(path: Path, key: str) -> dict[str, dict[str, str]]:
    """The LMS's own gradebook export, by its ``key`` column; ``ValueError`` naming the file and the column."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            table = list(csv.DictReader(f))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); export the roster from "
                         "the LMS again, or save it as 'CSV UTF-8'") from None
    if not table or key not in table[0]:
        raise ValueError(f"{path}: no {key!r} column; give the LMS's gradebook export (course_config.LMS = {cfg.LMS!r})")
    return {row[key].strip(): row for row in table if row.get(key, "").strip()}


def write_lms_csv(grades: list[FinalGrade], path: Path, *, roster: Path | None = None) -> Path:
    """The LMS's import file (``course_config.LMS``): identity columns, then the assignment's score.

    Students with a flag get a blank score, which the LMS ignores, so nothing unfinished is posted. The
    roster's fields (names a student may set in the LMS) reach the file as text that a spreadsheet does
    not run as a formula (``autograder/csvfiles.py``); scores stay numbers.
    """
    layout = lms_format(cfg.LMS)
    people = read_roster(roster, layout.key) if roster else {}
    unknown = [g.student_id for g in grades if people and g.student_id not in people]
    if unknown:
        raise ValueError(f"{roster}: no {layout.key} for {', '.join(unknown)}; nothing was written")
    header = [*layout.identity, cfg.LMS_ASSIGNMENT_COLUMN]
    rows = []
    if layout.points_row is not None:
        rows.append([layout.points_row, *[""] * (len(layout.identity) - 1), grades[0].max_score if grades else None])
    for g in grades:
        person = people.get(g.student_id, {layout.name: g.student_id, layout.key: g.student_id})
        rows.append([person.get(column, "") for column in layout.identity] + [g.score if g.final else None])
    write_csv_atomically(path, header, rows)
    return path


def export(run: Path, out: Path, *, roster: Path | None = None) -> tuple[list[FinalGrade], Path, Path]:
    """Final grades of ``run`` into ``out`` (the LMS file) and ``<out stem>-nbgrader.csv``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grades = final_grades(run)
    lms = write_lms_csv(grades, out, roster=roster)
    nbgrader_csv = write_nbgrader_csv(grades, out.with_name(out.stem + "-nbgrader.csv"))
    return grades, lms, nbgrader_csv


def summary(grades: list[FinalGrade]) -> str:
    """One line per student (score, lateness, flags), for the terminal."""
    lines = [f"{'student':24} {'raw':>6} {'late':>6} {'final':>6}  notes"]
    for g in grades:
        lines.append(f"{g.student_id:24} {number(g.raw_score):>6} {'-' + format(g.late.penalty, 'g'):>6} "
                     f"{number(g.score) if g.final else '(none)':>6}  {'; '.join(g.flags) or g.late.describe()}")
    flagged = sum(1 for g in grades if not g.final)
    lines.append(f"{len(grades) - flagged} final, {flagged} flagged (blank in the LMS file until fixed)")
    return "\n".join(lines)

