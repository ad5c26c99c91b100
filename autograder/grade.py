"""Autograde a folder of submissions with nbgrader and write grades and feedback.

For each submission: check it is a notebook of this assignment, autograde it with nbgrader
in a scratch course under ``OUT/.course`` (the hidden tests are restored there from the
source), read the per-cell scores from the gradebook, and build HTML feedback without hidden
test code. A broken submission becomes a row graded 0 with its reason; the others go on.

    python -m autograder grade SUBMISSIONS --out DIR
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import nbformat
from nbgrader.api import Gradebook

import course_config as cfg
from autograder.course import NbgraderError, generate_assignment, make_course, run_step
from autograder.notebook_code import is_test_cell
from autograder.settings import kernel_environment
from autograder.submissions import Submission, find_submissions

log = logging.getLogger(__name__)


def graded_cells(source_notebook: Path = cfg.SOURCE_NOTEBOOK) -> tuple[list[str], list[str]]:
    """(autograded test cell ids, manually graded cell ids), in notebook order."""
    nb = nbformat.read(source_notebook, as_version=4)
    auto, manual = [], []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            (auto if is_test_cell(cell) else manual).append(meta["grade_id"])
    return auto, manual


@dataclass
class GradeRow:
    student_id: str
    score: float
    max_score: float
    cells: dict[str, float | None]  # grade id -> autograded score (None: graded by hand)
    status: str  # "graded", or "error: <reason>"
    failed: dict[str, str] = field(default_factory=dict)  # test cell id -> error message
    seconds: float = 0.0
    feedback: Path | None = None


@contextlib.contextmanager
def environment(changes: dict[str, str]) -> Iterator[None]:
    """Apply environment changes for the kernels nbgrader starts; undo them afterwards."""
    previous = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def zero_row(student_id: str, reason: str, auto_ids: list[str], manual_ids: list[str]) -> GradeRow:
    """The row of a submission that could not be graded."""
    cells: dict[str, float | None] = {gid: 0.0 for gid in auto_ids}
    cells.update({gid: None for gid in manual_ids})
    return GradeRow(student_id, 0.0, auto_max(auto_ids), cells, f"error: {reason}")


def auto_max(auto_ids: list[str]) -> float:
    return float(sum(cfg.POINTS[gid] for gid in auto_ids))


def failed_cells(autograded_notebook: Path) -> dict[str, str]:
    """Test cells that raised, with the message their assertion carried."""
    failed = {}
    nb = nbformat.read(autograded_notebook, as_version=4)
    for cell in nb.cells:
        if is_test_cell(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    failed[cell.metadata["nbgrader"]["grade_id"]] = f"{output.get('ename')}: {output.get('evalue')}"
    return failed


class Grader:
    """One scratch nbgrader course in ``out/.course`` that grades submissions one by one."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.course_root = self.out / ".course"
        self.course_root.mkdir(parents=True, exist_ok=True)
        self.api = make_course(self.course_root)
        generate_assignment(self.api)  # puts the assignment and its test cells in the gradebook
        self.auto_ids, self.manual_ids = graded_cells()

    def _path(self, kind: str, student_id: str) -> Path:
        coursedir = self.api.coursedir
        folder = getattr(coursedir, f"{kind}_directory")
        return self.course_root / folder / student_id / cfg.ASSIGNMENT_ID

    def grade(self, submission: Submission) -> GradeRow:
        """Grade one submission; never raises for a problem of the submission itself."""
        start = time.perf_counter()
        if submission.problem:
            row = zero_row(submission.student_id, submission.problem, self.auto_ids, self.manual_ids)
        else:
            try:
                row = self._autograde(submission)
            except NbgraderError as error:
                log.warning("%s: %s", submission.path, error)
                reason = str(error).strip().splitlines()[0]
                row = zero_row(submission.student_id, f"{submission.path.name}: {reason}", self.auto_ids, self.manual_ids)
        row.seconds = time.perf_counter() - start
        return row

    def _autograde(self, submission: Submission) -> GradeRow:
        sid = submission.student_id
        submitted = self._path("submitted", sid)
        if submitted.exists():
            shutil.rmtree(submitted)
        submitted.mkdir(parents=True)
        shutil.copyfile(submission.path, submitted / f"{cfg.NOTEBOOK_NAME}.ipynb")
        with environment(kernel_environment()):
            run_step(self.api.autograde(cfg.ASSIGNMENT_ID, sid, force=True, create=True), f"autograde of {sid}")
        cells = self._scores(sid)
        failed = failed_cells(self._path("autograded", sid) / f"{cfg.NOTEBOOK_NAME}.ipynb")
        row = GradeRow(sid, sum(cells[g] or 0.0 for g in self.auto_ids), auto_max(self.auto_ids), cells, "graded", failed)
        row.feedback = self._feedback(sid)
        return row

    def _scores(self, sid: str) -> dict[str, float | None]:
        with Gradebook(self.api.coursedir.db_url, cfg.COURSE_ID) as gb:
            notebook = gb.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, sid)
            by_id = {grade.name: grade for grade in notebook.grades}
            cells: dict[str, float | None] = {gid: float(by_id[gid].auto_score or 0.0) if gid in by_id else 0.0
                                              for gid in self.auto_ids}
        cells.update({gid: None for gid in self.manual_ids})
        return cells

    def _feedback(self, sid: str) -> Path | None:
        result = self.api.generate_feedback(cfg.ASSIGNMENT_ID, sid, force=True)
        if not result.get("success"):
            log.warning("feedback for %s failed: %s", sid, result.get("log"))
            return None
        html = self._path("feedback", sid) / f"{cfg.NOTEBOOK_NAME}.html"
        target = self.out / "feedback" / f"{sid}.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(html, target)
        return target


def csv_header(auto_ids: list[str], manual_ids: list[str]) -> list[str]:
    return ["student_id", "autograded_score", "autograded_max", *auto_ids, *manual_ids, "status"]


def write_grades(rows: list[GradeRow], path: Path, auto_ids: list[str], manual_ids: list[str]) -> None:
    """Write ``grades.csv`` atomically: a reader sees the old file or the new one, never half."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(csv_header(auto_ids, manual_ids))
    for row in sorted(rows, key=lambda r: r.student_id):
        values = ["" if row.cells.get(g) is None else f"{row.cells[g]:g}" for g in auto_ids + manual_ids]
        writer.writerow([row.student_id, f"{row.score:g}", f"{row.max_score:g}", *values, row.status])
    tmp = path.with_suffix(".csv.tmp")
    tmp.write_text(buffer.getvalue())
    os.replace(tmp, path)


def grade(submissions_folder: Path, out: Path) -> list[GradeRow]:
    """Grade every submission in ``submissions_folder``; write ``out/grades.csv`` and feedback."""
    submissions = find_submissions(submissions_folder)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    grader = Grader(out)
    rows = []
    for submission in submissions:
        log.info("grading %s", submission.student_id)
        rows.append(grader.grade(submission))
        write_grades(rows, out / "grades.csv", grader.auto_ids, grader.manual_ids)
    return rows
