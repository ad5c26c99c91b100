"""Final grades of a grading run: autograded plus manual points, minus the late penalty.

Reads the class gradebook (``OUT/gradebook.db``), the run's ``grades.csv`` (each row's status),
the submission times (``OUT/submitted/``, or a times file) and the LMS's own roster; writes the
LMS's import file, nbgrader's CSV beside it and ``OUT/final.csv``, and stores each late penalty
in the gradebook as nbgrader does.

    python -m autograder export RUN_DIR --out FILE.csv [--roster LMS_EXPORT.csv] [--times FILE]

A student is flagged, and gets no score in the LMS file (a blank changes nothing there), when a
free-response answer still waits for its grader or the grader failed on the submission. Under
``course_config.LATE_POLICY = "course"`` a submission time that is missing or unreadable is
flagged too, never taken as on time.

The roster is the LMS's gradebook export (``autograder/lms.py`` says each LMS's columns). Every
graded student must be found in it, by the LMS id of the download's names or by any of the LMS's
identity columns (Canvas: ``ID``, ``SIS Login ID``, ``SIS User ID``); the upload keeps the
roster's own assignment column (``W4 Optimization (123456)``) and refuses a roster without it.
Roster students without a submission are listed and get ``course_config.MISSING_SUBMISSION``;
the LMS's Test Student is skipped, and the summary says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

import course_config as cfg
from autograder.csvfiles import format_points, write_csv_atomically
from autograder.grading.gradebook import course_path, require_gradebook
from autograder.late import (TIME_FIX, TIMESTAMP_FILE, Lateness, check_policy, due_date, lateness, parse_time,
                             read_times)
from autograder.lms import lms_format
from autograder.grading.results import GRADER_ERROR, graded_cells
from autograder.grading.shards import read_grades
from autograder.grading.submissions import UNMATCHED, read_origin
from autograder.marking.roster import LmsFile, Roster, lms_file, read_roster, write_lms_csv

__all__ = ["Export", "FinalGrade", "LmsFile", "Roster", "export", "final_grades", "lms_file", "read_roster", "summary",
           "write_final_csv", "write_lms_csv", "write_nbgrader_csv"]  # the roster's names: moved, still here

NBGRADER_COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                    "raw_score", "late_submission_penalty", "score", "max_score"]  # nbgrader's CsvExportPlugin
FINAL_CSV = "final.csv"  # beside grades.csv: every cell's points once graded, the late penalty, the final score
TIMES = ".course/submission_times.csv"  # in a run: the times given with --times, kept for later commands


@dataclass
class FinalGrade:
    student_id: str
    raw_score: float | None  # autograded + manual; None when the grader failed
    max_score: float
    late: Lateness
    unfinished: list[str] = field(default_factory=list)  # free-response answers still to grade
    status: str = "graded"  # the row's status in grades.csv
    flagged: bool = False  # a grader flagged the submission in the formgrader
    cells: dict[str, float | None] = field(default_factory=dict)  # grade id -> points (manual ones once graded)
    origin: dict | None = None  # what the LMS's download said (lms.json): its ids, name, late marker
    notes: list[str] = field(default_factory=list)  # for the reader, no flag (the LMS's late marker)

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
        """Ready for the LMS: graded, every answer graded, the submission time known (under the course's policy)."""
        return not self.flags


def store_times(run: Path, times: Path | list[Path]) -> dict[str, str]:
    """Read times files (``late.read_times``; several: the pages of Canvas's API, say) and keep them in
    ``run`` for the commands that follow (their students replace the ones kept before); return every time kept."""
    kept = stored_times(run)
    for path in [times] if isinstance(times, (str, Path)) else times:
        kept.update(read_times(path))
    path = Path(run) / TIMES
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv_atomically(path, ["student_id", "submitted_at"], sorted(kept.items()))
    return kept


def stored_times(run: Path) -> dict[str, str]:
    path = Path(run) / TIMES
    return read_times(path) if path.is_file() else {}


def submission_time(run: Path, student_id: str, times: dict[str, str] | None = None,
                    origin: dict | None = None) -> tuple[datetime | None, str | None]:
    """(aware datetime or None, problem): the times file's, else ``submitted/<student>/<assignment>/timestamp.txt``.

    A download's student id is the LMS's (Canvas's user id, Moodle's participant id), which the
    LMS's own times files use too.
    """
    stamp = course_path(run, "submitted", student_id) / TIMESTAMP_FILE
    text, where = None, None
    for key in (student_id, (origin or {}).get("lms_id")):
        if key and times and key in times:
            text, where = times[key], f"{Path(run) / TIMES}: {key}"
            break
    if text is None and stamp.is_file():
        text, where = stamp.read_text(), str(stamp)
    if text is None:
        marker = " (Canvas marks it late)" if (origin or {}).get("late") else ""
        return None, (f"submission time unknown (no {TIMESTAMP_FILE}, no times file){marker}: no late penalty "
                      f"applied; {TIME_FIX}")
    try:
        return parse_time(text), None
    except ValueError as error:
        return None, f"{where}: {error}: no late penalty applied; {TIME_FIX}"


def final_grades(run: Path, *, times: Path | list[Path] | None = None) -> list[FinalGrade]:
    """Every student of the run's gradebook, with the final score; stores the late penalties there.

    ``times``: times files (``late.read_times``), kept in the run for later commands.
    """
    run = Path(run)
    db = require_gradebook(run)
    check_policy()
    known_times = store_times(run, times) if times else stored_times(run)
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
            origin = read_origin(course_path(run, "submitted", student))
            row_status = status.get(student, f"{GRADER_ERROR}no row in grades.csv")
            fault = row_status.startswith(GRADER_ERROR)  # no score where the grader earned none
            raw = None if fault else float(sum(g.score for g in notebook.grades))
            unfinished = [] if fault else [g.name for g in notebook.grades if g.needs_manual_grade]
            when, problem = submission_time(run, student, known_times, origin)
            late = lateness(when, raw or 0.0, float(notebook.max_score), extension=submission.extension,
                            problem=problem)
            notebook.late_submission_penalty = late.penalty or None
            cells = {g.name: None if fault or g.needs_manual_grade else float(g.score) for g in notebook.grades}
            notes = [late_marker_note()] if (origin or {}).get("late") else []
            grades.append(FinalGrade(student, raw, float(notebook.max_score), late, unfinished, row_status,
                                     bool(notebook.flagged), cells, origin, notes))
        gb.db.commit()
    return grades


def late_marker_note() -> str:
    """What Canvas's late marker of a download means under this course's policy."""
    if cfg.LATE_POLICY == "lms":
        return "late by Canvas's marker: Canvas's late policy applies"
    return "Canvas marks it late: if Canvas's own late policy is on too, the penalty is taken twice"


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


def write_final_csv(grades: list[FinalGrade], path: Path) -> Path:
    """``final.csv``: per student, every graded cell's points (the q_* ones once graded by hand), the
    autograded and manual sums, the late penalty, the final score (blank until final) and the flags."""
    auto_ids, manual_ids = graded_cells()
    header = ["student_id", *auto_ids, *manual_ids, "autograded", "manual", "raw_score", "late_penalty",
              "final_score", "max_score", "flags"]
    rows = []
    for g in grades:
        auto = None if g.raw_score is None else sum(g.cells.get(c) or 0.0 for c in auto_ids)
        manual = None if g.raw_score is None or g.unfinished else sum(g.cells.get(c) or 0.0 for c in manual_ids)
        rows.append([g.student_id, *[g.cells.get(c) for c in auto_ids + manual_ids], auto, manual, g.raw_score,
                     g.late.penalty, g.score if g.final else None, g.max_score, "; ".join(g.flags)])
    write_csv_atomically(path, header, rows)
    return path


@dataclass
class Export:
    grades: list[FinalGrade]
    lms: Path
    nbgrader_csv: Path
    final_csv: Path
    file: LmsFile


def unassigned_files(run: Path) -> int:
    """Rows of the run's grades.csv for files whose owner is unknown (a download name with no student id)."""
    try:
        _, rows = read_grades(Path(run) / "grades.csv")
    except ValueError:
        return 0
    return sum(1 for row in rows if row and row[0].startswith(UNMATCHED))


def export(run: Path, out: Path, *, roster: Path | None = None, times: Path | list[Path] | None = None) -> Export:
    """Final grades of ``run`` into ``out`` (the LMS file), ``<out stem>-nbgrader.csv`` and ``run/final.csv``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grades = final_grades(run, times=times)
    found = lms_file(grades, roster=roster, unassigned=unassigned_files(run))
    write_csv_atomically(out, found.header, found.rows, quote_all=lms_format().quote_all)
    nbgrader_csv = write_nbgrader_csv(grades, out.with_name(out.stem + "-nbgrader.csv"))
    final_csv = write_final_csv(grades, Path(run) / FINAL_CSV)
    return Export(grades, out, nbgrader_csv, final_csv, found)


def summary(grades: list[FinalGrade], file: LmsFile | None = None) -> str:
    """One line per student (score, lateness, flags), then the roster's students without a submission,
    the test users left out and the warnings, for the terminal."""
    lines = [f"{'student':24} {'raw':>6} {'late':>6} {'final':>6}  notes"]
    for g in grades:
        notes = "; ".join(g.flags) or g.late.describe()
        if g.notes:
            notes += "; " + "; ".join(g.notes)
        lines.append(f"{g.student_id:24} {format_points(g.raw_score):>6} {'-' + format(g.late.penalty, 'g'):>6} "
                     f"{format_points(g.score) if g.final else '(none)':>6}  {notes}")
    if file is not None:
        if file.missing:
            what = "0" if cfg.MISSING_SUBMISSION == "zero" else "a blank"
            lines.append(f"no submission, {what} in the LMS file (course_config.MISSING_SUBMISSION = "
                         f"{cfg.MISSING_SUBMISSION!r}): {'; '.join(file.missing)}")
        if file.skipped:
            lines.append(f"skipped, the LMS's test user: {'; '.join(file.skipped)}")
        lines += [f"WARNING: {w}" for w in file.warnings]
    flagged = sum(1 for g in grades if not g.final)
    lines.append(f"{len(grades) - flagged} final, {flagged} flagged (blank in the LMS file until fixed)")
    return "\n".join(lines)
