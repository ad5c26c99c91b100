"""What the grader and its workers exchange: task files, result files and grade rows.

``grade.py`` (the parent) writes a ``Task`` per submission; ``worker.py`` (one process per
submission) grades it and writes a ``WorkerResult``; the parent adds what it knows (the notebook's
hash, the grader's version, the device), stores it and turns it into a ``GradeRow``. Both sides
import this module and nothing of each other.

A result is one of three kinds:

- graded: ``cells`` (test cell -> points), ``failed``, ``notes``;
- ``error``: the *submission* could not be graded (not a notebook, another assignment's...):
  0 points with that reason, as the student caused it;
- ``grader_error``: the *grader or the machine* failed (the sandbox or the kernel did not
  start, nbgrader raised, the worker crashed, the disk is full): no score at all, never cached,
  and ``grade`` exits non-zero. A fault of the grader is never a student's score.
"""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

import course_config as cfg
from autograder.errors import SetupError
from autograder.files import atomic_write
from autograder.notebook_code import is_test_cell, nbgrader_meta

NOTE_PREFIX = "[grader] "  # output lines the grader adds to a cell (repairs, limits)
GRADER_ERROR = "error: grader: "  # status of a row the grader failed to grade (no score)
STUDENT_ERROR = "error: "  # status of a submission that cannot be graded (0 points)
RESULT_FORMAT = "2"  # what a result file holds (2: the worker's gradebook records); older ones are regraded


class GraderFault(SetupError):
    """The grader or the machine failed on a submission: it gets no score, only this reason."""


@dataclass
class Task:
    student_id: str
    submission: str  # path of the student's notebook
    course: str  # this worker's nbgrader course folder
    template: str  # the run's template course (source/ and gradebook.db)
    result: str  # where to write the result JSON
    cell_timeouts: dict[str, float]  # grade id -> seconds; cells not listed get cfg.CELL_TIMEOUT_S
    default_timeout: float  # seconds for a cell not in cell_timeouts
    sandbox_uid: int | None  # None: run the kernel as the grader's own user
    threads: int  # CPU threads for the kernel's numerical libraries
    zygote: dict | None = None  # autograder.grading.warm.ZygoteInfo of the slot's warm-kernel zygote; None: cold kernels


@dataclass
class WorkerResult:
    """One submission's result, as the worker writes it and the store keeps it
    (``OUT/.course/results/<student>.json``; fields that are None are left out of the file)."""

    student_id: str
    cells: dict[str, float] = field(default_factory=dict)  # autograded test cell -> points
    failed: dict[str, str] = field(default_factory=dict)  # test cell -> why it lost points
    notes: dict[str, list[str]] = field(default_factory=dict)  # cell -> the grader's notes (its own record)
    timeouts: list[str] = field(default_factory=list)  # cells stopped at their time limit
    lost: list[str] = field(default_factory=list)  # cells at which the kernel died
    cell_seconds: dict[str, float] = field(default_factory=dict)  # graded cell -> seconds, judging included
    gradebook: dict | None = None  # nbgrader's records of the submission, for the class gradebook
    retried: bool = False  # graded a second time after a time limit or a kernel's death
    error: str | None = None  # the submission's own problem: 0 points with this reason
    grader_error: str | None = None  # the grader's or the machine's: no score
    feedback_html: str | None = None  # the worker's feedback page, until the store moves it
    feedback: str | None = None  # the feedback page, where the store put it
    phases: dict[str, float] = field(default_factory=dict)  # the worker's time per phase
    seconds: float = 0.0
    submission_sha256: str | None = None  # the graded notebook's, set by the parent
    grader: str | None = None  # grader_fingerprint() of the grader that graded it
    device: str | None = None
    isolation: str | None = None  # how its kernel was isolated; None: the run's

    def to_json(self) -> dict:
        return {name: value for name, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: dict) -> WorkerResult:
        """A result read back; keys of another version of the grader are ignored (its fingerprint
        makes such a result stale anyway)."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})

    @classmethod
    def read(cls, path: Path) -> WorkerResult:
        """The result in ``path``; ``OSError`` or ``ValueError`` (not JSON, not a result) when there is none."""
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("student_id"), str):
            raise ValueError(f"{path} holds no grading result")
        return cls.from_json(data)

    def write(self, path: Path) -> None:
        write_json(path, self.to_json())


def write_json(path: Path, data: dict) -> None:
    """Atomic write: a reader (or a crash) never sees half a file."""
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True))


def write_task(path: Path, task: Task) -> Path:
    write_json(path, asdict(task))
    return path


def read_task(path: Path) -> Task:
    return Task(**json.loads(Path(path).read_text()))


def grader_fingerprint() -> str:
    """Changes whenever the tests or the points change: results of another version are stale."""
    import hashlib

    digest = hashlib.sha256(cfg.SOURCE_NOTEBOOK.read_bytes())
    digest.update(json.dumps(cfg.POINTS, sort_keys=True).encode())
    digest.update(RESULT_FORMAT.encode())
    return digest.hexdigest()[:16]


def graded_cells(source_notebook: Path = cfg.SOURCE_NOTEBOOK) -> tuple[list[str], list[str]]:
    """(autograded test cell ids, manually graded cell ids), in notebook order."""
    nb = nbformat.read(source_notebook, as_version=4)
    auto, manual = [], []
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade"):
            (auto if is_test_cell(cell) else manual).append(meta["grade_id"])
    return auto, manual


@dataclass
class GradeRow:
    student_id: str
    score: float | None  # None: the grader failed, there is no score
    max_score: float
    cells: dict[str, float | None]  # grade id -> autograded score (None: by hand, or not graded)
    status: str  # "graded", "error: <reason>" (0 points) or "error: grader: <reason>" (no score)
    failed: dict[str, str] = field(default_factory=dict)  # test cell id -> error message
    notes: dict[str, list[str]] = field(default_factory=dict)  # cell id -> grader notes (tampering, limits)
    seconds: float = 0.0
    device: str = ""
    isolation: str = ""  # how the kernel was isolated ("sandbox", or "NONE: <why>")
    feedback: Path | None = None

    @property
    def grader_fault(self) -> bool:
        return self.status.startswith(GRADER_ERROR)


def auto_max(auto_ids: list[str]) -> float:
    return float(sum(cfg.POINTS[gid] for gid in auto_ids))


def zero_row(student_id: str, reason: str, auto_ids: list[str], manual_ids: list[str]) -> GradeRow:
    """The row of a submission that cannot be graded through its own fault: 0 points, the reason."""
    cells: dict[str, float | None] = {gid: 0.0 for gid in auto_ids}
    cells.update({gid: None for gid in manual_ids})
    return GradeRow(student_id, 0.0, auto_max(auto_ids), cells, f"{STUDENT_ERROR}{reason}")


def fault_row(student_id: str, reason: str, auto_ids: list[str], manual_ids: list[str]) -> GradeRow:
    """The row of a submission the grader failed to grade: no score in any cell, the reason."""
    cells: dict[str, float | None] = {gid: None for gid in auto_ids + manual_ids}
    return GradeRow(student_id, None, auto_max(auto_ids), cells, f"{GRADER_ERROR}{reason}")


def cell_seconds(executed_notebook: Path, *, every_cell: bool = False) -> dict[str, float]:
    """grade id -> seconds each nbgrader cell took, from nbclient's timing metadata (``every_cell``:
    the other code cells too, as ``cell <index>``)."""
    from datetime import datetime

    times = {}
    for index, cell in enumerate(nbformat.read(executed_notebook, as_version=4).cells):
        gid = nbgrader_meta(cell).get("grade_id")
        if gid is None and every_cell and cell.cell_type == "code":
            gid = f"cell {index}"
        timing = cell.metadata.get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if gid and start and end:
            parse = datetime.fromisoformat
            times[gid] = (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()
    return times


def row_from_result(result: WorkerResult, auto_ids: list[str], manual_ids: list[str], isolation: str) -> GradeRow:
    """The grade row of a worker's (or a stored) result; ``isolation`` when the result names none."""
    sid = result.student_id
    if result.grader_error is not None:
        row = fault_row(sid, result.grader_error, auto_ids, manual_ids)
    elif result.error is not None:
        row = zero_row(sid, result.error, auto_ids, manual_ids)
    else:
        cells: dict[str, float | None] = {gid: float(result.cells.get(gid, 0.0)) for gid in auto_ids}
        cells.update({gid: None for gid in manual_ids})
        row = GradeRow(sid, sum(cells[g] or 0.0 for g in auto_ids), auto_max(auto_ids), cells, "graded",
                       result.failed, result.notes)
        row.feedback = Path(result.feedback) if result.feedback else None
    row.seconds, row.device = result.seconds, result.device or ""
    row.isolation = result.isolation if result.isolation is not None else isolation
    return row


def csv_header(auto_ids: list[str], manual_ids: list[str]) -> list[str]:
    return ["student_id", "autograded_score", "autograded_max", *auto_ids, *manual_ids, "status", "device", "isolation"]


def write_grades(rows: list[GradeRow], path: Path, auto_ids: list[str], manual_ids: list[str]) -> None:
    """Write ``grades.csv`` atomically: a reader sees the old file or the new one, never half.

    A row the grader failed on has empty score cells: no number stands where none was earned.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(csv_header(auto_ids, manual_ids))
    for row in sorted(rows, key=lambda r: r.student_id):
        values = ["" if row.cells.get(g) is None else f"{row.cells[g]:g}" for g in auto_ids + manual_ids]
        score = "" if row.score is None else f"{row.score:g}"
        writer.writerow([row.student_id, score, f"{row.max_score:g}", *values, row.status, row.device, row.isolation])
    atomic_write(path, buffer.getvalue())


def fault_summary(rows: list[GradeRow]) -> str | None:
    """One line naming how many submissions the grader failed on and why; None when there are none."""
    faults = Counter(row.status.removeprefix(GRADER_ERROR) for row in rows if row.grader_fault)
    if not faults:
        return None
    reasons = "; ".join(f"{reason} ({count}x)" for reason, count in faults.most_common())
    return (f"{sum(faults.values())} submission(s) could not be graded because of the grader or the machine, "
            f"not the students (empty scores, graded again on the next run): {reasons}")
