"""Where a run keeps what it graded: each student's result, log, feedback and autograded notebook.

``OUT/.course/results/<student>.json`` is the store of record: a later run reuses a result of the
same notebook by the same grader, and grades again one that is missing, of another notebook, of
another grader (then *stale*: the tests or points changed) or a grader fault. Results graded beside
the canary wait in ``OUT/.course/held/`` until its verdict, so that a run whose canary fails
replaces nothing an earlier run kept.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import course_config as cfg
from autograder.grading.results import WorkerResult
from autograder.grading.submissions import Submission


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def stored_result(results: Path, submission: Submission, fingerprint: str) -> tuple[WorkerResult | None, bool]:
    """(the result in the folder ``results`` of this exact submission by the grader ``fingerprint``, if any
    and not a grader fault; whether the stored result is of this notebook by another grader: stale)."""
    if submission.fault:
        return None, False
    try:
        stored = WorkerResult.read(Path(results) / f"{submission.student_id}.json")
    except (OSError, ValueError, TypeError):
        return None, False
    if stored.submission_sha256 != sha256(submission.path):
        return None, False
    if stored.grader != fingerprint:
        return None, True
    if stored.grader_error is not None:  # graded again once the grader or the machine is fixed
        return None, False
    return stored, False


class ResultStore:
    """The result files of the run in ``out`` (see the module's docstring)."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.root = self.out / ".course"
        self.results = self.root / "results"
        self.held = self.root / "held"  # results graded beside the canary, until its verdict
        self.feedback = self.out / "feedback"
        self.autograded = self.root / "autograded"

    def prepare(self) -> None:
        self.results.mkdir(parents=True, exist_ok=True)
        self.feedback.mkdir(exist_ok=True)

    def folder(self, *, held: bool = False) -> Path:
        """Where a result goes now (made if needed): ``held`` ones wait for the canary's verdict."""
        folder = self.held if held else self.results
        folder.mkdir(exist_ok=True)
        return folder

    def stored(self, submission: Submission, fingerprint: str) -> tuple[WorkerResult | None, bool]:
        """``stored_result`` in this run's results."""
        return stored_result(self.results, submission, fingerprint)

    def save(self, folder: Path, result: WorkerResult) -> None:
        result.write(folder / f"{result.student_id}.json")

    def keep_outputs(self, sid: str, course: Path, result: WorkerResult, folder: Path) -> None:
        """Move feedback and the autograded notebook out of the worker's folder ``course`` (into their
        places, or into ``folder`` itself for the canary and held results); drop the rest."""
        final = folder == self.results
        html, result.feedback_html = result.feedback_html, None
        if html and folder in (self.results, self.held):
            shutil.copyfile(html, (self.feedback if final else folder) / f"{sid}.html")
            result.feedback = str(self.feedback / f"{sid}.html")
        notebook = course / "autograded" / sid / cfg.ASSIGNMENT_ID / f"{cfg.NOTEBOOK_NAME}.ipynb"
        if notebook.is_file():
            keep = self.autograded if final else folder
            keep.mkdir(exist_ok=True)
            shutil.copyfile(notebook, keep / f"{sid}.ipynb")
        shutil.rmtree(course, ignore_errors=True)

    def release_held(self, student_id: str) -> None:
        """Move a held submission's result, log, feedback and autograded notebook into their places."""
        places = {"json": self.results, "log": self.results, "html": self.feedback, "ipynb": self.autograded}
        for suffix, place in places.items():
            held = self.held / f"{student_id}.{suffix}"
            if held.exists():
                place.mkdir(exist_ok=True)
                os.replace(held, place / held.name)

    def drop_held(self) -> None:
        shutil.rmtree(self.held, ignore_errors=True)
